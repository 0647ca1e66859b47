"""Mirror mode: sublinear-memory training of the supernet (TPAMI §4.1, ref. [67]).

The paper fits the fully connected supernet on its GPUs with the "memory-saving
technique" of Chen et al. 2016 ("Training deep nets with sublinear memory cost"): split the
network into segments, keep only the segment boundaries from the forward pass, and
recompute each segment when the backward pass reaches it. Peak memory becomes
``stored boundaries + one segment`` instead of ``every activation``; with ``n`` equal layers
and ``sqrt(n)`` segments that is ``O(sqrt(n))``.

How it runs on MXNet 1.9.1
--------------------------
MXNet's own recomputation ("mirroring") lives only in the gradient pass of the symbolic
graph executor: a node for which ``need_mirror`` holds - one carrying the attribute
``__force_mirroring__`` (any op but ``Dropout``), or, under ``MXNET_BACKWARD_DO_MIRROR=1``,
any op outside a fixed list (Convolution, FullyConnected, Concat, BatchNorm, ...) - gets a
``<name>_mirror`` copy whose inputs are the copies of its inputs, and every backward node
reads the copy. CachedOp (hybridized Gluon) and ``autograd`` never mirror. Binding the
supernet's symbol on the Gluon Parameters with whole segments flagged does recompute, with
the recomputation scheduled just before each segment's backward, but it saves no memory on
the oneDNN CPU build: every node without a oneDNN kernel (``relu``, ``stack``,
``slice_axis``, ``Pad``, ``ones_like``, ``dot``...) that receives a oneDNN-layout array gets
*persistent* conversion buffers in the executor (``StorageFallbackOpExecutor``), outside its
memory plan, for the original node and for its mirror copy alike (a 40-layer conv-BN-ReLU
net saves 3x with ``Activation`` and nothing with ``relu``). The executor also sums the
gradients of an entry read ``>= MXNET_EXEC_INPLACE_GRAD_SUM_CAP`` (8) times with in-place
``_grad_add`` chains that added onto uninitialised memory in our tests (wrong stem
gradients of an M = N = 4 supernet). So the recomputation is done one level up, with
Gluon's own machinery:

* :func:`plan_mirror` chooses the segment boundaries on the symbol graph (pure function);
* :class:`MirrorExecutor` runs the network's top-level layers (the supernet's stem, search
  blocks, reductions and classifier) as separately hybridized CachedOps with dynamic
  memory: a forward pass without recording keeps only the boundary outputs, then each
  segment, last to first, runs again under ``autograd.record`` from its stored input and is
  back-propagated with the gradient that the later segment handed down; the memory of one
  segment is reused by the next.

The plan
--------
Boundary candidates are *cut* nodes of the data-dependent graph, nodes after which no
earlier feature map is read again (the executor offers the outputs of the layers).
Weight-only sub-graphs (λ slices, the λ-scaled ``1 x 1`` weight) are not counted. Nodes weigh
the elements of their outputs (with input shapes) or 1 (without). For ``k`` segments the
boundaries minimise the largest segment (linear partition, exact DP) and are then moved as
early as that maximum allows, so that the last segment, recorded directly and never
recomputed, is as long as possible. The estimate is ``stored boundaries + largest segment``;
``segments=None`` takes the ``k`` with the smallest estimate: ``k ~ sqrt(n)`` for ``n`` equal
layers; 14 segments for the paper's CIFAR supernet, the first ones one stage-0 search block
each (7.5 GiB of activations estimated down to 0.56 GiB at batch 16).

Semantics kept equal to ``autograd`` + ``Trainer.step``
-----------------------------------------------------
Loss: the task's per-sample Gluon loss (:meth:`dso_nas.tasks.Task.loss`), back-propagated
with a head gradient of one per sample (as ``autograd.backward`` of the per-sample loss).
Gradients follow each Parameter's ``grad_req``; a ``write`` Parameter read by several
segments (the ``share``-scope λ) gets the sum of its segments' gradients (equal to the
one-graph gradient up to summation order). BatchNorm running statistics move once per
step: the auxiliary states of the recomputed layers are restored after the unrecorded pass
(a no-op on CPU, where BatchNorm moves them in its backward operator; needed where the
forward operator moves them, as cuDNN's does). Random operators (Dropout, ``_random_*``) may
only sit in the last segment: a recomputation would draw a different mask.
"""
from __future__ import annotations

import json
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
from mxnet.gluon import nn
from mxnet.ndarray import NDArray

__all__ = ["plan_mirror", "describe_plan", "MirrorExecutor", "make_executors", "mirror_step"]

log = logging.getLogger(__name__)

DATA = "data"


# ----------------------------------------------------------------------------- graph view


def _is_random(op: str) -> bool:
    return op == "Dropout" or op.startswith(("_random_", "_sample_", "random_", "sample_"))


def _dependent_ops(nodes: list, data: str) -> List[int]:
    """Ids of the op nodes that read ``data`` (directly or not), in topological order."""
    dependent = [False] * len(nodes)
    for i, node in enumerate(nodes):
        if node["op"] == "null":
            dependent[i] = node["name"] == data
        else:
            dependent[i] = any(dependent[e[0]] for e in node["inputs"])
    return [i for i, node in enumerate(nodes) if node["op"] != "null" and dependent[i]]


def _cut_positions(nodes: list, heads: list, order: List[int], data: str) -> List[int]:
    """Positions ``p`` in ``order`` after which no map computed before ``p`` is read again."""
    pos = {nid: p for p, nid in enumerate(order)}
    data_ids = [i for i, node in enumerate(nodes) if node["op"] == "null" and node["name"] == data]
    last = {nid: -1 for nid in order + data_ids}
    for nid in order:
        for entry in nodes[nid]["inputs"]:
            if entry[0] in last:
                last[entry[0]] = max(last[entry[0]], pos[nid])
    for entry in heads:
        if entry[0] in last:
            last[entry[0]] = len(order)
    reach = max((last[i] for i in data_ids), default=-1)
    cuts = []
    for p, nid in enumerate(order):
        if reach <= p:
            cuts.append(p)
        reach = max(reach, last[nid])
    return cuts


def _weights(sym: mx.sym.Symbol, names: List[str],
             shapes: Optional[Dict[str, Tuple[int, ...]]]) -> np.ndarray:
    """Output elements of each named node (or 1 each without ``shapes``)."""
    if not shapes:
        return np.ones(len(names))
    internals = sym.get_internals()
    _, out_shapes, _ = internals.infer_shape(**shapes)
    if out_shapes is None:
        raise ValueError(f"cannot infer the graph's shapes from {shapes}")
    size: Dict[str, int] = {}
    for name, shape in zip(internals.list_outputs(), out_shapes):
        base = name.rsplit("_output", 1)[0]
        size[base] = size.get(base, 0) + int(np.prod(shape))
    return np.array([float(size.get(name, 0)) for name in names])


# ----------------------------------------------------------------------------- planner


def _partition(cost: np.ndarray) -> List[Tuple[float, List[int]]]:
    """Min-max linear partition for every segment count.

    ``cost[i, j]`` is the cost of the segment from boundary point ``i`` (exclusive) to ``j``
    (inclusive); point 0 is the start, the last point the end, ``inf`` marks ``i >= j``.
    Returns, for ``k = 1, 2, ...`` segments, the largest segment cost and the inner
    points chosen.
    """
    n = cost.shape[0]
    best = cost[0].copy()
    choices: List[np.ndarray] = []
    results = [(float(best[-1]), [])]
    for _ in range(2, n):
        total = np.maximum(best[:, None], cost)
        arg = np.argmin(total, axis=0)
        best = total[arg, np.arange(n)]
        choices.append(arg)
        inner, j = [], n - 1
        for arg_k in reversed(choices):
            j = int(arg_k[j])
            inner.append(j)
        results.append((float(best[-1]), sorted(inner)))
    return results


def _shift_to_front(cost: np.ndarray, inner: List[int], limit: float) -> List[int]:
    """Move each boundary as early as ``limit`` allows, last first (longest last segment)."""
    inner = list(inner)
    later = cost.shape[0] - 1
    for idx in range(len(inner) - 1, -1, -1):
        earlier = inner[idx - 1] if idx > 0 else 0
        for point in range(earlier + 1, inner[idx] + 1):
            if cost[point, later] <= limit:
                inner[idx] = point
                break
        later = inner[idx]
    return inner


def plan_mirror(sym: mx.sym.Symbol, segments: Optional[int] = None, *,
                shapes: Optional[Dict[str, Tuple[int, ...]]] = None,
                candidates: Optional[Sequence[str]] = None, data: str = DATA) -> dict:
    """Choose the segments of mirror training (Chen et al. 2016) for a network symbol.

    Parameters
    ----------
    sym : Symbol
        The network, e.g. ``net(mx.sym.var("data"))`` (not modified).
    segments : int, optional
        Number of segments; ``None`` picks the count with the smallest estimated peak. A
        count above what the cut points allow is lowered to that maximum.
    shapes : dict, optional
        Input shapes (``{"data": (B, C, H, W)}``) to weight nodes by their output sizes;
        without it every node weighs 1 (the plain ``sqrt(n)`` rule).
    candidates : sequence of str, optional
        Names of the nodes allowed as boundaries (each must be a cut point; names of nodes
        that do not depend on the input are ignored); default: all cut points.
    data : str
        Name of the input variable.

    Returns
    -------
    dict
        ``nodes`` (data-dependent operations), ``candidates`` (usable boundaries),
        ``segments``, ``boundaries`` (names of the stored segment ends), ``mirrored`` (names
        of the nodes recomputed in the backward pass: all segments but the last),
        ``weighted_by`` (``"elements"`` or ``"nodes"``), ``est_plain`` (all activations) and
        ``est_peak`` (stored boundaries + largest segment), in those units.
    """
    if segments is not None and int(segments) < 1:
        raise ValueError(f"mirror segments must be >= 1, got {segments}")
    graph = json.loads(sym.tojson())
    nodes = graph["nodes"]
    order = _dependent_ops(nodes, data)
    if not order:
        raise ValueError(f"no operation of the symbol reads the input {data!r}")
    n = len(order)
    names = [nodes[i]["name"] for i in order]
    cuts = [p for p in _cut_positions(nodes, graph["heads"], order, data) if p < n - 1]
    if candidates is not None:
        position = {name: p for p, name in enumerate(names)}
        wanted = sorted(position[c] for c in candidates if c in position and position[c] < n - 1)
        stray = sorted(set(wanted) - set(cuts))
        if stray:
            raise ValueError(f"{names[stray[0]]!r} is not a cut point of the graph: maps "
                             f"computed before it are still read after it")
        cuts = wanted
    w = _weights(sym, names, shapes)
    points = [-1] + cuts + [n - 1]
    prefix = np.concatenate([[0.0], np.cumsum(w)])
    ends = np.array([prefix[p + 1] for p in points])
    cost = ends[None, :] - ends[:, None]
    cost[np.tril_indices(len(points))] = np.inf
    options = _partition(cost)
    estimates = [largest + sum(w[points[i]] for i in inner) for largest, inner in options]
    if segments is None:
        k = int(np.argmin(estimates)) + 1
    else:
        k = min(int(segments), len(options))
        if k < segments:
            log.info("mirror: %d segments requested, the graph allows at most %d", segments, k)
    largest, inner = options[k - 1]
    inner = _shift_to_front(cost, inner, largest)
    chosen = [points[i] for i in inner]
    last = chosen[-1] if chosen else -1
    mirrored = [names[p] for p in range(last + 1)]
    random_ops = [names[p] for p in range(last + 1) if _is_random(nodes[order[p]]["op"])]
    if random_ops:
        raise ValueError(f"mirror mode would recompute the random operator {random_ops[0]!r} "
                         f"(a different draw); use fewer segments or move it to the end")
    return {
        "nodes": n,
        "candidates": len(cuts),
        "segments": k,
        "boundaries": [names[p] for p in chosen],
        "mirrored": mirrored,
        "weighted_by": "elements" if shapes else "nodes",
        "est_plain": float(w.sum()),
        "est_peak": float(largest + sum(w[p] for p in chosen)),
    }


def describe_plan(plan: dict) -> str:
    """One log line for a plan."""
    return (f"mirror plan: {plan['segments']} segments over {plan['nodes']} nodes "
            f"({plan['candidates']} candidate boundaries), {len(plan['mirrored'])} nodes "
            f"recomputed, estimated activations {plan['est_peak'] / max(plan['est_plain'], 1):.2f}"
            f" of plain (by {plan['weighted_by']})")


# ----------------------------------------------------------------------------- layers


def _layers(net: gluon.HybridBlock) -> List[gluon.HybridBlock]:
    """The top-level sequence of a network, nested sequences flattened: a
    ``HybridSequential``'s children, or what its ``sequential_layers()`` returns (the
    supernets of :mod:`dso_nas.spaces`), or the network itself."""
    if isinstance(net, nn.HybridSequential):
        return [leaf for child in net for leaf in _layers(child)]
    if callable(getattr(net, "sequential_layers", None)):
        return [leaf for child in net.sequential_layers() for leaf in _layers(child)]
    return [net]


def _compose(layers: Sequence[gluon.HybridBlock]) -> Tuple[mx.sym.Symbol, List[str]]:
    """The symbol of the layers applied in sequence, and the name of each layer's output."""
    out = mx.sym.var(DATA)
    names = []
    for layer in layers:
        out = layer(out)
        if isinstance(out, (list, tuple)) or len(out.list_outputs()) != 1:
            raise ValueError(f"mirror mode needs layers with a single output; {layer.name} "
                             f"has several")
        names.append(out.name)
    return out, names


def _structure(sym: mx.sym.Symbol) -> list:
    """The graph of a symbol as comparable data (entry versions of variables left out)."""
    graph = json.loads(sym.tojson())
    return [(node["op"], node["name"], node.get("attrs", {}), [e[:2] for e in node["inputs"]])
            for node in graph["nodes"]] + [[e[:2] for e in graph["heads"]]]


# ----------------------------------------------------------------------------- executor


class MirrorExecutor:
    """Forward/backward of ``net`` + the task's loss with recomputed segments, on one context.

    Works on ``net``'s own Parameters for ``ctx``: gradients land in ``param.grad(ctx)``,
    BN running statistics in the aux Parameters, and a ``gluon.Trainer`` over
    ``net.collect_params()`` updates what the next step reads. Any batch size works (the
    layers run as CachedOps with dynamic memory, which ``__init__`` sets on ``net``'s
    top-level layers; the whole-network CachedOp used by ``net(x)`` is left as it is).

    Parameters
    ----------
    net : HybridBlock
        An initialized network that applies its layers in sequence (``HybridSequential``,
        or a block with ``sequential_layers()`` like the supernets) and has one output.
    data_shape : tuple of int
        ``(B, C, H, W)`` used to weight the plan.
    ctx : Context
        The context of this executor's Parameter copies.
    loss : gluon.loss.Loss
        The task's per-sample loss of the network's output.
    segments : int, optional
        Mirror segments (see :func:`plan_mirror`).

    Attributes
    ----------
    plan : dict
        The planner's choice (:func:`plan_mirror`).
    """

    def __init__(self, net: gluon.HybridBlock, data_shape: Tuple[int, ...], ctx: mx.Context, *,
                 loss: gluon.loss.Loss, segments: Optional[int] = None):
        self.net, self.ctx = net, ctx
        self.data_shape = tuple(int(s) for s in data_shape)
        self.layers = _layers(net)
        composed, outputs = _compose(self.layers)
        if _structure(composed) != _structure(net(mx.sym.var(DATA))):
            raise ValueError(f"mirror mode needs a network that applies its layers in sequence; "
                             f"{net.name} computes something else than "
                             f"{' -> '.join(layer.name for layer in self.layers)}")
        out_shape = composed.infer_shape(**{DATA: self.data_shape})[1][0]
        if not out_shape or out_shape[0] != self.data_shape[0]:
            raise ValueError(f"the network maps {self.data_shape} to {out_shape}: no per-sample output")
        self.plan = plan_mirror(composed, segments, shapes={DATA: self.data_shape},
                                candidates=outputs[:-1])
        ends = [outputs.index(name) for name in self.plan["boundaries"]] + [len(self.layers) - 1]
        starts = [0] + [end + 1 for end in ends[:-1]]
        self._segments = [self.layers[a:b + 1] for a, b in zip(starts, ends)]
        self._loss = loss
        self._users = self._segment_users()
        aux_names = set(composed.list_auxiliary_states())
        self._aux = [p for segment in self._segments[:-1] for layer in segment
                     for name, p in layer.collect_params().items() if name in aux_names]
        self._dynamic()
        log.info("%s", describe_plan(self.plan))

    def _segment_users(self) -> List[Tuple[gluon.Parameter, List[int]]]:
        """Parameters read by more than one segment, with those segments."""
        users: Dict[str, List[int]] = {}
        for k, segment in enumerate(self._segments):
            for name in sorted({n for layer in segment for n in layer.collect_params()}):
                users.setdefault(name, []).append(k)
        params = self.net.collect_params()
        return [(params[name], ks) for name, ks in users.items() if len(ks) > 1]

    def _dynamic(self) -> None:
        """Run every layer as its own CachedOp with dynamic memory (so segments share it).

        Checked at every call: hybridizing the whole network again (``static_alloc=True``)
        also resets its layers' flags.
        """
        for layer in self.layers:
            if not layer._active or dict(layer._flags).get("static_alloc", False):
                layer.hybridize(True, static_alloc=False, static_shape=False)

    @staticmethod
    def _run(segment: Sequence[gluon.HybridBlock], x: NDArray) -> NDArray:
        for layer in segment:
            x = layer(x)
        return x

    def forward_backward(self, data: NDArray, label: NDArray) -> Tuple[NDArray, NDArray]:
        """One training forward and backward on a batch (any batch size).

        Returns the per-sample loss and the network's output. The gradients are written (or added,
        per ``grad_req``) into the Parameters' gradient arrays on this context; BN running
        statistics move once, as in a Gluon training step.
        """
        self._dynamic()
        x, label = data.as_in_context(self.ctx), label.as_in_context(self.ctx)
        saved = [p.data(self.ctx).copy() for p in self._aux]
        stored = [x]
        with autograd.train_mode():
            for segment in self._segments[:-1]:
                stored.append(self._run(segment, stored[-1]))
        for param, value in zip(self._aux, saved):
            value.copyto(param.data(self.ctx))
        head, loss, logits = None, None, None
        # a ``write`` gradient of a Parameter read by several segments is their sum
        shared = [(p, ks) for p, ks in self._users if p.grad_req == "write"]
        totals = [mx.nd.zeros(p.shape, self.ctx, dtype=p.dtype) for p, _ in shared]
        for k in range(len(self._segments) - 1, -1, -1):
            inp = stored[k]
            if k > 0:
                inp.attach_grad()
            with autograd.record():
                out = self._run(self._segments[k], inp)
                if head is None:
                    logits, loss = out, self._loss(out, label)
            if head is None:
                loss.backward()
            else:
                out.backward(head)
            for total, (param, users) in zip(totals, shared):
                if k in users:
                    total += param.grad(self.ctx)
            stored[k + 1:] = []
            head = inp.grad if k > 0 else None
        for total, (param, _) in zip(totals, shared):
            total.copyto(param.grad(self.ctx))
        return loss, logits

    def forward(self, data: NDArray) -> NDArray:
        """Inference logits (``is_train=False``: BN uses the running statistics).

        Nothing is recomputed (no backward pass); the layers run with their dynamic
        memory, so evaluation leaves no static buffers behind on top of training.
        """
        self._dynamic()
        with autograd.pause(train_mode=False):
            return self._run(self.layers, data.as_in_context(self.ctx))


# ----------------------------------------------------------------------------- several contexts


def make_executors(net: gluon.HybridBlock, data_shape: Tuple[int, ...],
                   ctxs: Sequence[mx.Context], *, loss: gluon.loss.Loss,
                   segments: Optional[int] = None) -> List[MirrorExecutor]:
    """One :class:`MirrorExecutor` per context, planned for the largest slice of a
    ``data_shape`` batch that ``gluon.utils.split_and_load(..., even_split=False)`` gives."""
    ctxs = list(ctxs)
    per_ctx = -(-int(data_shape[0]) // len(ctxs))
    shape = (per_ctx,) + tuple(data_shape[1:])
    return [MirrorExecutor(net, shape, ctx, loss=loss, segments=segments)
            for ctx in ctxs]


def mirror_step(executors: Sequence[MirrorExecutor], data: NDArray, label: NDArray,
                trainer: Optional[gluon.Trainer], batch_size: int) -> List[Tuple[NDArray, NDArray]]:
    """Forward/backward of a batch split over the executors' contexts, then ``trainer.step``.

    The mirror-mode counterpart of ``autograd.record`` + ``backward`` +
    ``trainer.step(batch_size)`` over ``split_and_load``; returns ``(per-sample loss,
    logits)`` for each context's slice. ``trainer=None`` skips the update.
    """
    ctxs = [exe.ctx for exe in executors]
    xs = gluon.utils.split_and_load(data, ctxs, even_split=False)
    ys = gluon.utils.split_and_load(label, ctxs, even_split=False)
    pairs = [exe.forward_backward(x, y) for exe, x, y in zip(executors, xs, ys)]
    if trainer is not None:
        trainer.step(batch_size)
    return pairs
