"""Tasks by ``task.name`` (:data:`TASKS`): loss, metric and head of what the network is trained for.

* ``classification`` - softmax cross-entropy, top-1 accuracy, the pooled linear classifier
  (:mod:`dso_nas.tasks.classification`);
* ``segmentation`` - GluonCV's DeepLabv3 head parts, mixed softmax cross-entropy with the ignore
  label, pixel accuracy and mIoU (:mod:`dso_nas.tasks.segmentation`, TPAMI §4.4).
"""
from __future__ import annotations

from ..registry import Registry
from .base import Metric, Task

__all__ = ["TASKS", "Task", "Metric", "get_task"]

TASKS: Registry[Task] = Registry("task", "task.name")

from .classification import Classification  # noqa: E402 - registers after TASKS exists
from .segmentation import Segmentation  # noqa: E402

TASKS.register(Classification.name, Classification())
TASKS.register(Segmentation.name, Segmentation())


def get_task(name: str) -> Task:
    """The task registered as ``name``; ``ConfigError`` listing the valid names."""
    return TASKS.get(name)
