"""The planted check of the search itself (issue 26): does DSO-NAS drop ops that carry no
information about the label? (``dso-nas search-check``, ``make search-check``)

Beside each real op ``X`` the candidate set gets a decoy ``decoy_X``: the same op applied to
*another sample of the batch* (the batch rolled by one), so its output is a real feature map of
the same statistics that says nothing about this sample's label. The shipped Fashion-MNIST
search runs with half real and half decoy ops over several seeds, and the derived blocks are
read: how many of the real and of the decoy op slots each keeps, and how often λ's support
changed between search epochs. No accuracy is involved, so small-data noise in the retraining
does not blur the answer. A search that tells the two apart keeps decoys at a small fraction of
the real ops' rate (target: at most 1/3 of it and at most 25 % of the decoy slots, every seed).

Every seed is a search run folder under the output folder; a finished one is read, a killed one
resumed, so the check continues where it stopped. The decoys are test and check code, never
candidates a config may name: :func:`register_decoys` adds them to the op table of the process
that runs the check only, when its searches start (the package never registers them).
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List, Sequence

from mxnet.gluon import HybridBlock

from .. import run
from ..errors import UserError
from ..ops import OPS, OpSpec
from ..config import load_config
from ..spaces import get_space
from ..spaces.archfile import architecture_space, load_architecture

__all__ = ["DECOY", "MAX_RATIO", "MAX_DECOY_RATE", "SUMMARY", "DEFAULT_CONFIG", "decoy_names", "register_decoys",
           "read_seed", "meets_target", "table", "run_seed", "search_check"]

LOG = logging.getLogger("dso_nas")
DECOY = "decoy_"
#: The target of issue 26: decoys kept at most at this fraction of the real ops' rate ...
MAX_RATIO = 1.0 / 3.0
#: ... and in at most this share of their slots, in every seed.
MAX_DECOY_RATE = 0.25
SUMMARY = "summary.json"
#: The search the check reads by default: the embedded default (the repository's experiment file).
DEFAULT_CONFIG = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                               "experiments", "fashion_mnist", "search.yaml"))


class Decoy(HybridBlock):
    """``inner`` applied to the batch rolled by one sample: row ``i`` reads row ``i + 1``."""

    def __init__(self, inner: HybridBlock, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.inner = inner

    def hybrid_forward(self, F, x):
        rows = F.contrib.arange_like(x, axis=0)
        count = F.slice_axis(F.shape_array(x), axis=0, begin=0, end=1).astype("float32")
        return self.inner(F.take(x, F.broadcast_mod(rows + 1, count), axis=0))


def decoy_names(real: Sequence[str]) -> List[str]:
    """The names of the decoys of the real ops ``real`` (``ConfigError`` for an unknown op);
    nothing is registered."""
    return [_decoy_name(OPS.get(name)) for name in real]


def register_decoys(real: Sequence[str]) -> List[str]:
    """Register ``decoy_X`` for every op ``X`` of ``real`` in this process's op table; their names.

    A decoy is ``X`` on the batch rolled by one sample, with ``X``'s parameters and cost."""
    names = []
    for name in real:
        spec = OPS.get(name)
        decoy = _decoy_name(spec)
        if decoy not in OPS:
            OPS.register(decoy, OpSpec(
                name=decoy, family=spec.family if spec.exclusive else "decoy", expansion=spec.expansion,
                changes_width=spec.changes_width, exclusive=spec.exclusive,
                builder=lambda *args, spec=spec, **kw: Decoy(spec.builder(*args), **kw),
                coster=spec.coster))
        names.append(decoy)
    return names


def _decoy_name(spec: OpSpec) -> str:
    """``decoy_X``; an op of a space's own family keeps its family prefix (``darts_decoy_X``, the
    DARTS space's ``decoy_X``)."""
    prefix = spec.family + "_"
    if spec.exclusive and spec.name.startswith(prefix):
        return prefix + DECOY + spec.name[len(prefix):]
    return DECOY + spec.name


def _is_decoy(op: str) -> bool:
    return DECOY in op


def read_seed(run_dir: str, n_real: int, n_decoy: int) -> Dict[str, Any]:
    """The real and decoy op slots a finished search kept, per block (``n_real`` / ``n_decoy``:
    the candidate ops of each kind), and its support flips per search epoch (``log.jsonl``)."""
    arch = load_architecture(os.path.join(run_dir, "architecture.yaml"))
    blocks, slots = [], 0
    for kept, per_op in architecture_space(arch).planted_blocks(arch):
        blocks.append({"real": sum(not _is_decoy(op) for op in kept), "decoy": sum(_is_decoy(op) for op in kept)})
        slots = per_op
    slots_real, slots_decoy = slots * n_real, slots * n_decoy
    with open(os.path.join(run_dir, "log.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    flips = [int(r["support_flips"]) for r in records if r.get("phase") == "search"]
    last = next((r for r in reversed(records) if r.get("phase") == "search"), {})
    real_rate = sum(b["real"] for b in blocks) / float(slots_real * len(blocks))
    decoy_rate = sum(b["decoy"] for b in blocks) / float(slots_decoy * len(blocks))
    return {"blocks": blocks, "slots": {"real": slots_real, "decoy": slots_decoy},
            "real_rate": real_rate, "decoy_rate": decoy_rate,
            "zero_lambda": int(last.get("zero_lambda", 0)), "num_lambda": int(last.get("num_lambda", 0)),
            "flips_per_epoch": flips, "meets_target": meets_target(real_rate, decoy_rate)}


def meets_target(real_rate: float, decoy_rate: float) -> bool:
    """Decoys kept at most at :data:`MAX_RATIO` of the real rate and in :data:`MAX_DECOY_RATE` of their slots."""
    return decoy_rate <= MAX_RATIO * real_rate and decoy_rate <= MAX_DECOY_RATE


def table(body: Dict[str, Any]) -> str:
    """The markdown table of a summary."""
    rows = ["| seed | real kept | decoys kept | decoy / real | flips per epoch | zero λ | target |",
            "|---|---|---|---|---|---|---|"]
    for seed, r in sorted(body["seeds"].items(), key=lambda kv: int(kv[0])):
        ratio = r["decoy_rate"] / r["real_rate"] if r["real_rate"] else float("inf")
        rows.append(f"| {seed} | {100 * r['real_rate']:.0f} % | {100 * r['decoy_rate']:.0f} % | {ratio:.2f} | "
                    f"{', '.join(map(str, r['flips_per_epoch']))} | {r['zero_lambda']}/{r['num_lambda']} | "
                    f"{'met' if r['meets_target'] else 'missed'} |")
    return "\n".join(rows) + "\n"


def run_seed(config: str, seed: int, ops: Sequence[str], out: str, overrides: Sequence[str]) -> str:
    """Search one seed into ``out`` (resumed when a checkpoint is there; read when finished)."""
    if os.path.exists(os.path.join(out, "architecture.yaml")):
        return out
    if os.path.exists(os.path.join(out, "search.ckpt")):
        return run.search(None, [], resume=out)
    space = get_space(load_config(config, list(overrides)).model.space)
    return run.search(config, [f"seed={seed}", *space.search_ops_overrides(ops), f"output_dir={out}", *overrides])


def search_check(config: str, seeds: Sequence[int], real: Sequence[str], output_dir: str,
                 overrides: Sequence[str] = (), summary: bool = False) -> Dict[str, Any]:
    """Search every seed that has not finished (unless ``summary``), then read them all.

    Parameters
    ----------
    config : str
        The experiment file of the search to check.
    seeds : sequence of int
        One search each, in ``output_dir/seed<N>``.
    real : sequence of str
        The real ops; each gets its decoy.
    output_dir : str
        The check's folder; gets ``summary.json``.
    overrides : sequence of str
        ``KEY=VALUE`` config overrides for every seed.
    summary : bool
        Only read the seeds that have finished.

    Returns
    -------
    dict
        The summary written to ``output_dir/summary.json``; its table is :func:`table`.
    """
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds must be distinct non-negative integers, got {list(seeds)}")
    outs = {seed: os.path.join(output_dir, f"seed{seed}") for seed in seeds}
    finished = lambda out: os.path.exists(os.path.join(out, "architecture.yaml"))  # noqa: E731
    decoys = decoy_names(real)
    if not summary or any(finished(out) for out in outs.values()):
        register_decoys(real)  # the searches build them; the architecture files name them
    body: Dict[str, Any] = {"config": os.path.abspath(config), "real": list(real), "decoys": decoys,
                            "overrides": list(overrides), "seeds": {}}
    for seed, out in outs.items():
        if not summary:
            run_seed(config, seed, list(real) + decoys, out, overrides)
        if finished(out):
            body["seeds"][str(seed)] = read_seed(out, len(real), len(decoys))
    if not body["seeds"]:
        raise UserError(f"no finished search under {output_dir}")
    body["meets_target"] = all(r["meets_target"] for r in body["seeds"].values())
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, SUMMARY), "w", encoding="utf-8") as f:
        json.dump(body, f, indent=2)
    LOG.info("wrote %s; target %s", os.path.join(output_dir, SUMMARY),
             "met in every seed" if body["meets_target"] else "missed")
    return body
