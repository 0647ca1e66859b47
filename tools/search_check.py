"""The planted check of the search itself (issue 26): does DSO-NAS drop ops that carry no
information about the label?

Beside each real op ``X`` the candidate set gets a decoy ``decoy_X``: the same op applied to
*another sample of the batch* (the batch rolled by one), so its output is a real feature map of
the same statistics that says nothing about this sample's label. The shipped Fashion-MNIST
search runs with half real and half decoy ops over several seeds, and the derived blocks are
read: how many of the real and of the decoy op slots each keeps, and how often λ's support
changed between search epochs. No accuracy is involved, so small-data noise in the retraining
does not blur the answer. A search that tells the two apart keeps decoys at a small fraction of
the real ops' rate (target: at most 1/3 of it and at most 25 % of the decoy slots, every seed).

    python tools/search_check.py                        # 3 seeds of the embedded default
    python tools/search_check.py --seeds 1 2 3 4 5 search.epochs=16
    python tools/search_check.py --summary              # the table of what has run

Every seed is a search run folder under ``--output-dir``; a finished one is read, a killed one
resumed, so the command continues where it stopped. The decoys exist in this process only: they
are registered here, never in the package's op table.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, Dict, List, Sequence

import numpy as np

from dso_nas.errors import UserError
from toolentry import guarded, prepare

LOG = logging.getLogger("dso_nas")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DECOY = "decoy_"
#: The target of issue 26: decoys kept at most at this fraction of the real ops' rate ...
MAX_RATIO = 1.0 / 3.0
#: ... and in at most this share of their slots, in every seed.
MAX_DECOY_RATE = 0.25
SUMMARY = "summary.json"


def register_decoys(real: Sequence[str]) -> List[str]:
    """Register ``decoy_X`` for every op ``X`` of ``real`` in this process's op table; their names.

    A decoy is ``X`` on the batch rolled by one sample, with ``X``'s parameters and cost."""
    from mxnet.gluon import HybridBlock  # noqa: PLC0415 - MXNet loads after the thread settings

    from dso_nas.ops import OPS, OpSpec  # noqa: PLC0415

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

    names = []
    for name in real:
        spec = OPS.get(name)
        decoy = DECOY + spec.name
        if decoy not in OPS:
            OPS.register(decoy, OpSpec(
                name=decoy, family="decoy", expansion=spec.expansion, changes_width=spec.changes_width,
                builder=lambda *args, spec=spec, **kw: Decoy(spec.builder(*args), **kw),
                coster=spec.coster))
        names.append(decoy)
    return names


def read_seed(run_dir: str) -> Dict[str, Any]:
    """The real and decoy op slots a finished search kept, per block, and its support flips."""
    from dso_nas.spaces.archfile import load_architecture  # noqa: PLC0415

    arch = load_architecture(os.path.join(run_dir, "architecture.yaml"))
    real = [op for op in arch.ops if not op.startswith(DECOY)]
    decoys = [op for op in arch.ops if op.startswith(DECOY)]
    blocks = []
    for cell in arch.block_cells():
        kept = [k.op for k in cell.ops]
        blocks.append({"real": sum(not op.startswith(DECOY) for op in kept),
                       "decoy": sum(op.startswith(DECOY) for op in kept)})
    slots_real, slots_decoy = arch.levels * len(real), arch.levels * len(decoys)
    history = np.load(os.path.join(run_dir, "lambda_history.npz"))
    epochs = sorted({int(k.split("_")[0][len("epoch"):]) for k in history.files})
    supports = [np.concatenate([history[k] for k in sorted(history.files, key=lambda k: int(k.split("param")[1]))
                                if k.startswith(f"epoch{e}_")]) != 0 for e in epochs]
    supports.insert(0, np.ones_like(supports[0]))  # λ = 1 on every edge when the search starts
    flips = [int((a != b).sum()) for a, b in zip(supports, supports[1:])]  # one per search epoch
    real_rate = sum(b["real"] for b in blocks) / float(slots_real * len(blocks))
    decoy_rate = sum(b["decoy"] for b in blocks) / float(slots_decoy * len(blocks))
    return {"blocks": blocks, "slots": {"real": slots_real, "decoy": slots_decoy},
            "real_rate": real_rate, "decoy_rate": decoy_rate,
            "zero_lambda": int(sum((~s).sum() for s in supports[-1:])), "num_lambda": int(supports[-1].size),
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
    from dso_nas import run  # noqa: PLC0415

    if os.path.exists(os.path.join(out, "architecture.yaml")):
        return out
    if os.path.exists(os.path.join(out, "search.ckpt")):
        return run.search(None, [], resume=out)
    ops_value = "[" + ", ".join(ops) + "]"
    return run.search(config, [f"seed={seed}", f"model.ops={ops_value}", f"output_dir={out}", *overrides])


def main(argv=None) -> int:
    """Entry point; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=os.path.join(ROOT, "experiments", "fashion_mnist", "search.yaml"),
                   help="the search to check (default: the embedded default)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="seeds, one search each")
    p.add_argument("--real", nargs="+", default=["sep_conv_3x3", "max_pool_3x3"],
                   help="the real ops; each gets its decoy (default: one conv, one pooling)")
    p.add_argument("--output-dir", default=os.path.join("runs", "search_check"), help="one folder per seed")
    p.add_argument("--summary", action="store_true", help="only summarise the seeds that have run")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides for every seed")
    args = p.parse_intermixed_args(argv)
    prepare()

    def work() -> int:
        if any(s < 0 for s in args.seeds) or len(set(args.seeds)) != len(args.seeds):
            raise UserError(f"--seeds must be distinct non-negative integers, got {args.seeds}")
        decoys = register_decoys(args.real)
        body: Dict[str, Any] = {"config": os.path.abspath(args.config), "real": list(args.real), "decoys": decoys,
                                "overrides": list(args.overrides), "seeds": {}}
        for seed in args.seeds:
            out = os.path.join(args.output_dir, f"seed{seed}")
            if not args.summary:
                run_seed(args.config, seed, list(args.real) + decoys, out, args.overrides)
            if os.path.exists(os.path.join(out, "architecture.yaml")):
                body["seeds"][str(seed)] = read_seed(out)
        if not body["seeds"]:
            raise UserError(f"no finished search under {args.output_dir}")
        body["meets_target"] = all(r["meets_target"] for r in body["seeds"].values())
        os.makedirs(args.output_dir, exist_ok=True)
        with open(os.path.join(args.output_dir, SUMMARY), "w", encoding="utf-8") as f:
            json.dump(body, f, indent=2)
        sys.stdout.write(table(body))
        LOG.info("wrote %s; target %s", os.path.join(args.output_dir, SUMMARY),
                 "met in every seed" if body["meets_target"] else "missed")
        return 0

    return guarded("search_check", work)


if __name__ == "__main__":
    sys.exit(main())
