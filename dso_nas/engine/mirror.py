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

The plan is chosen by :func:`dso_nas.engine.mirror_plan.plan_mirror`.

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
from mxnet import autograd, gluon
from mxnet.gluon import nn
from mxnet.ndarray import NDArray

from .mirror_plan import DATA, describe_plan, plan_mirror

__all__ = ["plan_mirror", "describe_plan", "MirrorExecutor", "make_executors", "mirror_step"]

log = logging.getLogger(__name__)



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
