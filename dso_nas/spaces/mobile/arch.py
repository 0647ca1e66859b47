"""The mobile space's macro (widths, depths, strides) and its architecture file.

A :class:`Macro` is the backbone a config describes (``model.mobile.*``): a ``3 x 3`` stride-2
first conv, a fixed ``mbconv_3x3_e1`` block, searchable stages of MBConv blocks, a ``1 x 1``
last conv. A :class:`MobileArchitecture` is a macro with one op per block: an MBConv op name
or ``"skip"`` (ProxylessNAS's zero op), allowed only where the block has its residual.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

from ...errors import ArchitectureError
from ...ops import OPS
from ..archfile import check_file_keys
from ..dense.derived import scaled_width

__all__ = ["SPACE", "VERSION", "SKIP", "FIXED_OP", "Macro", "BlockPlan", "MobileArchitecture", "scaled_width"]

SPACE = "mobile"
VERSION = 1
#: The op name of a skipped block (the block is the identity).
SKIP = "skip"
#: The fixed first block's op (MobileNetV2 / ProxylessNAS: expansion 1, kernel 3).
FIXED_OP = "mbconv_3x3_e1"
_KEYS = {"version", "space", "in_channels", "first_conv", "first_block", "last_conv", "stages", "meta"}
_STAGE_KEYS = {"width", "stride", "blocks"}


@dataclass(frozen=True)
class BlockPlan:
    """One searchable block: where it is, its widths and stride, and whether it has a residual."""

    stage: int
    index: int
    c_in: int
    c_out: int
    stride: int

    @property
    def residual(self) -> bool:
        """Stride 1 and the same width in and out (Eq. 4's ``O(b-1)`` term, and the skip op)."""
        return self.stride == 1 and self.c_in == self.c_out


@dataclass(frozen=True)
class Macro:
    """The backbone: first conv, fixed block, stages (width, depth, stride), last conv."""

    in_channels: int
    first_conv: int
    first_block: int
    widths: Tuple[int, ...]
    depths: Tuple[int, ...]
    strides: Tuple[int, ...]
    last_conv: int

    @classmethod
    def from_config(cls, model: Any) -> "Macro":
        """The macro of ``cfg.model`` (``model.in_channels`` and ``model.mobile.*``)."""
        m = model.mobile
        return cls(int(model.in_channels), int(m.first_conv), int(m.first_block), tuple(int(v) for v in m.widths),
                   tuple(int(v) for v in m.depths), tuple(int(v) for v in m.strides), int(m.last_conv))

    def plan(self) -> List[BlockPlan]:
        """The searchable blocks in network order (the first block of a stage takes its stride)."""
        out, c_in = [], self.first_block
        for s, (width, depth, stride) in enumerate(zip(self.widths, self.depths, self.strides)):
            for b in range(depth):
                out.append(BlockPlan(s, b, c_in, width, stride if b == 0 else 1))
                c_in = width
        return out

    def scaled(self, width_mult: float, divisor: int = 8) -> "Macro":
        """Every width times ``width_mult`` (multiples of ``divisor``); the last conv only grows
        (MobileNetV2's rule: it keeps its width below multiplier 1)."""
        if width_mult == 1.0:
            return self
        last = scaled_width(self.last_conv, width_mult, divisor) if width_mult > 1 else self.last_conv
        return Macro(self.in_channels, scaled_width(self.first_conv, width_mult, divisor),
                     scaled_width(self.first_block, width_mult, divisor),
                     tuple(scaled_width(w, width_mult, divisor) for w in self.widths), self.depths, self.strides, last)


@dataclass(frozen=True)
class MobileArchitecture:
    """A macro with one op (or ``"skip"``) per searchable block, per stage."""

    in_channels: int
    first_conv: int
    first_block: int
    last_conv: int
    widths: Tuple[int, ...]
    strides: Tuple[int, ...]
    blocks: Tuple[Tuple[str, ...], ...]
    meta: Dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def macro(self) -> Macro:
        return Macro(self.in_channels, self.first_conv, self.first_block, self.widths,
                     tuple(len(b) for b in self.blocks), self.strides, self.last_conv)

    def ops(self) -> List[str]:
        """The op of every searchable block, in network order."""
        return [op for stage in self.blocks for op in stage]

    @classmethod
    def from_macro(cls, macro: Macro, ops: List[str], meta: Dict[str, Any] = None) -> "MobileArchitecture":
        """The architecture that puts ``ops`` (network order) on ``macro``'s blocks."""
        if len(ops) != sum(macro.depths):
            raise ArchitectureError(f"{len(ops)} ops for {sum(macro.depths)} blocks")
        staged, k = [], 0
        for depth in macro.depths:
            staged.append(tuple(ops[k:k + depth]))
            k += depth
        arch = cls(macro.in_channels, macro.first_conv, macro.first_block, macro.last_conv, macro.widths,
                   macro.strides, tuple(staged), dict(meta or {}))
        arch.check()
        return arch

    def check(self) -> None:
        """``ArchitectureError`` on an unknown op or a skip where the block has no residual."""
        for plan, op in zip(self.macro.plan(), self.ops()):
            where = f"stage {plan.stage} block {plan.index}"
            if op == SKIP:
                if not plan.residual:
                    raise ArchitectureError(f"{where} changes the stride or the width ({plan.c_in} -> {plan.c_out}, "
                                            f"stride {plan.stride}) and cannot be skipped")
            elif op not in OPS or OPS.get(op).family != "mbconv":
                mbconv = [n for n in OPS.choices() if OPS.get(n).family == "mbconv"]
                raise ArchitectureError(f"{where}: op {op!r} is not an MBConv op; valid: {mbconv + [SKIP]}")

    def to_dict(self) -> Dict[str, Any]:
        """The file form (:func:`~dso_nas.spaces.archfile.save_architecture` writes it)."""
        return {"version": VERSION, "space": SPACE, "in_channels": self.in_channels,
                "first_conv": self.first_conv, "first_block": self.first_block, "last_conv": self.last_conv,
                "stages": [{"width": w, "stride": s, "blocks": list(b)}
                           for w, s, b in zip(self.widths, self.strides, self.blocks)],
                "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "MobileArchitecture":
        """Validate the file form (``ArchitectureError`` naming the bad key)."""
        check_file_keys(data, SPACE, VERSION, _KEYS)
        ints = {}
        for key, default in (("in_channels", 3), ("first_conv", None), ("first_block", None), ("last_conv", None)):
            v = data.get(key, default)
            if not _positive_int(v):
                raise ArchitectureError(f"'{key}' must be a positive integer, got {v!r}")
            ints[key] = v
        stages = data.get("stages")
        if not isinstance(stages, list) or not stages:
            raise ArchitectureError("'stages' must be a non-empty list of {width, stride, blocks}")
        widths, strides, blocks = [], [], []
        for i, st in enumerate(stages):
            if not isinstance(st, dict) or set(st) != _STAGE_KEYS:
                raise ArchitectureError(f"stage {i} must have exactly the keys {sorted(_STAGE_KEYS)}, got {st!r}")
            if not _positive_int(st["width"]) or st["stride"] not in (1, 2):
                raise ArchitectureError(f"stage {i}: width must be a positive integer and stride 1 or 2, got {st!r}")
            ops = st["blocks"]
            if not isinstance(ops, list) or not ops or not all(isinstance(o, str) for o in ops):
                raise ArchitectureError(f"stage {i}: 'blocks' must be a non-empty list of op names, got {ops!r}")
            widths.append(st["width"])
            strides.append(st["stride"])
            blocks.append(tuple(ops))
        meta = data.get("meta") or {}
        if not isinstance(meta, dict):
            raise ArchitectureError("'meta' must be a mapping")
        arch = cls(ints["in_channels"], ints["first_conv"], ints["first_block"], ints["last_conv"], tuple(widths),
                   tuple(strides), tuple(blocks), dict(meta))
        arch.check()
        return arch


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0
