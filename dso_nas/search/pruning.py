"""Permanent pruning of λ (issue 26; the release's rounds of pruning): entries fixed at zero for
good in an APG-NAG Trainer, its optimizer's mask and its current state alike."""
from __future__ import annotations

from typing import Any, Dict

import mxnet as mx
import numpy as np

from .apgnag import APGNAG

__all__ = ["prune_lambdas"]

def prune_lambdas(trainer: mx.gluon.Trainer, masks: Dict[str, np.ndarray]) -> int:
    """Fix the ``True`` entries of ``masks`` (parameter name -> bool array) at zero for good:
    the optimizer stops moving them (:meth:`APGNAG.prune`), and their iterate, momentum and
    look-ahead λ′ are zeroed now, on every context. Returns how many entries are pruned in all.

    Call between steps (a prune at an epoch's end), after the Trainer's first step.
    """
    opt = trainer.optimizer
    if not isinstance(opt, APGNAG):
        raise TypeError(f"prune_lambdas needs an APGNAG trainer, got {type(opt).__name__}")
    params = {p.name: (i, p) for i, p in enumerate(trainer._params)}  # noqa: SLF001 - Gluon's index of each
    states = _updater(trainer).states
    total = 0
    for name, mask in masks.items():
        index, param = params[name]
        opt.prune(name, mask)
        keep = mx.nd.array(~opt.pruned(name).reshape(param.shape))
        arrays = list(param.list_data())
        state = states.get(index)
        if state is not None:  # (v, iterate), or (float32 master, (v, iterate)) with multi_precision
            arrays += [state[0], *state[1]] if isinstance(state[1], (tuple, list)) else list(state)
        if opt.has_iterate(name):  # the same array as the state's, or its copy after load_states
            arrays.append(opt.iterate(name))
        for arr in arrays:
            arr[:] = arr * keep.as_in_context(arr.context)
        total += int(opt.pruned(name).sum())
    return total


def _updater(trainer: mx.gluon.Trainer) -> Any:
    """The Updater that holds a Trainer's optimizer states: the kvstore's when it updates there
    (several contexts in one process), else the Trainer's own."""
    if trainer._update_on_kvstore and trainer._kvstore is not None:  # noqa: SLF001 - Gluon has no public accessor
        return trainer._kvstore._updater  # noqa: SLF001
    return trainer._updaters[0]  # noqa: SLF001
