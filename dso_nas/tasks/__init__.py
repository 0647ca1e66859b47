"""Tasks by ``task.name`` (:data:`TASKS`): loss, metric and head of what the network is trained for.

* ``classification`` - softmax cross-entropy, top-1 accuracy, the pooled linear classifier
  (:mod:`dso_nas.tasks.classification`).

Segmentation (DeepLabv3 head, mIoU) lands as ``tasks/segmentation.py`` plus one line below.
"""
from __future__ import annotations

from ..registry import Registry
from .base import Metric, Task

__all__ = ["TASKS", "Task", "Metric", "get_task"]

TASKS: Registry[Task] = Registry("task", "task.name")

from .classification import Classification  # noqa: E402 - registers after TASKS exists

TASKS.register(Classification.name, Classification())


def get_task(name: str) -> Task:
    """The task registered as ``name``; ``ConfigError`` listing the valid names."""
    return TASKS.get(name)
