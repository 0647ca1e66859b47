"""A study's table and claims from its records: mean ± std per arm, Welch t-tests, plots."""
from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Sequence

import numpy as np

from ..runlog import read_jsonl

__all__ = ["arm_rows", "claim_rows", "table_markdown", "welch", "paired", "plot_study"]

ALPHA = 0.05


def welch(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances); NaN when either side has < 2."""
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    from scipy import stats  # noqa: PLC0415 - only the summary needs scipy

    if np.std(a) == 0 and np.std(b) == 0:
        return 0.0 if np.mean(a) != np.mean(b) else 1.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def paired(a: Dict[int, float], b: Dict[int, float]) -> float:
    """Two-sided p-value of a paired t-test over the seeds both arms ran (a seed fixes the
    retraining's data order, which every arm of that seed shares); NaN below 2 pairs."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return float("nan")
    from scipy import stats  # noqa: PLC0415

    diff = np.array([a[s] - b[s] for s in seeds])
    if np.all(diff == diff[0]):
        return 0.0 if diff[0] != 0 else 1.0
    return float(stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue)


def _by_seed(records: List[Dict[str, Any]], arm: str) -> Dict[int, float]:
    return {r["seed"]: 100.0 * r["error"] for r in records if r["arm"] == arm}


def _errors(records: List[Dict[str, Any]], arm: str) -> List[float]:
    return [100.0 * r["error"] for r in records if r["arm"] == arm]


def arm_rows(body: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Per arm: n, mean/std test error (%), mean params and FLOPs, the paper's figure."""
    rows = []
    for arm in body["arms"]:
        runs = [r for r in body["runs"] if r["arm"] == arm["name"]]
        if not runs:
            continue
        err = _errors(runs, arm["name"])
        rows.append({"arm": arm["name"], "label": arm["label"], "n": len(runs), "error_mean": float(np.mean(err)),
                     "error_std": float(np.std(err, ddof=1)) if len(err) > 1 else float("nan"),
                     "params": float(np.mean([r["params"] for r in runs])),
                     "flops": float(np.mean([r["flops"] for r in runs])),
                     "paper": body.get("paper", {}).get(arm["name"])})
    return rows


def claim_rows(body: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Per claim: both means, the Welch p-value and a verdict at this n, and the paired p-value."""
    out = []
    for c in body["claims"]:
        a, b = _errors(body["runs"], c["better"]), _errors(body["runs"], c["worse"])
        if not a or not b:
            continue
        p, diff = welch(a, b), float(np.mean(a) - np.mean(b))
        n = min(len(a), len(b))
        if math.isnan(p):
            verdict = f"untested (n={n})"
        elif p < ALPHA:
            verdict = "holds" if diff < 0 else "reversed"
        else:
            verdict = f"not distinguishable at n={n}"
        out.append({**c, "better_mean": float(np.mean(a)), "worse_mean": float(np.mean(b)), "difference": diff,
                    "p": p, "p_paired": paired(_by_seed(body["runs"], c["better"]), _by_seed(body["runs"], c["worse"])),
                    "verdict": verdict})
    return out


def _pm(mean: float, std: float = float("nan")) -> str:
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def table_markdown(body: Dict[str, Any]) -> str:
    """The study's tables (arms, then claims) as Markdown."""
    lines = ["| arm | n | params | MFLOPs | test error % | paper (CIFAR-10) error % |", "|---|---:|---:|---:|---:|---:|"]
    for r in arm_rows(body):
        paper = _pm(*r["paper"]) if r["paper"] else "-"
        lines.append(f"| {r['label']} | {r['n']} | {r['params'] / 1e3:.1f}k | {r['flops'] / 1e6:.2f} | "
                     f"{_pm(r['error_mean'], r['error_std'])} | {paper} |")
    claims = claim_rows(body)
    if claims:
        lines += ["", "| claim | ours: better vs worse (error %) | paper | Welch p | paired p (by seed) | "
                  "at this scale (Welch, α = 0.05) |", "|---|---|---|---:|---:|---|"]
        for c in claims:
            paper = f"{c['paper'][0]:.2f} vs {c['paper'][1]:.2f}" if len(c["paper"]) == 2 else "-"
            p, pp = ("-" if math.isnan(v) else f"{v:.3f}" for v in (c["p"], c["p_paired"]))
            lines.append(f"| {c['name']} | {c['better_mean']:.2f} vs {c['worse_mean']:.2f} | {paper} | {p} | {pp} | "
                         f"{c['verdict']} |")
    return "\n".join(lines) + "\n"


def plot_study(body: Dict[str, Any], folder: str) -> List[str]:
    """``error_vs_params.png`` (every run, per arm), ``search_sparsity.png`` (zero λ per search
    epoch) and ``searched_blocks.png`` (each search arm's first block drawing, one row per
    seed); the written paths."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    written = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
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
    path = os.path.join(folder, "error_vs_params.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    search_arms = [a["name"] for a in body["arms"] if a["kind"] == "search"]
    path = _plot_sparsity(body, search_arms, folder, plt)
    if path:
        written.append(path)
    cells = {}
    for r in body["runs"]:
        if r["kind"] == "search":
            d = os.path.dirname(r["arch"])
            pngs = sorted(f for f in os.listdir(d) if f.startswith("cell") and f.endswith(".png")) if os.path.isdir(d) else []
            if pngs:
                cells[(r["arm"], r["seed"])] = os.path.join(d, pngs[0])
    seeds = sorted({s for _, s in cells})
    if cells:
        fig, axes = plt.subplots(len(seeds), len(search_arms), figsize=(3.2 * len(search_arms), 3.0 * len(seeds)),
                                 squeeze=False)
        for i, seed in enumerate(seeds):
            for j, arm in enumerate(search_arms):
                ax = axes[i][j]
                ax.axis("off")
                if (arm, seed) in cells:
                    ax.imshow(plt.imread(cells[(arm, seed)]))
                ax.set_title(f"{arm}, seed {seed}", fontsize=9)
        fig.tight_layout()
        path = os.path.join(folder, "searched_blocks.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _plot_sparsity(body: Dict[str, Any], search_arms: List[str], folder: str, plt) -> str:
    """``search_sparsity.png``: the share of λ exactly zero after each search epoch, per search
    run (the λ dynamics behind each searched block); empty when no search has run."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
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
        plt.close(fig)
        return ""
    ax.set_xlabel("search epoch")
    ax.set_ylabel("λ exactly zero (share)")
    ax.set_title("λ sparsity over the search, every seed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(folder, "search_sparsity.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
