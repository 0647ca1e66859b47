"""Image classification (CIFAR-10, ImageNet, Fashion-MNIST): cross-entropy and top-1 accuracy."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from mxnet import gluon

from ..models.heads import Classifier, HeadCost, HeadFactory, classifier_cost
from .base import Metric, Task

__all__ = ["Classification", "AccuracyMeter"]


@dataclass
class AccuracyMeter(Metric):
    """Running sums of loss and top-1 hits over a phase."""

    loss: float = 0.0
    correct: int = 0
    count: int = 0

    def update(self, loss_sum: float, outputs: Any, labels: Any) -> None:
        self.loss += loss_sum
        self.correct += int((outputs.argmax(axis=1) == labels.astype(outputs.dtype)).sum().asscalar())
        self.count += int(labels.shape[0])

    def merge(self, other: "AccuracyMeter") -> None:
        self.loss += other.loss
        self.correct += other.correct
        self.count += other.count

    def result(self) -> Dict[str, float]:
        n = max(self.count, 1)
        return {"loss": self.loss / n, "acc": self.correct / n}


class Classification(Task):
    """Softmax cross-entropy on the classifier's logits; top-1 accuracy; ``model.num_classes`` outputs."""

    name = "classification"

    def loss(self) -> gluon.loss.Loss:
        return gluon.loss.SoftmaxCrossEntropyLoss()

    def metric(self) -> AccuracyMeter:
        return AccuracyMeter()

    def head(self, cfg: Any, backend: str, *, dropout: float = 0.0) -> HeadFactory:
        num_classes = int(cfg.model.num_classes)
        return lambda channels, prefix: Classifier(channels, num_classes, dropout, backend, prefix=prefix)

    def head_cost(self, cfg: Any) -> Optional[HeadCost]:
        num_classes = int(cfg.model.num_classes)
        return lambda channels, height, width: classifier_cost(channels, num_classes, height, width)

    def result_fields(self, metrics: Dict[str, float], split: str = "test") -> Dict[str, float]:
        return {f"{split}_acc": metrics["acc"], f"{split}_error": 1.0 - metrics["acc"], f"{split}_loss": metrics["loss"]}

    def summary(self, metrics: Dict[str, float]) -> str:
        return f"loss {metrics['loss']:.4f} acc {metrics['acc']:.4f}"
