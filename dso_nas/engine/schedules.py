"""The retraining learning-rate schedules by name (``retrain.schedule``).

* ``sgdr`` - SGDR's cosine periods T0, T0·T_mul, … (CIFAR, TPAMI §4.2);
* ``linear`` - a linear decay from ``retrain.lr_max`` to ``retrain.lr_min`` (ImageNet, §4.3);
* ``poly`` - DeepLabv3's ``(1 - t/T)^0.9`` decay (segmentation, §4.4).

They sit with the training machinery, below the config layer, so that
:data:`dso_nas.config.defaults.CHOICES` can read their names; the run builds them
(``dso_nas.run.build.retrain_schedule``, on GluonCV's ``LRScheduler``).
"""

__all__ = ["SCHEDULES"]

SCHEDULES = ("sgdr", "linear", "poly")
