"""A study's table and claims from its records: mean ± std per arm, Welch and paired t-tests.

Its figures are :mod:`dso_nas.plots.study`.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence

import numpy as np

__all__ = ["arm_rows", "claim_rows", "table_markdown", "welch", "paired"]

ALPHA = 0.05


def welch(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances); NaN when either side has < 2."""
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    from scipy import stats  # noqa: PLC0415 - defers the slow scipy import (only the summary needs it)

    if np.std(a) == 0 and np.std(b) == 0:
        return 0.0 if np.mean(a) != np.mean(b) else 1.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def paired(a: Dict[int, float], b: Dict[int, float]) -> float:
    """Two-sided p-value of a paired t-test over the seeds both arms ran (a seed fixes the
    retraining's data order, which every arm of that seed shares); NaN below 2 pairs."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return float("nan")
    from scipy import stats  # noqa: PLC0415 - defers the slow scipy import

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
                     "search_seconds": float(np.mean([r.get("search_seconds", 0.0) for r in runs])),
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
    lines = ["| arm | n | params | MFLOPs | search min | test error % | paper (CIFAR-10) error % |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in arm_rows(body):
        paper = _pm(*r["paper"]) if r["paper"] else "-"
        search = f"{r['search_seconds'] / 60:.1f}" if r["search_seconds"] else "-"
        lines.append(f"| {r['label']} | {r['n']} | {r['params'] / 1e3:.1f}k | {r['flops'] / 1e6:.2f} | {search} | "
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
