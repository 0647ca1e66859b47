"""Mirror mode: sublinear-memory training of the supernet (TPAMI §4.1, ref. [67]).

The paper fits the fully connected supernet on its GPUs with the "memory-saving
technique" of Chen et al. 2016 ("Training deep nets with sublinear memory cost"): split
the network into segments, keep only the segment boundaries from the forward pass and
recompute each segment's intermediate results when the backward pass reaches it.

How this is made to work on MXNet 1.9.1
--------------------------------------
MXNet implements the recomputation ("mirroring") in the gradient pass of its symbolic
graph executor only: a forward node whose ``need_mirror`` test holds gets a copy
(``<name>_mirror``) whose inputs are the mirror copies of its inputs, and every backward
node reads the copy instead of the original. ``need_mirror`` holds for a node carrying the
attribute ``__force_mirroring__`` (any op but ``Dropout``) or, with
``MXNET_BACKWARD_DO_MIRROR=1``, for every op except a fixed list (Convolution,
FullyConnected, Concat, BatchNorm, ...). Hybridized Gluon blocks (CachedOp) and plain
``autograd`` never call it, so this module leaves Gluon for the training step:

* :func:`plan_mirror` chooses the segments (pure function on the symbol graph);
* :func:`apply_plan` writes ``__force_mirroring__`` on the chosen nodes;
* :class:`MirrorExecutor` binds the marked symbol (plus the softmax cross-entropy loss)
  on the Gluon Parameters' own data and gradient arrays, so ``gluon.Trainer`` updates
  exactly what the executor reads and writes.

Why the global switch is not used: a backward node of a *kept* (non-mirrored) node reads
that node's original inputs, so those stay alive whatever their producer's mirror flag
says. With the built-in list, convolutions are kept, their inputs (the ReLU outputs) are
therefore stored anyway, and the mirrored ReLU only adds a copy - memory goes *up*. The
plan below mirrors every data-dependent node of a segment, convolutions and BN included,
and keeps only the segment boundaries, whose backward reads nothing big (a residual sum,
a ReLU output that is the boundary itself).

The plan
--------
Boundary candidates are the *cut* nodes of the data-dependent part of the graph: nodes
after which no earlier feature map is read again (stem layers, the output sum of each
search block and reduction, the classifier chain). Weight-only sub-graphs (λ slices, the
λ-scaled ``1 x 1`` weight of the fused block) are never mirrored nor counted. Each node is
weighted by the elements of its outputs (with the input shape) or by 1 (without). For
``k`` segments the boundaries minimise the largest segment (linear partition, exact DP);
the estimated peak is ``stored boundaries + largest segment``, the quantity Chen et al.
balance to get ``O(sqrt(n))``. ``segments=None`` takes the ``k`` with the smallest estimate
(for ``n`` equal layers that is ``k ~ sqrt(n)``; for the supernet, whose blocks are ~100
feature maps behind a one-map boundary, it is one segment per block). The last segment is
not mirrored: its activations are alive when the backward pass starts anyway.

Semantics kept equal to ``autograd`` + ``Trainer.step``
-----------------------------------------------------
* gradients: ``grad_req`` of each Parameter (``write``/``add``/``null``); the loss head is
  Gluon's own :class:`~mxnet.gluon.loss.SoftmaxCrossEntropyLoss` under ``make_loss``, i.e.
  a head gradient of one per sample, as ``autograd.backward`` of the per-sample loss;
* BatchNorm statistics: MXNet's CPU BatchNorm moves the running mean/var in its
  *backward* operator, which runs once, so a mirrored BN updates them once. cuDNN's BN
  moves them in the *forward* operator, which a mirrored BN runs twice; the first step
  finds out which case holds (one comparison) and, in the second, the auxiliary states
  read by mirrored nodes are saved after the forward pass and written back after the
  backward pass;
* ``_fresh_grad`` is set on the updated Parameters so ``Trainer.step`` accepts them;
* random ops (Dropout and ``_random_*``/``_sample_*``) are never mirrored (a recomputation
  would draw a different mask).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
from mxnet.ndarray import NDArray

__all__ = ["plan_mirror", "apply_plan", "MirrorExecutor", "make_executors", "mirror_step"]

log = logging.getLogger(__name__)

MIRROR_ATTR = "__force_mirroring__"
DATA, LABEL = "data", "label"


# ----------------------------------------------------------------------------- graph view


@dataclass
class _Graph:
    """The data-dependent op nodes of a symbol, in topological order."""

    nodes: list             # the JSON nodes of the whole symbol
    order: List[int]        # node ids of data-dependent op nodes, topological
    cuts: List[int]         # positions in ``order`` after which no earlier map is read again
    weights: np.ndarray     # cost of each node of ``order``
    aux_inputs: Dict[int, List[str]]  # node id -> names of auxiliary-state variables it reads


def _is_random(op: str) -> bool:
    return op == "Dropout" or op.startswith(("_random_", "_sample_", "random_", "sample_"))


def _node_weights(sym: mx.sym.Symbol, nodes: list, order: List[int],
                  shapes: Optional[Dict[str, Tuple[int, ...]]]) -> np.ndarray:
    if not shapes:
        return np.ones(len(order))
    internals = sym.get_internals()
    _, out_shapes, _ = internals.infer_shape(**shapes)
    if out_shapes is None:
        raise ValueError(f"cannot infer the graph's shapes from {shapes}")
    size: Dict[str, int] = {}
    for name, shape in zip(internals.list_outputs(), out_shapes):
        base = name.rsplit("_output", 1)[0]
        size[base] = size.get(base, 0) + int(np.prod(shape))
    return np.array([float(size.get(nodes[i]["name"], 0)) for i in order])


def _analyse(sym: mx.sym.Symbol, data: str,
             shapes: Optional[Dict[str, Tuple[int, ...]]]) -> _Graph:
    graph = json.loads(sym.tojson())
    nodes, heads = graph["nodes"], graph["heads"]
    aux_names = set(sym.list_auxiliary_states())
    dependent = [False] * len(nodes)
    for i, node in enumerate(nodes):
        if node["op"] == "null":
            dependent[i] = node["name"] == data
        else:
            dependent[i] = any(dependent[e[0]] for e in node["inputs"])
    order = [i for i, node in enumerate(nodes) if node["op"] != "null" and dependent[i]]
    if not order:
        raise ValueError(f"no operation of the symbol reads the input {data!r}")
    pos = {nid: p for p, nid in enumerate(order)}
    # last position reading each data-dependent entry's node (heads count as read at the end)
    data_ids = [i for i, node in enumerate(nodes) if node["op"] == "null" and dependent[i]]
    last = {nid: -1 for nid in order + data_ids}
    for nid in order:
        for src, _, *_ in nodes[nid]["inputs"]:
            if src in last:
                last[src] = max(last[src], pos[nid])
    for src, _, *_ in heads:
        if src in last:
            last[src] = len(order)
    reach = max((last[i] for i in data_ids), default=-1)
    cuts = []
    for p, nid in enumerate(order):
        if reach <= p:
            cuts.append(p)
        reach = max(reach, last[nid])
    aux_inputs = {nid: [nodes[e[0]]["name"] for e in nodes[nid]["inputs"]
                        if nodes[e[0]]["op"] == "null" and nodes[e[0]]["name"] in aux_names]
                  for nid in order}
    return _Graph(nodes, order, cuts, _node_weights(sym, nodes, order, shapes), aux_inputs)


# ----------------------------------------------------------------------------- planner


def _partition(cost: np.ndarray, max_segments: int) -> List[Tuple[float, List[int]]]:
    """Min-max linear partition for every segment count ``1..max_segments``.

    ``cost[i, j]`` is the cost of the segment between boundary points ``i < j`` (point 0 is
    the start, the last point the end). Returns, for ``k`` segments, the largest segment
    cost and the inner boundary points chosen.
    """
    n = cost.shape[0]
    best = cost[0].copy()                     # one segment from the start to each point
    choices: List[np.ndarray] = []
    results = [(float(best[-1]), [])]
    for _ in range(2, max_segments + 1):
        total = np.maximum(best[:, None], cost)          # via point i, then segment i -> j
        arg = np.argmin(total, axis=0)
        best = total[arg, np.arange(n)]
        choices.append(arg)
        points, j = [], n - 1
        for arg_k in reversed(choices):
            j = int(arg_k[j])
            points.append(j)
        results.append((float(best[-1]), sorted(points)))
    return results


def plan_mirror(sym: mx.sym.Symbol, segments: Optional[int] = None, *,
                shapes: Optional[Dict[str, Tuple[int, ...]]] = None,
                data: str = DATA) -> dict:
    """Choose the segments of mirror training (Chen et al. 2016) for a network symbol.

    Parameters
    ----------
    sym : Symbol
        The network (e.g. ``net(mx.sym.var("data"))``); pure: not modified.
    segments : int, optional
        Number of segments. ``None`` picks the count with the smallest estimated peak.
        A count above what the graph's cut points allow is lowered to that maximum.
    shapes : dict, optional
        Input shapes (``{"data": (B, C, H, W)}``) to weight nodes by their output sizes;
        without it every node weighs 1 (the plain ``sqrt(n)`` rule).
    data : str
        Name of the input variable.

    Returns
    -------
    dict
        ``nodes`` (data-dependent operations), ``candidates`` (cut points), ``segments``,
        ``boundaries`` (names of the stored segment ends), ``mirrored`` (names of the nodes
        recomputed in the backward pass), ``mutated_aux`` (auxiliary states read by mirrored
        nodes), ``weighted_by`` (``"elements"`` or ``"nodes"``) and the estimates
        ``est_plain``, ``est_peak`` (stored boundaries + largest segment) in those units.
    """
    if segments is not None and int(segments) < 1:
        raise ValueError(f"mirror segments must be >= 1, got {segments}")
    graph = _analyse(sym, data, shapes)
    n = len(graph.order)
    w = graph.weights
    inner = [p for p in graph.cuts if p < n - 1]          # a boundary at the head is no split
    points = [-1] + inner + [n - 1]
    prefix = np.concatenate([[0.0], np.cumsum(w)])        # prefix[p + 1] = sum w[0..p]
    # segment i -> j holds the nodes after point i up to point j; a boundary point is
    # stored (counted apart), the end point belongs to the last segment
    start = np.array([prefix[p + 1] for p in points])
    stop = start - np.array([w[p] if 0 < k < len(points) - 1 else 0.0
                             for k, p in enumerate(points)])
    cost = stop[None, :] - start[:, None]
    cost[np.tril_indices(len(points))] = np.inf
    options = _partition(cost, len(points) - 1)
    estimates = [largest + sum(w[points[i]] for i in chosen) for largest, chosen in options]
    if segments is None:
        k = int(np.argmin(estimates)) + 1
    else:
        k = min(int(segments), len(options))
        if k < segments:
            log.info("mirror: %d segments requested, the graph allows at most %d", segments, k)
    chosen = [points[i] for i in options[k - 1][1]]
    end_of_mirrored = chosen[-1] if chosen else -1
    boundary = set(chosen)
    mirrored = [graph.order[p] for p in range(end_of_mirrored + 1)
                if p not in boundary and not _is_random(graph.nodes[graph.order[p]]["op"])]
    mutated = sorted({name for nid in mirrored for name in graph.aux_inputs[nid]})
    names = lambda ids: [graph.nodes[i]["name"] for i in ids]  # noqa: E731
    return {
        "nodes": n,
        "candidates": len(inner),
        "segments": k,
        "boundaries": names(graph.order[p] for p in chosen),
        "mirrored": names(mirrored),
        "mutated_aux": mutated,
        "weighted_by": "elements" if shapes else "nodes",
        "est_plain": float(w.sum()),
        "est_peak": float(estimates[k - 1]),
    }


def apply_plan(sym: mx.sym.Symbol, plan: dict) -> mx.sym.Symbol:
    """A copy of ``sym`` with ``__force_mirroring__`` set on the plan's mirrored nodes."""
    graph = json.loads(sym.tojson())
    marked = set(plan["mirrored"])
    for node in graph["nodes"]:
        if node["name"] in marked and node["op"] != "null":
            node.setdefault("attrs", {})[MIRROR_ATTR] = "True"
    return mx.sym.load_json(json.dumps(graph))


def describe_plan(plan: dict) -> str:
    """One log line for a plan."""
    return (f"mirror plan: {plan['segments']} segments over {plan['nodes']} nodes "
            f"({plan['candidates']} cut points), {len(plan['mirrored'])} nodes recomputed, "
            f"estimated activations {plan['est_peak'] / max(plan['est_plain'], 1):.2f} of plain "
            f"(by {plan['weighted_by']})")


# ----------------------------------------------------------------------------- executor


class MirrorExecutor:
    """Forward/backward of ``net`` + softmax cross-entropy with mirroring, on one context.

    The executor is bound on ``net``'s Parameter arrays for ``ctx``: the gradients land in
    ``param.grad(ctx)``, BN running statistics in the aux Parameters, and a
    ``gluon.Trainer`` over ``net.collect_params()`` updates what the next step reads.
    One executor per batch size is bound lazily (sharing the first one's memory pool).
    Parameters whose arrays or ``grad_req`` change (``reset_ctx``, ``grad_req`` switches)
    are picked up by rebinding at the next call.

    Parameters
    ----------
    net : HybridBlock
        An initialized network with one output (logits).
    data_shape : tuple of int
        ``(B, C, H, W)`` of the batch the first executor is bound for (and planned with).
    ctx : Context
        The context of this executor's Parameter copies.
    num_classes : int
        Classifier outputs (checked against the network).
    segments : int, optional
        Mirror segments (see :func:`plan_mirror`).

    Attributes
    ----------
    plan : dict
        The planner's choice (:func:`plan_mirror`).
    """

    def __init__(self, net: gluon.HybridBlock, data_shape: Tuple[int, ...], ctx: mx.Context, *,
                 num_classes: int, segments: Optional[int] = None):
        self.net, self.ctx, self.num_classes = net, ctx, int(num_classes)
        self.data_shape = tuple(int(s) for s in data_shape)
        logits = net(mx.sym.var(DATA))
        if isinstance(logits, (list, tuple)) or len(logits.list_outputs()) != 1:
            raise ValueError("mirror mode needs a network with a single output (no auxiliary head)")
        out_shape = logits.infer_shape(**{DATA: self.data_shape})[1][0]
        if tuple(out_shape) != (self.data_shape[0], self.num_classes):
            raise ValueError(f"the network maps {self.data_shape} to {tuple(out_shape)}, "
                             f"expected ({self.data_shape[0]}, {self.num_classes})")
        self.plan = plan_mirror(logits, segments, shapes={DATA: self.data_shape})
        marked = apply_plan(logits, self.plan)
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(marked, mx.sym.var(LABEL))
        self._sym = mx.sym.Group([mx.sym.make_loss(loss), mx.sym.BlockGrad(marked)])
        self._params = net.collect_params()
        self._execs: Dict[int, mx.executor.Executor] = {}
        self._aux_in_forward: Optional[bool] = None   # does a forward pass move aux states?
        self._bound: List[Tuple[gluon.Parameter, NDArray, Optional[NDArray], str]] = []
        self._fresh: List[NDArray] = []
        self._aux_saved: Dict[str, NDArray] = {}
        self._bind_params()
        self._executor(self.data_shape[0])
        log.info("%s", describe_plan(self.plan))

    # -- binding ---------------------------------------------------------------------------

    def _bind_params(self) -> None:
        names = set(self._sym.list_arguments()) | set(self._sym.list_auxiliary_states())
        self._bound = []
        for name in sorted(names - {DATA, LABEL}):
            param = self._params[name]
            grad = param.grad(self.ctx) if param.grad_req != "null" else None
            self._bound.append((param, param.data(self.ctx), grad, param.grad_req))
        self._fresh = [arr for _, arr, grad, _ in self._bound if grad is not None]
        aux = set(self.plan["mutated_aux"])
        self._aux_saved = {name: mx.nd.empty(self._params[name].shape, self.ctx,
                                             dtype=self._params[name].dtype) for name in aux}
        self._execs.clear()

    def _stale(self) -> bool:
        for param, arr, grad, req in self._bound:
            if param.grad_req != req or param.data(self.ctx) is not arr or \
                    (grad is not None and param.grad(self.ctx) is not grad):
                return True
        return False

    def _executor(self, batch: int) -> mx.executor.Executor:
        if batch in self._execs:
            return self._execs[batch]
        sym = self._sym
        shape = (batch,) + self.data_shape[1:]
        bound = {param.name: (arr, grad, req) for param, arr, grad, req in self._bound}
        args, grads, reqs = {}, {}, {}
        for name in sym.list_arguments():
            if name == DATA:
                args[name], reqs[name] = mx.nd.zeros(shape, self.ctx), "null"
            elif name == LABEL:
                args[name], reqs[name] = mx.nd.zeros((batch,), self.ctx), "null"
            else:
                arr, grad, req = bound[name]
                args[name] = arr
                reqs[name] = req
                if grad is not None:
                    grads[name] = grad
        aux = {name: bound[name][0] for name in sym.list_auxiliary_states()}
        shared = next(iter(self._execs.values()), None)
        exe = sym.bind(self.ctx, args=args, args_grad=grads or None, grad_req=reqs,
                       aux_states=aux, shared_exec=shared)
        self._execs[batch] = exe
        return exe

    # -- steps -----------------------------------------------------------------------------

    def forward_backward(self, data: NDArray, label: NDArray) -> Tuple[NDArray, NDArray]:
        """One training forward and backward on a batch (any batch size).

        Returns the per-sample loss and the logits (copies). The gradients are written
        (or added, per ``grad_req``) into the Parameters' gradient arrays on this context
        and marked fresh for ``Trainer.step``; BN running statistics move once, as in a
        Gluon training step.
        """
        if self._stale():
            log.info("mirror: Parameter arrays or grad_req changed, rebinding on %s", self.ctx)
            self._bind_params()
        exe = self._executor(data.shape[0])
        data.copyto(exe.arg_dict[DATA])
        label.astype("float32", copy=False).copyto(exe.arg_dict[LABEL])
        probe = self._aux_in_forward is None and bool(self._aux_saved)
        if probe:
            before = {name: exe.aux_dict[name].asnumpy() for name in self._aux_saved}
        exe.forward(is_train=True)
        if probe:
            self._aux_in_forward = any(not np.array_equal(before[name], exe.aux_dict[name].asnumpy())
                                       for name in self._aux_saved)
        restore = bool(self._aux_in_forward)
        if restore:
            for name, saved in self._aux_saved.items():
                exe.aux_dict[name].copyto(saved)
        exe.backward()
        if restore:
            for name, saved in self._aux_saved.items():
                saved.copyto(exe.aux_dict[name])
        for arr in self._fresh:
            arr._fresh_grad = True
        loss, logits = exe.outputs
        return loss.copy(), logits.copy()

    def forward(self, data: NDArray) -> NDArray:
        """Inference logits (``is_train=False``: BN uses the running statistics).

        Inference keeps no activations for a backward pass, so nothing is mirrored: this
        is the Gluon network itself on this context.
        """
        with autograd.pause(train_mode=False):
            return self.net(data.as_in_context(self.ctx))

    def debug_str(self) -> str:
        """MXNet's description of the bound training graph (mirror nodes end in ``_mirror``)."""
        return self._executor(self.data_shape[0]).debug_str()


# ----------------------------------------------------------------------------- several contexts


def make_executors(net: gluon.HybridBlock, data_shape: Tuple[int, ...],
                   ctxs: Sequence[mx.Context], *, num_classes: int,
                   segments: Optional[int] = None) -> List[MirrorExecutor]:
    """One :class:`MirrorExecutor` per context, bound for the slice of a ``data_shape`` batch
    that ``gluon.utils.split_and_load(..., even_split=False)`` gives the first context."""
    ctxs = list(ctxs)
    per_ctx = -(-int(data_shape[0]) // len(ctxs))
    shape = (per_ctx,) + tuple(data_shape[1:])
    return [MirrorExecutor(net, shape, ctx, num_classes=num_classes, segments=segments)
            for ctx in ctxs]


def mirror_step(executors: Sequence[MirrorExecutor], data: NDArray, label: NDArray,
                trainer: Optional[gluon.Trainer], batch_size: int) -> List[Tuple[NDArray, NDArray]]:
    """Forward/backward of a batch split over the executors' contexts, then ``trainer.step``.

    Mirrors ``autograd.record`` + ``backward`` + ``trainer.step(batch_size)`` over
    ``split_and_load``; returns ``(per-sample loss, logits)`` for each context's slice.
    ``trainer=None`` skips the update (gradients only).
    """
    ctxs = [exe.ctx for exe in executors]
    xs = gluon.utils.split_and_load(data, ctxs, even_split=False)
    ys = gluon.utils.split_and_load(label, ctxs, even_split=False)
    pairs = [exe.forward_backward(x, y) for exe, x, y in zip(executors, xs, ys)]
    if trainer is not None:
        trainer.step(batch_size)
    return pairs
