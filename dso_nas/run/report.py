"""``dso-nas report``: our result beside the paper's Table 1 row for the same setting."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Tuple

from ..config import load_config
from ..errors import UserError
from ..runlog import CONFIG_NAME, phase_seconds
from .folder import RESULT_FILE

__all__ = ["PAPER_TABLE1", "STUDY_REFERENCE", "paper_row", "report"]


# TPAMI Table 1 (CIFAR-10): test error % (mean ± std over 5 runs) and params.
PAPER_TABLE1 = {
    "DSO-NAS-share": (2.74, 0.07, 3.0e6),
    "DSO-NAS-full": (2.83, 0.12, 3.0e6),
    "random-share": (3.48, 0.21, 3.0e6),
    "random-full": (3.46, 0.19, 3.0e6),
    "full network": (3.32, 0.05, 3.0e6),
}

# The hand-designed reference of this repository's study (docs/study.md, `make study`), per
# dataset: test error % (mean ± std over its seeds) and params, as measured and published there
# (the study's recipe: 4 retraining epochs on the first 20,000 training images).
STUDY_REFERENCE: Dict[str, Dict[str, Any]] = {
    "fashion_mnist": {"name": "ResNet-20 (study, 20k images)", "model": "gluoncv cifar_resnet20_v1, 1 channel",
                      "error": 10.87, "std": 0.26, "params": 47010, "source": "docs/study.md"},
}


def paper_row(arch: Any) -> str:
    """The Table-1 row an architecture is compared with: its baseline kind, else DSO-NAS-<scope>;
    empty for a hand-designed reference (no scope), which Table 1 has no row for."""
    if not hasattr(arch, "scope"):
        return ""
    source = str(getattr(arch, "meta", {}).get("source", ""))
    return {"random-share": "random-share", "random-full": "random-full", "full": "full network"}.get(
        source, "DSO-NAS-" + arch.scope)


def report(run_dir: str) -> Tuple[str, Dict[str, Any]]:
    """Our result beside the paper's Table 1 row for the same setting, with search cost and plots."""
    result_path = next((p for p in (os.path.join(run_dir, RESULT_FILE), os.path.join(run_dir, "retrain", RESULT_FILE))
                        if os.path.exists(p)), None)
    if result_path is None and not os.path.exists(os.path.join(run_dir, "log.jsonl")):
        raise UserError(f"{run_dir} is not a run folder (no log.jsonl or {RESULT_FILE})")
    result = {}
    if result_path:
        with open(result_path, encoding="utf-8") as f:
            result = json.load(f)
    seconds = phase_seconds(run_dir)
    row = result["paper_row"] if "paper_row" in result else \
        "DSO-NAS-" + load_config(os.path.join(run_dir, CONFIG_NAME)).model.scope
    err, std, params = PAPER_TABLE1.get(row, (float("nan"),) * 3)
    pngs = sorted(f for f in os.listdir(run_dir) if f.endswith(".png"))
    data = {"run": run_dir, "paper_row": row, "paper_error": err, "paper_error_std": std, "paper_params": params,
            "search_hours": (seconds["pretrain"] + seconds["search"]) / 3600.0, **result,
            "drawings": [p for p in pngs if p.startswith("cell")], "plots": [p for p in pngs if not p.startswith("cell")]}
    lines = [f"run: {run_dir}",
             f"{'':32s}{'test error %':>14s}{'params':>10s}",
             *([f"{'paper ' + row + ' (CIFAR-10)':32s}{f'{err:.2f} ± {std:.2f}':>14s}{params / 1e6:>9.2f}M"]
               if row in PAPER_TABLE1 else [])]
    reference = STUDY_REFERENCE.get(result.get("dataset", ""))
    if reference:
        data["study_reference"] = reference
        figure = f"{reference['error']:.2f} ± {reference['std']:.2f}"
        lines.append(f"{reference['name']:32s}{figure:>14s}{reference['params'] / 1e6:>9.2f}M")
    if result:
        split = result.get("eval_split", "test")
        name = "ours (" + result.get("dataset", "?") + ("" if split == "test" else ", validation") + ")"
        lines.append(f"{name:32s}{100 * result[split + '_error']:>14.2f}{result['params'] / 1e6:>9.2f}M")
        lines.append(f"{'test' if split == 'test' else 'validation'} accuracy: {100 * result[split + '_acc']:.2f}%  "
                     f"(width multiplier {result['width_mult']:.3f}, {result['flops'] / 1e6:.1f}M FLOPs)")
        if result.get("block_params"):
            lines.append("derived blocks: params " + ", ".join(f"{p / 1e3:.1f}k" for p in result["block_params"])
                         + " | FLOPs " + ", ".join(f"{f / 1e6:.2f}M" for f in result["block_flops"]))
    lines.append(f"search cost here: {seconds['pretrain'] / 3600:.3f} h pre-train + {seconds['search'] / 3600:.3f} h search")
    for key in ("drawings", "plots"):
        if data[key]:
            lines.append(f"{key}: " + ", ".join(os.path.join(run_dir, p) for p in data[key]))
    return "\n".join(lines), data
