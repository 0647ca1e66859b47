"""``dso-nas report``: our result beside the paper's row for the same setting: Table 1 (CIFAR-10),
Tables 2 and 5 (ImageNet: top-1 / top-5, params, FLOPs; latency at batch 1), Table 3 (the
mobile space, with the reference nets timed in the same call: :mod:`dso_nas.run.table3`) or
Table 4 (PASCAL VOC segmentation: mIoU and params)."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Tuple

from ..config import load_config
from ..errors import ArchitectureError, UserError
from ..paths import read_text, read_yaml
from ..runlog import CONFIG_NAME, phase_seconds
from .folder import ARCH_FILE, RESULT_FILE

__all__ = ["PAPER_TABLE1", "PAPER_TABLE2", "PAPER_TABLE4", "PAPER_TABLE5", "NASP_TABLE2", "STUDY_REFERENCE", "paper_row",
           "report"]


# TPAMI Table 1 (CIFAR-10): test error % (mean ± std over 5 runs) and params.
PAPER_TABLE1 = {
    "DSO-NAS-share": (2.74, 0.07, 3.0e6),
    "DSO-NAS-full": (2.83, 0.12, 3.0e6),
    "random-share": (3.48, 0.21, 3.0e6),
    "random-full": (3.46, 0.19, 3.0e6),
    "full network": (3.32, 0.05, 3.0e6),
}

# TPAMI Table 2 (ImageNet): top-1 %, top-5 % error, params, FLOPs; † = a CIFAR-10 block transferred.
PAPER_TABLE2 = {
    "DSO-NAS-share": (25.4, 8.3, 4.7e6, 567e6),
    "DSO-NAS-full": (25.7, 8.1, 4.6e6, 608e6),
    "DSO-NAS†": (26.2, 8.6, 4.7e6, 571e6),
    "random-share": (26.5, 9.7, 4.7e6, 564e6),
    "random-full": (26.6, 9.8, 4.3e6, 583e6),
}

# TPAMI Table 4 (PASCAL VOC 2012 val, DeepLabv3 head at output stride 16): mIoU % and params.
PAPER_TABLE4 = {
    "DSO-NAS-seg": (76.40, 6.7e6),
    "DSO-NAS-cls": (76.00, 6.5e6),
    "MobileNet v1": (75.29, 11.2e6),
    "MobileNet v2": (75.70, 4.5e6),
}

# TPAMI Table 5: latency in ms at batch 1, 224x224 (CPU: Intel i5-6600K; GPU: GTX 1080Ti), FLOPs.
PAPER_TABLE5 = {
    "DSO-NAS-share": (36.19, 10.34, 586e6),
    "DSO-NAS-share+AL": (15.93, 6.88, 567e6),
}

# NASP's Table 2 (CIFAR-10, the DARTS cell space, cutout): test error % (± std where given), params,
# ops in the space, search GPU-days. The text in ../shared/papers (arXiv); its conference version
# reports NASP 2.83 ± 0.09 and, with 12 ops, 2.44 ± 0.04 (docs/compare.md).
NASP_TABLE2 = {
    "DARTS (first order)": (3.00, 0.14, 3.3e6, 7, 1.5),
    "DARTS (second order)": (2.76, 0.09, 3.3e6, 7, 4.0),
    "NASP": (2.8, float("nan"), 3.3e6, 7, 0.2),
    "NASP (12 ops)": (2.5, float("nan"), 7.4e6, 12, 0.3),
}

# The hand-designed reference of this repository's study (docs/study.md, `make study`), per
# dataset: test error % (mean ± std over its seeds) and params, as measured and published there
# (the study's recipe: 4 retraining epochs on the first 20,000 training images).
STUDY_REFERENCE: Dict[str, Dict[str, Any]] = {
    "fashion_mnist": {"name": "ResNet-20 (study, 20k images)", "model": "gluoncv cifar_resnet20_v1, 1 channel",
                      "error": 10.87, "std": 0.26, "params": 47010, "source": "docs/study.md"},
}

# The same for the DARTS cell space: the random cells of this repository's compare
# (docs/compare.md, `make compare`: 6 retraining epochs on the first 10,000 training images,
# every cell at an 80k-parameter budget), the arm every search method there is measured against.
COMPARE_REFERENCE: Dict[str, Dict[str, Any]] = {
    "fashion_mnist": {"name": "random cells (compare, 10k img)", "model": "DARTS space, 8 random entries a cell",
                      "error": 15.88, "std": 0.35, "params": 74666, "source": "docs/compare.md"},
}


def paper_row(arch: Any, dataset: str = "", task: str = "classification") -> str:
    """The paper row an architecture is compared with: its baseline kind, else DSO-NAS-<scope>
    (on ImageNet, DSO-NAS† for a block searched on another layout, Table 2; in segmentation
    DSO-NAS-seg for a block searched on segmentation, DSO-NAS-cls for one searched on
    classification, Table 4); empty for a hand-designed reference (no scope), which the tables
    have no row for."""
    if not hasattr(arch, "scope"):
        return ""
    meta = getattr(arch, "meta", {})
    if task == "segmentation":
        return "DSO-NAS-seg" if meta.get("task", "classification") == "segmentation" else "DSO-NAS-cls"
    source = str(meta.get("source", ""))
    baseline = {"random-share": "random-share", "random-full": "random-full", "full": "full network"}.get(source)
    if baseline:
        return baseline
    moved = meta.get("transferred_from", {}).get("stem", "imagenet") != "imagenet"
    return "DSO-NAS†" if dataset == "imagenet" and moved else "DSO-NAS-" + arch.scope


def _imagenet_lines(row: str, result: Dict[str, Any]) -> list:
    """Table 2 and Table 5 beside an ImageNet result."""
    lines = [f"{'':32s}{'top-1 / top-5 error %':>22s}{'params':>9s}{'FLOPs':>9s}"]
    if row in PAPER_TABLE2:
        t1, t5, params, flops = PAPER_TABLE2[row]
        lines.append(f"{'paper ' + row + ' (Table 2)':32s}{f'{t1:.1f} / {t5:.1f}':>22s}{params / 1e6:>8.1f}M"
                     f"{flops / 1e6:>8.0f}M")
    if result:
        errors = f"{100 * result['test_error']:.1f} / {100 * result.get('test_top5_error', float('nan')):.1f}"
        lines.append(f"{'ours (' + result.get('dataset', '?') + ')':32s}{errors:>22s}"
                     f"{result['params'] / 1e6:>8.2f}M{result['flops'] / 1e6:>8.1f}M")
    lines.append(f"{'':32s}{'latency ms CPU / GPU (batch 1)':>32s}")
    for name, (cpu, gpu, flops) in PAPER_TABLE5.items():
        lines.append(f"{'paper ' + name + ' (Table 5)':32s}{f'{cpu:.2f} / {gpu:.2f}':>32s}  at {flops / 1e6:.0f}M FLOPs")
    if result.get("latency_ms") is not None:
        lines.append(f"{'ours, ' + result.get('latency_device', '?'):32s}{result['latency_ms']:>32.2f}"
                     f"  at {result.get('latency_input', '?')}x{result.get('latency_input', '?')}")
    return lines


def _darts_space_lines(method: str) -> list:
    """NASP's Table 2 (the DARTS cell space on CIFAR-10) above our row."""
    lines = []
    for name, (err, std, params, ops, days) in NASP_TABLE2.items():
        figure = f"{err:.2f}" + ("" if std != std else f" ± {std:.2f}")
        lines.append(f"{'NASP Table 2: ' + name:32s}{figure:>14s}{params / 1e6:>9.2f}M  {ops} ops, {days} GPU-days")
    lines.append(f"searched here by: {method}")
    return lines


def arch_origin(arch_path: Optional[str], cfg: Any) -> str:
    """What made the architecture: the search method its file names (``meta.method``), a
    baseline (``meta.baseline``), else the run's own ``search.method``.

    A retraining folder's config keeps the default method, so its architecture file is asked first.
    """
    data = read_yaml(arch_path, "architecture file", ArchitectureError) if arch_path else None
    meta = data.get("meta") if isinstance(data, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    if meta.get("method"):
        return str(meta["method"])
    if meta.get("baseline"):
        return f"{meta['baseline']} (baseline)"
    return cfg.search.method


def _segmentation_lines(row: str, result: Dict[str, Any]) -> list:
    """Table 4 beside a segmentation result."""
    lines = [f"{'':32s}{'mIoU %':>10s}{'params':>10s}"]
    for name, (miou, params) in PAPER_TABLE4.items():
        mark = " <- ours" if name == row else ""
        lines.append(f"{'paper ' + name + ' (Table 4)':32s}{miou:>10.2f}{params / 1e6:>9.1f}M{mark}")
    if result:
        split = result.get("eval_split", "val")
        lines.append(f"{'ours (' + result.get('dataset', '?') + ', ' + split + ')':32s}{100 * result['miou']:>10.2f}"
                     f"{result['params'] / 1e6:>9.2f}M")
        lines.append(f"pixel accuracy {100 * result['pixel_accuracy']:.2f}%  (width multiplier "
                     f"{result['width_mult']:.3f}, {result['flops'] / 1e6:.1f}M FLOPs)")
    return lines


def report(run_dir: str) -> Tuple[str, Dict[str, Any]]:
    """Our result beside the paper's Table 1 row for the same setting, with search cost and plots."""
    result_path = next((p for p in (os.path.join(run_dir, RESULT_FILE), os.path.join(run_dir, "retrain", RESULT_FILE))
                        if os.path.exists(p)), None)
    if result_path is None and not os.path.exists(os.path.join(run_dir, "log.jsonl")):
        raise UserError(f"{run_dir} is not a run folder (no log.jsonl or {RESULT_FILE})")
    result = {}
    if result_path:
        try:
            result = json.loads(read_text(result_path, "result file"))
        except ValueError as e:
            raise UserError(f"result file {result_path} is not valid JSON ({e})") from None
        if not isinstance(result, dict):
            raise UserError(f"result file {result_path} must hold a JSON object")
    try:
        return _report(run_dir, result)
    except KeyError as e:
        raise UserError(f"{result_path or run_dir}: a dso-nas result has {e}, this one has not") from None


def _report(run_dir: str, result: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
    """:func:`report` of a read result (``{}``: a search folder)."""
    seconds = phase_seconds(run_dir)
    cfg = load_config(os.path.join(run_dir, CONFIG_NAME)) if os.path.exists(os.path.join(run_dir, CONFIG_NAME)) else None
    row = result["paper_row"] if "paper_row" in result else "DSO-NAS-" + cfg.model.scope
    imagenet = result.get("dataset") == "imagenet"
    segmentation = "miou" in result
    err, std, params = PAPER_TABLE1.get(row, (float("nan"),) * 3)
    pngs = sorted(f for f in os.listdir(run_dir) if f.endswith(".png"))
    data = {"run": run_dir, "paper_row": row, "paper_error": err, "paper_error_std": std, "paper_params": params,
            "search_hours": (seconds["pretrain"] + seconds["search"]) / 3600.0, **result,
            "drawings": [p for p in pngs if p.startswith("cell")], "plots": [p for p in pngs if not p.startswith("cell")]}
    lines = [f"run: {run_dir}",
             f"{'':32s}{'test error %':>14s}{'params':>10s}",
             *([f"{'paper ' + row + ' (CIFAR-10)':32s}{f'{err:.2f} ± {std:.2f}':>14s}{params / 1e6:>9.2f}M"]
               if row in PAPER_TABLE1 and not imagenet else [])]
    arch_path = next((p for p in (os.path.join(run_dir, ARCH_FILE), os.path.join(run_dir, "retrain", ARCH_FILE))
                      if os.path.exists(p)), None)
    darts_space = cfg is not None and cfg.model.space == "darts"
    if darts_space:
        data["nasp_table2"] = NASP_TABLE2
        data["search_method"] = arch_origin(arch_path, cfg)
        lines[2:] = _darts_space_lines(data["search_method"])
    reference = (COMPARE_REFERENCE if darts_space else STUDY_REFERENCE).get(result.get("dataset", ""))
    if reference:
        data["study_reference"] = reference
        figure = f"{reference['error']:.2f} ± {reference['std']:.2f}"
        lines.append(f"{reference['name']:32s}{figure:>14s}{reference['params'] / 1e6:>9.2f}M")
    if imagenet:
        data["paper_table2"], data["paper_table5"] = PAPER_TABLE2.get(row), PAPER_TABLE5
        lines[1:] = _imagenet_lines(row, result)
    if segmentation:
        data["paper_table4"] = PAPER_TABLE4
        lines[1:] = _segmentation_lines(row, result)
    if result and not imagenet and not segmentation:
        split = result.get("eval_split", "test")
        name = "ours (" + result.get("dataset", "?") + ("" if split == "test" else ", validation") + ")"
        lines.append(f"{name:32s}{100 * result[split + '_error']:>14.2f}{result['params'] / 1e6:>9.2f}M")
        lines.append(f"{'test' if split == 'test' else 'validation'} accuracy: {100 * result[split + '_acc']:.2f}%  "
                     f"(width multiplier {result['width_mult']:.3f}, {result['flops'] / 1e6:.1f}M FLOPs)")
        if result.get("block_params"):
            lines.append("derived blocks: params " + ", ".join(f"{p / 1e3:.1f}k" for p in result["block_params"])
                         + " | FLOPs " + ", ".join(f"{f / 1e6:.2f}M" for f in result["block_flops"]))
    if result and imagenet:
        lines.append(f"width multiplier {result['width_mult']:.3f}; top-1 accuracy {100 * result['test_acc']:.2f}%")
    if cfg is not None and cfg.model.space == "mobile" and arch_path:  # Table 3, timed now
        from .table3 import table3  # noqa: PLC0415 - defers the slow MXNet import (only Table 3 times nets)

        extra, figures = table3(cfg, arch_path, result)
        lines[1:] = extra
        data.update(figures)
    if seconds["pretrain"] + seconds["search"] > 0:  # a retraining folder logs no search
        lines.append(f"search cost here: {seconds['pretrain'] / 3600:.3f} h pre-train + "
                     f"{seconds['search'] / 3600:.3f} h search")
    for key in ("drawings", "plots"):
        if data[key]:
            lines.append(f"{key}: " + ", ".join(os.path.join(run_dir, p) for p in data[key]))
    return "\n".join(lines), data
