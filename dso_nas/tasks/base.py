"""What a task provides to the loops, the mirror executor, the builders and the report."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from mxnet import gluon

from ..models.heads import HeadCost, HeadFactory

__all__ = ["Task", "Metric"]


class Metric:
    """Running figures of one phase: ``update`` per batch slice, ``result`` at the end."""

    def update(self, loss_sum: float, outputs: Any, labels: Any) -> None:
        """Add one batch slice: its summed loss, the main output and the labels."""
        raise NotImplementedError

    def merge(self, other: "Metric") -> None:
        """Add another meter's running sums to this one."""
        raise NotImplementedError

    def result(self) -> Dict[str, float]:
        """The figures so far (``loss`` and the task's own), JSON-able."""
        raise NotImplementedError

    def state(self) -> List[float]:
        """The running sums as numbers that add up over workers (a distributed run's log)."""
        raise NotImplementedError

    def load_state(self, state: Sequence[float]) -> None:
        """Replace the running sums by ``state`` (the sum of the workers' :meth:`state`)."""
        raise NotImplementedError


class Task:
    """Base of the registered tasks (:data:`dso_nas.tasks.TASKS`)."""

    #: Registered name (``task.name``).
    name = ""

    def check_config(self, cfg: Any) -> None:
        """Task-specific cross-key checks of a resolved config (``ConfigError``); none by default."""

    def loss(self, label_smoothing: float = 0.0) -> gluon.loss.Loss:
        """The per-sample training loss (a Gluon loss: ``loss(output, label) -> (B,)``), with
        labels smoothed by ``label_smoothing`` where the task has classes."""
        raise NotImplementedError

    @staticmethod
    def main_output(outputs: Any) -> Any:
        """The main output of a network that may also return an auxiliary one."""
        return outputs[0] if isinstance(outputs, (list, tuple)) else outputs

    def objective(self, loss_fn: gluon.loss.Loss, outputs: Any, labels: Any,
                  aux_weight: float = 0.0) -> Tuple[Any, Any]:
        """``(per-sample loss, main output)`` of a network's outputs: the main output's loss,
        plus ``aux_weight`` times the auxiliary output's when the network returns two."""
        if isinstance(outputs, (list, tuple)):
            main, aux = outputs
            loss = loss_fn(main, labels)
            if aux_weight > 0:
                loss = loss + aux_weight * loss_fn(aux, labels)
            return loss, main
        return loss_fn(outputs, labels), outputs

    def metric(self) -> Metric:
        """A fresh meter."""
        raise NotImplementedError

    def head(self, cfg: Any, backend: str, *, dropout: float = 0.0) -> HeadFactory:
        """``(in_channels, prefix) -> HybridBlock``: the head a backbone's last map feeds."""
        raise NotImplementedError

    def aux_head(self, cfg: Any, backend: str) -> Optional[HeadFactory]:
        """``(in_channels, prefix) -> HybridBlock``: the auxiliary head (``retrain.aux_weight``);
        ``None``: the space's own (the classification :class:`~dso_nas.models.heads.AuxHead`)."""
        return None

    def head_cost(self, cfg: Any) -> Optional[HeadCost]:
        """``(channels, height, width) -> Cost`` of :meth:`head` (counted by the width search)."""
        raise NotImplementedError

    def step_count(self, batch: int, contexts: int) -> int:
        """What ``trainer.step`` divides the summed gradient by for a ``batch`` split over
        ``contexts``: the batch, for a loss whose gradient is per sample (the default)."""
        return batch

    def label_shape(self, batch: int, height: int, width: int) -> Tuple[int, ...]:
        """Shape of a batch's labels for ``batch`` inputs of ``height x width``."""
        return (batch,)

    def result_fields(self, metrics: Dict[str, float], split: str = "test") -> Dict[str, float]:
        """The evaluation figures written to ``result.json``, named after the split evaluated
        (``test_acc``, ``test_error``...; ``val_acc``... on a ``data.validation`` hold-out)."""
        raise NotImplementedError

    def summary(self, metrics: Dict[str, float]) -> str:
        """One short log phrase of a meter's result (``loss 0.31 acc 0.90``)."""
        return " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
