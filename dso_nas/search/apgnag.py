"""APG-NAG: the sparse optimizer of the scaling factors λ (TPAMI 2020, §3.3, Eqs. 10-16).

Accelerated Proximal Gradient (APG, Eqs. 10-12) for ``min_λ G(λ) + γ‖λ‖₁`` needs the
gradient at the extrapolated point ``d = λ_(t-1) + μ (λ_(t-1) - λ_(t-2))``. The
momentum reformulation (Eqs. 13-16) stores that look-ahead point ``λ′`` as the weight,
so the network's forward/backward pass already yields ``∇G(λ′)``, and one step is::

    z  = λ′ - η ∇G(λ′)                   (14)
    v  = S(z) - λ′ + μ v                 (15)
    λ′ = S(z) + μ v                      (16)

``S`` is the proximal operator of ``γ‖λ‖₁`` restricted to ``λ ≥ 0`` (the relaxation
of Eq. 8): the non-negative soft threshold ``S(z) = max(0, z - ηγ)``.

Iterate versus look-ahead
-------------------------
Two sequences live side by side: the proximal iterate ``λ_t = S(z_t)`` and the
extrapolation ``λ′_t = λ_t + μ v_t``. Only ``λ_t`` is the output of a proximal step,
so only it has exact zeros; ``λ′_t`` adds the momentum ``μ v_t`` and is merely the
point where the next gradient is taken. Where an edge has just been switched off,
``λ_t = 0`` while ``λ′_t = μ (0 - λ_(t-1))`` is small and negative (or, while it is
switching back on, small and positive). The architecture must therefore be read
from the iterate: :meth:`APGNAG.iterate` / :func:`lambda_iterates`, never from the
weight, which holds ``λ′``.

MXNet 1.9.1 details
-------------------
The Gluon updater calls :meth:`update_multi_precision` (never :meth:`update`
directly), with a list of indices when ``aggregate_num > 0``; both entry points
accept a single index or a list. Under Gluon ``idx2name`` is empty; parameters are
named through ``param_dict[index].name``. The state of one parameter is the tuple
``(v, iterate)`` of NDArrays, which the Updater pickles in
``Trainer.save_states``; the γ multipliers are attributes of the optimizer, which
``save_states`` pickles too (``dump_optimizer=True``).
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Sequence, Tuple, Union

import mxnet as mx
import numpy as np
from mxnet import nd
from mxnet.ndarray import NDArray

__all__ = ["APGNAG", "MOMENTUM_SCHEDULES", "lambda_iterates", "soft_threshold_nonneg"]

MOMENTUM_SCHEDULES = ("constant", "apg")

Threshold = Union[float, NDArray]


def soft_threshold_nonneg(z: NDArray, threshold: Threshold) -> NDArray:
    """Non-negative soft threshold ``max(0, z - threshold)``.

    The proximal operator of ``t‖x‖₁ + ι(x ≥ 0)``, with ``t = threshold``.

    Parameters
    ----------
    z : NDArray
        The point after the gradient step.
    threshold : float or NDArray
        ``η γ``, a scalar or an array broadcastable to ``z``.

    Returns
    -------
    NDArray
        A new array of ``z``'s shape, exactly 0 where ``z <= threshold``.
    """
    return nd.relu(z - threshold)


def _zip_indices(index: Any, *per_index: Any) -> Iterator[Tuple[Any, ...]]:
    """Pairs a single index or a list of indices (aggregated update) with its data."""
    if isinstance(index, (list, tuple)):
        return zip(index, *per_index)
    return iter([(index,) + per_index])


@mx.optimizer.register
class APGNAG(mx.optimizer.Optimizer):
    """APG-NAG with the non-negative soft threshold; registered as ``'apgnag'``.

    Use it in its own ``gluon.Trainer`` holding only the λ parameters (the weights
    have a separate Trainer, e.g. ``'nag'``)::

        gluon.Trainer(lambdas, 'apgnag', {'learning_rate': 0.1, 'momentum': 0.9,
                                          'gamma': 1e-3})

    Parameters
    ----------
    gamma : float
        The sparsity weight γ of ``γ‖λ‖₁``; the threshold of entry ``i`` of parameter
        ``p`` is ``η γ scale_p[i]`` (see :meth:`set_gamma_scale`).
    momentum : float, default 0.9
        μ of Eqs. 15-16 (constant, as in the authors' release) when
        ``momentum_schedule='constant'``.
    momentum_schedule : {'constant', 'apg'}, default 'constant'
        ``'apg'`` uses the paper's ``μ_t = (t - 1) / (t + 2)`` (Eq. 13 writes
        ``μ_(t-1) = (t - 2) / (t + 1)``), t the per-parameter update count, and
        ignores ``momentum``.
    aggregate_num : int, default 0
        How many parameters the Updater hands over per call; 0 turns aggregation off.
        The math is identical either way.
    clamp : bool, default False
        Keep the look-ahead ``λ′ = max(0, S(z) + μv)`` (the release's ``maximum(0, weight)``
        after Eq. 16): a switched-off edge then contributes exactly nothing to the forward
        pass, where ``μv < 0`` would otherwise feed it a small negative weight.
    **kwargs
        Passed to :class:`mxnet.optimizer.Optimizer`: ``learning_rate`` (η),
        ``lr_scheduler``, ``rescale_grad``, ``clip_gradient``, ``wd`` (default 0;
        when > 0 it is added to the gradient as ``wd · λ′``), ``multi_precision``,
        ``begin_num_update``, ``param_idx2name``, ``param_dict``.
    """

    def __init__(self, gamma: float, momentum: float = 0.9,
                 momentum_schedule: str = "constant", aggregate_num: int = 0, clamp: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not float(gamma) >= 0.0:
            raise ValueError(f"apgnag: gamma must be >= 0, got {gamma!r}")
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"apgnag: momentum must be in [0, 1), got {momentum!r}")
        if momentum_schedule not in MOMENTUM_SCHEDULES:
            raise ValueError(f"apgnag: momentum_schedule must be one of "
                             f"{MOMENTUM_SCHEDULES}, got {momentum_schedule!r}")
        if int(aggregate_num) < 0:
            raise ValueError(f"apgnag: aggregate_num must be >= 0, got {aggregate_num!r}")
        self.gamma = float(gamma)
        self.momentum = float(momentum)
        self.momentum_schedule = momentum_schedule
        self.aggregate_num = int(aggregate_num)
        self.clamp = bool(clamp)
        self._gamma_scale: Dict[str, np.ndarray] = {}
        self._pruned: Dict[str, np.ndarray] = {}
        self._keep_cache: Dict[Tuple[str, str, str], NDArray] = {}
        self._iterates: Dict[str, NDArray] = {}
        self._scale_cache: Dict[Tuple[str, str, str], NDArray] = {}

    # ------------------------------------------------------------------ names
    def _param_name(self, index: Union[int, str]) -> str:
        """The parameter's name: Gluon's ``param_dict``, else ``idx2name``, else the index."""
        if index in self.param_dict:
            return self.param_dict[index].name
        if index in self.idx2name:
            return self.idx2name[index]
        return str(index)

    def _known_shapes(self) -> Dict[str, Tuple[int, ...]]:
        """Name -> shape of the parameters of the owning Trainer (empty outside Gluon)."""
        return {p.name: tuple(p.shape) for p in self.param_dict.values()}

    # ------------------------------------------------------------- γ scaling
    def set_gamma_scale(self, param_name: str, scale: Union[float, np.ndarray]) -> None:
        """Sets the per-entry multiplier of γ for one λ parameter.

        Takes effect at the next update, without rebuilding the Trainer.

        Parameters
        ----------
        param_name : str
            The Gluon parameter's ``name``.
        scale : float or numpy.ndarray
            Non-negative, a scalar or an array broadcastable to the parameter's shape.

        Raises
        ------
        ValueError
            If the scale is negative or not finite, if its shape does not broadcast, or
            if the Trainer owning this optimizer has no parameter of that name.
        """
        arr = np.array(scale, dtype=np.float64)
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(f"apgnag: gamma scale of {param_name!r} must be finite and >= 0")
        shapes = self._known_shapes()
        if shapes:
            if param_name not in shapes:
                raise ValueError(f"apgnag: no parameter named {param_name!r} in this "
                                 f"optimizer's trainer (has {sorted(shapes)})")
            try:
                arr = np.array(np.broadcast_to(arr, shapes[param_name]))
            except ValueError:
                raise ValueError(f"apgnag: gamma scale of shape {arr.shape} does not "
                                 f"broadcast to {param_name!r} of shape "
                                 f"{shapes[param_name]}") from None
        self._gamma_scale[param_name] = arr
        for key in [k for k in self._scale_cache if k[0] == param_name]:
            del self._scale_cache[key]

    def gamma_scale(self, param_name: str) -> np.ndarray:
        """The multiplier of γ of one parameter (a 0-d array of 1 if never set)."""
        return self._gamma_scale.get(param_name, np.array(1.0)).copy()

    def _threshold(self, name: str, lr: float, weight: NDArray) -> Threshold:
        """``η γ scale`` for one parameter: a float, or an NDArray on the weight's device."""
        base = lr * self.gamma
        scale = self._gamma_scale.get(name)
        if scale is None:
            return base
        if scale.ndim == 0:
            return base * float(scale)
        key = (name, str(weight.context), str(weight.dtype))
        cached = self._scale_cache.get(key)
        if cached is None:
            cached = nd.array(np.broadcast_to(scale, weight.shape), ctx=weight.context,
                              dtype=weight.dtype)
            self._scale_cache[key] = cached
        return cached * base

    # ------------------------------------------------------------- pruning
    def prune(self, param_name: str, mask: np.ndarray) -> None:
        """Fix the entries of ``mask`` of one parameter at zero for good (iterate, λ′ and
        momentum), from its next update on; entries pruned before stay pruned.

        :func:`dso_nas.search.pruning.prune_lambdas` also zeroes the current state at once; the mask is pickled with
        the optimizer, so ``Trainer.save_states`` (the checkpoint) keeps it.
        """
        mask = np.asarray(mask, dtype=bool)
        old = self._pruned.get(param_name)
        self._pruned[param_name] = mask if old is None else (old | mask)
        for key in [k for k in self._keep_cache if k[0] == param_name]:
            del self._keep_cache[key]

    def pruned(self, param_name: str) -> np.ndarray:
        """The entries of a parameter fixed at zero (all ``False`` if none was pruned)."""
        mask = self._pruned.get(param_name)
        return np.zeros(0, bool) if mask is None else mask.copy()

    def _keep(self, name: str, weight: NDArray) -> Optional[NDArray]:
        """``1 - pruned`` on the weight's device, or ``None`` when nothing is pruned."""
        mask = self._pruned.get(name)
        if mask is None or not mask.any():
            return None
        key = (name, str(weight.context), str(weight.dtype))
        keep = self._keep_cache.get(key)
        if keep is None:
            keep = nd.array(~mask.reshape(weight.shape), ctx=weight.context, dtype=weight.dtype)
            self._keep_cache[key] = keep
        return keep

    def _momenta(self, index: Union[int, str]) -> Tuple[float, float]:
        """``(μ_(t-1), μ_t)`` of Eqs. 15-16 for the update being made."""
        if self.momentum_schedule == "constant":
            return self.momentum, self.momentum
        t = self._index_update_count[index]
        return max(0.0, (t - 2.0) / (t + 1.0)), (t - 1.0) / (t + 2.0)

    # ----------------------------------------------------------------- state
    def create_state(self, index: Union[int, str], weight: NDArray) -> Tuple[NDArray, NDArray]:
        """``(v, iterate)``: zero momentum, and the iterate initialised to the weight."""
        iterate = weight.copy()
        self._iterates[self._param_name(index)] = iterate
        return nd.zeros_like(weight), iterate

    def create_state_multi_precision(self, index: Any, weight: Any) -> Any:
        """The state of one index, or a list of states for a list of indices.

        With ``multi_precision=True`` and a float16 weight the state is
        ``(float32 master copy, (v, iterate))`` (the base class's layout).
        """
        if isinstance(index, (list, tuple)):
            return [super(APGNAG, self).create_state_multi_precision(i, w)
                    for i, w in zip(index, weight)]
        return super().create_state_multi_precision(index, weight)

    # ---------------------------------------------------------------- update
    def update(self, index: Any, weight: Any, grad: Any, state: Any) -> None:
        """One APG-NAG step (Eqs. 14-16) for one index or a list of indices."""
        for idx, w, g, s in _zip_indices(index, weight, grad, state):
            self._update_one(idx, w, g, s)

    def update_multi_precision(self, index: Any, weight: Any, grad: Any, state: Any) -> None:
        """The entry point of the Gluon Updater; float16 weights use a float32 master copy."""
        for idx, w, g, s in _zip_indices(index, weight, grad, state):
            super().update_multi_precision(idx, w, g, s)

    def _update_one(self, index: Union[int, str], weight: NDArray, grad: NDArray,
                    state: Tuple[NDArray, NDArray]) -> None:
        self._update_count(index)
        lr = self._get_lr(index)
        wd = self._get_wd(index)
        name = self._param_name(index)
        mom, iterate = state

        grad = grad * self.rescale_grad
        if self.clip_gradient is not None:
            grad = nd.clip(grad, -self.clip_gradient, self.clip_gradient)
        if wd > 0:
            grad = grad + wd * weight
        mu_prev, mu_next = self._momenta(index)

        z = weight - lr * grad                                          # Eq. 14
        iterate[:] = soft_threshold_nonneg(z, self._threshold(name, lr, weight))
        keep = self._keep(name, weight)
        if keep is not None:
            iterate[:] = iterate * keep
        mom[:] = iterate - weight + mu_prev * mom                       # Eq. 15
        if keep is not None:
            mom[:] = mom * keep
        weight[:] = iterate + mu_next * mom                             # Eq. 16
        if self.clamp:
            weight[:] = nd.relu(weight)
        self._iterates[name] = iterate

    # -------------------------------------------------------------- iterates
    def iterate(self, param_name: str) -> NDArray:
        """The proximal iterate ``S(z)`` of a parameter after its latest update.

        Raises
        ------
        KeyError
            If the parameter has not been updated yet (use :func:`lambda_iterates`,
            which falls back to the weight).
        """
        if param_name not in self._iterates:
            raise KeyError(f"apgnag: no iterate yet for {param_name!r} "
                           f"(not updated by this optimizer)")
        return self._iterates[param_name]

    def has_iterate(self, param_name: str) -> bool:
        """Whether :meth:`iterate` has a value for ``param_name``."""
        return param_name in self._iterates

    # ----------------------------------------------------------------- pickle
    def __getstate__(self) -> Dict[str, Any]:
        ret = super().__getstate__()
        ret.pop("_scale_cache", None)
        ret.pop("_keep_cache", None)
        return ret

    def __setstate__(self, state: Dict[str, Any]) -> None:
        state.setdefault("clamp", False)
        state.setdefault("_pruned", {})
        super().__setstate__(state)
        self._scale_cache = {}
        self._keep_cache = {}


def lambda_iterates(trainer: mx.gluon.Trainer,
                    params: Optional[Sequence[mx.gluon.Parameter]] = None) -> Dict[str, np.ndarray]:
    """The proximal iterates of a λ Trainer as NumPy arrays, keyed by parameter name.

    A parameter not yet updated by the Trainer reports its weight. Call after
    ``load_states`` too: the function reads ``trainer.optimizer`` each time (the
    Trainer replaces its optimizer object on ``load_states``).

    Parameters
    ----------
    trainer : mxnet.gluon.Trainer
        A Trainer whose optimizer is :class:`APGNAG`.
    params : sequence of Parameter, optional
        The parameters to report; default all parameters of the Trainer.

    Returns
    -------
    dict of str to numpy.ndarray
    """
    opt = trainer.optimizer
    if not isinstance(opt, APGNAG):
        raise TypeError(f"lambda_iterates needs an APGNAG trainer, got {type(opt).__name__}")
    if params is None:
        params = list(opt.param_dict.values()) or list(trainer._params)
    out: Dict[str, np.ndarray] = {}
    for p in params:
        arr = opt.iterate(p.name) if opt.has_iterate(p.name) else p.list_data()[0]
        out[p.name] = arr.asnumpy()
    return out

