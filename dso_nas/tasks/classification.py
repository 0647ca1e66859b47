"""Image classification (CIFAR-10, ImageNet, Fashion-MNIST): cross-entropy (optionally with
label smoothing) and top-1 / top-5 accuracy."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from mxnet import gluon

from ..models.heads import Classifier, HeadCost, HeadFactory, classifier_cost
from .base import Metric, Task

__all__ = ["Classification", "AccuracyMeter", "SmoothedCrossEntropy"]

#: The k of the top-k accuracy reported beside top-1 (when there are more than k classes).
TOP_K = 5


class SmoothedCrossEntropy(gluon.loss.Loss):
    """Softmax cross-entropy against labels smoothed by ε (Szegedy et al. 2016): the target is
    ``1 - ε`` on the true class plus ``ε / K`` on every class."""

    def __init__(self, epsilon: float, **kwargs):
        super().__init__(None, 0, **kwargs)
        self.epsilon = float(epsilon)

    def hybrid_forward(self, F, pred, label):
        logp = F.log_softmax(pred, axis=-1)
        nll = -F.pick(logp, label, axis=-1)
        return (1.0 - self.epsilon) * nll - self.epsilon * F.mean(logp, axis=-1)


@dataclass
class AccuracyMeter(Metric):
    """Running sums of loss, top-1 and top-5 hits over a phase (top-5 only with > 5 classes)."""

    loss: float = 0.0
    correct: int = 0
    correct_k: int = 0
    count: int = 0
    has_top_k: bool = False

    def update(self, loss_sum: float, outputs: Any, labels: Any) -> None:
        self.loss += loss_sum
        lab = labels.astype(outputs.dtype)
        self.correct += int((outputs.argmax(axis=1) == lab).sum().asscalar())
        if outputs.shape[1] > TOP_K:
            top = outputs.topk(axis=1, k=TOP_K)
            self.correct_k += int((top == lab.reshape((-1, 1))).sum().asscalar())
            self.has_top_k = True
        self.count += int(labels.shape[0])

    def merge(self, other: "AccuracyMeter") -> None:
        self.loss += other.loss
        self.correct += other.correct
        self.correct_k += other.correct_k
        self.count += other.count
        self.has_top_k = self.has_top_k or other.has_top_k

    def state(self) -> List[float]:
        return [self.loss, self.correct, self.correct_k, self.count, float(self.has_top_k)]

    def load_state(self, state: Sequence[float]) -> None:
        loss, correct, correct_k, count, top_k = state
        self.loss, self.correct, self.correct_k, self.count = float(loss), int(round(correct)), int(round(correct_k)), \
            int(round(count))
        self.has_top_k = top_k > 0

    def result(self) -> Dict[str, float]:
        n = max(self.count, 1)
        out = {"loss": self.loss / n, "acc": self.correct / n}
        if self.has_top_k:
            out["top5_acc"] = self.correct_k / n
        return out


class Classification(Task):
    """Softmax cross-entropy on the classifier's logits; top-1 accuracy; ``model.num_classes`` outputs."""

    name = "classification"

    def loss(self, label_smoothing: float = 0.0) -> gluon.loss.Loss:
        if label_smoothing > 0:
            return SmoothedCrossEntropy(label_smoothing)
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
        out = {f"{split}_acc": metrics["acc"], f"{split}_error": 1.0 - metrics["acc"], f"{split}_loss": metrics["loss"]}
        if "top5_acc" in metrics:
            out.update({f"{split}_top5_acc": metrics["top5_acc"], f"{split}_top5_error": 1.0 - metrics["top5_acc"]})
        return out

    def summary(self, metrics: Dict[str, float]) -> str:
        top5 = f" top5 {metrics['top5_acc']:.4f}" if "top5_acc" in metrics else ""
        return f"loss {metrics['loss']:.4f} acc {metrics['acc']:.4f}{top5}"
