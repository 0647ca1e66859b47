"""Figures of a search or retraining run folder, drawn from its ``log.jsonl``.

* ``sparsity.png``: the fraction (left axis) and count (right axis) of zero λ after each
  search epoch, the λ-sparsity curve of the search.
* ``block_flops.png``: kept FLOPs per search block. Top: bars for the last search epoch over
  light bars for the first one, with stage boundaries when the run's ``config.yaml`` gives
  them (the layout of the distribution-of-FLOPs plot, ICLR'19 Fig. 5a, that TPAMI'20 §4.5.1
  discusses). Bottom: a heat map block × search epoch, to show where and when pruning happened.
* ``curves.png``: loss (top row) and accuracy (bottom row) per phase present (pre-training,
  search on D_w and D_λ, retraining on train and test), one column per phase, x = epoch
  within the phase (1-based: the record of epoch ``e`` is written after ``e + 1`` epochs).

Only figures whose data exist are written; the records come from
:mod:`~dso_nas.plots.records`, the figures from :mod:`~dso_nas.plots.canvas`.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import UserError
from .canvas import figure, save
from .records import PHASES, Record, load_phases, series, stage_sizes

log = logging.getLogger(__name__)

__all__ = ["SPARSITY_PNG", "BLOCK_FLOPS_PNG", "CURVES_PNG", "plot_sparsity", "plot_block_flops", "plot_curves",
           "plot_run", "plot_run_or_warn"]

SPARSITY_PNG = "sparsity.png"
BLOCK_FLOPS_PNG = "block_flops.png"
CURVES_PNG = "curves.png"

# Per phase: (loss key, accuracy key, legend label) of every curve drawn in its column.
CURVE_KEYS: Dict[str, Tuple[Tuple[str, str, str], ...]] = {
    "pretrain": (("loss", "acc", "train (D_w)"),),
    "search": (("weights_loss", "weights_acc", "D_w (weights)"), ("lambda_loss", "lambda_acc", "D_λ (structure)")),
    "retrain": (("loss", "acc", "train"), ("test_loss", "test_acc", "test"), ("val_loss", "val_acc", "validation")),
}
PHASE_TITLES = {"pretrain": "pre-training", "search": "search", "retrain": "retraining"}


def plot_sparsity(search: Sequence[Record], path: str) -> Optional[str]:
    """Fraction and count of zero λ over the search epochs, and below them the support flips
    of each epoch (λ that went from zero to non-zero or back) where the records have them.

    Parameters
    ----------
    search : sequence of dict
        Search records (``zero_lambda``, ``num_lambda``, optionally ``support_flips``), sorted by epoch.
    path : str
        Output PNG.

    Returns
    -------
    str or None
        ``path``, or ``None`` when no record has both counts.
    """
    rows = [r for r in search if isinstance(r.get("zero_lambda"), int) and r.get("num_lambda")]
    if not rows:
        return None
    epochs = np.array([r["epoch"] + 1 for r in rows])
    zero = np.array([r["zero_lambda"] for r in rows], dtype=float)
    total = float(rows[-1]["num_lambda"])
    frac = zero / np.array([r["num_lambda"] for r in rows], dtype=float)
    flips = [r.get("support_flips") for r in rows]
    with_flips = all(isinstance(f, int) for f in flips)
    fig = figure(6.4, 5.4 if with_flips else 3.8)
    ax = fig.add_subplot(2, 1, 1) if with_flips else fig.add_subplot(1, 1, 1)
    ax.plot(epochs, frac, marker="o" if len(rows) <= 30 else None, ms=3, color="#2b6cb0")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("search epoch")
    ax.set_ylabel("fraction of zero λ")
    ax.grid(alpha=0.3)
    right = ax.secondary_yaxis("right", functions=(lambda f: f * total, lambda c: c / total))
    right.set_ylabel(f"zero λ (of {int(total)})")
    ax.set_title(f"λ sparsity: {int(zero[-1])}/{int(rows[-1]['num_lambda'])} zero "
                 f"({100 * frac[-1]:.1f}%) after epoch {epochs[-1]}", fontsize=10)
    if with_flips:
        low = fig.add_subplot(2, 1, 2, sharex=ax)
        low.bar(epochs, flips, color="#c05621", width=0.8)
        low.set_xlabel("search epoch")
        low.set_ylabel("support flips")
        low.grid(alpha=0.3, axis="y")
        ax.set_xlabel("")
    fig.tight_layout()
    return save(fig, path)


def _flops_matrix(search: Sequence[Record]) -> Tuple[np.ndarray, np.ndarray]:
    """Search epochs (1-based) and kept FLOPs, shape ``(epochs, blocks)``, of the records
    whose ``block_flops`` has as many blocks as the last such record."""
    rows = [r for r in search if isinstance(r.get("block_flops"), list) and r["block_flops"]]
    if not rows:
        return np.zeros(0, dtype=int), np.zeros((0, 0))
    n = len(rows[-1]["block_flops"])
    rows = [r for r in rows if len(r["block_flops"]) == n]
    return (np.array([r["epoch"] + 1 for r in rows]),
            np.array([r["block_flops"] for r in rows], dtype=float))


def _flops_unit(peak: float) -> Tuple[float, str]:
    """Divisor and label that keep the FLOPs numbers readable."""
    for scale, unit in ((1e9, "GFLOPs"), (1e6, "MFLOPs"), (1e3, "kFLOPs")):
        if peak >= scale:
            return scale, unit
    return 1.0, "FLOPs"


def _mark_stages(ax: Any, stages: Optional[Sequence[int]], horizontal: bool, label: bool,
                 color: str = "#555555") -> None:
    """Dashed lines between stages (block indices on the x axis, or on y when ``horizontal``)."""
    if not stages:
        return
    bounds = np.cumsum(stages)
    for b in bounds[:-1]:
        (ax.axhline if horizontal else ax.axvline)(b - 0.5, color=color, ls="--", lw=0.9)
    if label:
        starts = np.concatenate([[0], bounds[:-1]])
        for s, (lo, size) in enumerate(zip(starts, stages)):
            ax.text(lo + (size - 1) / 2.0, 0.98, f"stage {s + 1}", transform=ax.get_xaxis_transform(),
                    ha="center", va="top", fontsize=8, color="#333333")


def plot_block_flops(search: Sequence[Record], path: str, stages: Optional[Sequence[int]] = None) -> Optional[str]:
    """Kept FLOPs per search block: bars for the last epoch, heat map block × epoch.

    Parameters
    ----------
    search : sequence of dict
        Search records (``block_flops``), sorted by epoch.
    path : str
        Output PNG.
    stages : sequence of int, optional
        Search blocks per stage, to mark the stage boundaries.

    Returns
    -------
    str or None
        ``path``, or ``None`` when no record has per-block FLOPs.
    """
    epochs, flops = _flops_matrix(search)
    if not flops.size:
        return None
    n_blocks = flops.shape[1]
    scale, unit = _flops_unit(float(flops.max()))
    blocks = np.arange(n_blocks)
    fig = figure(max(7.4, 0.32 * n_blocks + 3.2), 6.6)
    bars = fig.add_subplot(2, 1, 1)
    if len(epochs) > 1:
        bars.bar(blocks, flops[0] / scale, width=0.8, color="#d0d7e1", label=f"search epoch {epochs[0]}")
    bars.bar(blocks, flops[-1] / scale, width=0.55, color="#2b6cb0", label=f"search epoch {epochs[-1]}")
    bars.set_xlim(-0.6, n_blocks - 0.4)
    bars.set_ylim(0, max(float(flops.max()) / scale, 1e-9) * 1.18)
    bars.set_xticks(blocks)
    bars.tick_params(axis="x", labelsize=7 if n_blocks > 16 else 9)
    bars.set_xlabel("search block")
    bars.set_ylabel(f"kept {unit}")
    bars.set_title(f"kept FLOPs per block (total {flops[-1].sum() / scale:.3g} {unit} "
                   f"after search epoch {epochs[-1]})", fontsize=10)
    bars.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    bars.grid(axis="y", alpha=0.3)
    _mark_stages(bars, stages, horizontal=False, label=True)
    heat = fig.add_subplot(2, 1, 2)
    image = heat.imshow(flops.T / scale, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest",
                        extent=(epochs[0] - 0.5, epochs[-1] + 0.5, -0.5, n_blocks - 0.5))
    heat.xaxis.get_major_locator().set_params(integer=True)
    heat.yaxis.get_major_locator().set_params(integer=True)
    heat.set_xlabel("search epoch")
    heat.set_ylabel("search block")
    heat.set_title("kept FLOPs per block over the search", fontsize=10)
    _mark_stages(heat, stages, horizontal=True, label=False, color="white")
    fig.colorbar(image, ax=heat, label=unit, pad=0.02)
    fig.tight_layout()
    return save(fig, path)


def _draw_phase(loss_ax: Any, acc_ax: Any, phase: str, records: Sequence[Record]) -> None:
    """Loss and accuracy curves of one phase on two axes."""
    for loss_key, acc_key, label in CURVE_KEYS[phase]:
        for ax, key in ((loss_ax, loss_key), (acc_ax, acc_key)):
            x, y = series(records, key)
            if x.size:
                ax.plot(x, y, marker="o" if x.size <= 30 else None, ms=3, label=label)
    loss_ax.set_title(PHASE_TITLES[phase], fontsize=10)
    loss_ax.set_ylabel("loss")
    acc_ax.set_ylabel("accuracy")
    acc_ax.set_xlabel("epoch within phase")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)


def plot_curves(phases: Dict[str, Sequence[Record]], path: str) -> Optional[str]:
    """Loss (top) and accuracy (bottom) curves, one column per phase present.

    Parameters
    ----------
    phases : dict
        ``phase -> records`` as returned by :func:`load_phases`.
    path : str
        Output PNG.

    Returns
    -------
    str or None
        ``path``, or ``None`` when no phase has curve data.
    """
    present = [p for p in PHASES if any(series(phases.get(p, ()), k)[0].size
                                        for keys in CURVE_KEYS[p] for k in keys[:2])]
    if not present:
        return None
    fig = figure(4.2 * len(present) + 0.6, 6.0)
    for col, phase in enumerate(present):
        loss_ax = fig.add_subplot(2, len(present), col + 1)
        acc_ax = fig.add_subplot(2, len(present), len(present) + col + 1, sharex=loss_ax)
        _draw_phase(loss_ax, acc_ax, phase, phases[phase])
    fig.tight_layout()
    return save(fig, path)


def plot_run(run_dir: str) -> List[str]:
    """Write the plots whose data exist into ``run_dir``.

    Parameters
    ----------
    run_dir : str
        A run folder with ``log.jsonl`` (search, retraining, or ``dso-nas run`` with ``retrain/``).

    Returns
    -------
    list of str
        Paths of the written PNGs among ``sparsity.png``, ``block_flops.png`` and
        ``curves.png``; empty when the folder has no (or an empty) log.

    Raises
    ------
    UserError
        When ``run_dir`` is not a folder.
    """
    if not os.path.isdir(run_dir):
        raise UserError(f"run folder {run_dir} does not exist")
    phases = load_phases(run_dir)
    search = phases.get("search", [])
    n_blocks = _flops_matrix(search)[1].shape[1] if search else 0
    written = [
        plot_sparsity(search, os.path.join(run_dir, SPARSITY_PNG)),
        plot_block_flops(search, os.path.join(run_dir, BLOCK_FLOPS_PNG), stage_sizes(run_dir, n_blocks)),
        plot_curves(phases, os.path.join(run_dir, CURVES_PNG)),
    ]
    paths = [p for p in written if p]
    if paths:
        log.info("plots: %s", ", ".join(paths))
    else:
        log.info("no epoch records in %s: nothing to plot", run_dir)
    return paths


def plot_run_or_warn(run_dir: str) -> None:
    """:func:`plot_run` after a finished phase: a failure is a warning, never the run's failure."""
    try:
        plot_run(run_dir)
    except UserError as e:  # a finished run must not fail on its figures
        log.warning("plots not written: %s", e)
