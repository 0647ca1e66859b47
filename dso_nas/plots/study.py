"""Figures of a study (:mod:`dso_nas.study`) from its records.

* ``error_vs_params.png``: test error against parameters, every (arm, seed), one marker per arm;
* ``search_sparsity.png``: the share of λ exactly zero after each search epoch, every search run;
* ``searched_blocks.png``: each search arm's first block drawing, one row per seed.

``body`` is the study's record (``study.json``): ``arms`` (``name``, ``label``, ``kind``),
``seeds`` and ``runs`` (``arm``, ``seed``, ``kind``, ``arch``, ``params``, ``error``).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List

from ..runlog import read_jsonl
from .canvas import figure, read_png, save

__all__ = ["plot_study"]


def plot_study(body: Dict[str, Any], folder: str) -> List[str]:
    """``error_vs_params.png`` (every run, per arm), ``search_sparsity.png`` (zero λ per search
    epoch) and ``searched_blocks.png`` (each search arm's first block drawing, one row per
    seed); the written paths."""
    written = [_plot_errors(body, folder)]
    search_arms = [a["name"] for a in body["arms"] if a["kind"] == "search"]
    path = _plot_sparsity(body, search_arms, folder)
    if path:
        written.append(path)
    path = _plot_blocks(body, search_arms, folder)
    if path:
        written.append(path)
    return written


def _plot_errors(body: Dict[str, Any], folder: str) -> str:
    """``error_vs_params.png``: every (arm, seed) retrained with one recipe."""
    fig = figure(7, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    markers = "osD^v<>ph*"
    for i, arm in enumerate(body["arms"]):
        runs = [r for r in body["runs"] if r["arm"] == arm["name"]]
        if runs:
            ax.scatter([r["params"] / 1e3 for r in runs], [100 * r["error"] for r in runs],
                       marker=markers[i % len(markers)], label=arm["label"], alpha=0.8)
    ax.set_xlabel("parameters (k)")
    ax.set_ylabel("test error (%)")
    ax.set_title("study: every (arm, seed) retrained with one recipe")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return save(fig, os.path.join(folder, "error_vs_params.png"))


def _plot_sparsity(body: Dict[str, Any], search_arms: List[str], folder: str) -> str:
    """``search_sparsity.png``: the share of λ exactly zero after each search epoch, per search
    run (the λ dynamics behind each searched block); empty when no search has run."""
    fig = figure(7, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    drawn = False
    for i, arm in enumerate(search_arms):
        for r in (r for r in body["runs"] if r["arm"] == arm):
            d = os.path.dirname(r["arch"])
            recs = [x for x in read_jsonl(d, "search") if x.get("num_lambda")] if os.path.isdir(d) else []
            if recs:
                ax.plot([x["epoch"] + 1 for x in recs], [x["zero_lambda"] / x["num_lambda"] for x in recs],
                        color=f"C{i}", alpha=0.8, label=arm if r["seed"] == min(body["seeds"]) else None)
                drawn = True
    if not drawn:
        return ""
    ax.set_xlabel("search epoch")
    ax.set_ylabel("λ exactly zero (share)")
    ax.set_title("λ sparsity over the search, every seed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, os.path.join(folder, "search_sparsity.png"))


def _plot_blocks(body: Dict[str, Any], search_arms: List[str], folder: str) -> str:
    """``searched_blocks.png``: the first cell drawing of every search run, arms as columns and
    seeds as rows; empty when no search run has a drawing."""
    cells = {}
    for r in body["runs"]:
        if r["kind"] == "search":
            d = os.path.dirname(r["arch"])
            names = os.listdir(d) if os.path.isdir(d) else []
            pngs = sorted(f for f in names if f.startswith("cell") and f.endswith(".png"))
            if pngs:
                cells[(r["arm"], r["seed"])] = os.path.join(d, pngs[0])
    if not cells:
        return ""
    seeds = sorted({s for _, s in cells})
    fig = figure(3.2 * len(search_arms), 3.0 * len(seeds))
    axes = fig.subplots(len(seeds), len(search_arms), squeeze=False)
    for i, seed in enumerate(seeds):
        for j, arm in enumerate(search_arms):
            ax = axes[i][j]
            ax.axis("off")
            if (arm, seed) in cells:
                ax.imshow(read_png(cells[(arm, seed)]))
            ax.set_title(f"{arm}, seed {seed}", fontsize=9)
    fig.tight_layout()
    return save(fig, os.path.join(folder, "searched_blocks.png"))
