"""Network pieces shared by every search space and task.

* :mod:`~dso_nas.models.common` - stems, reduction blocks and the Conv-BN-ReLU pieces, with
  their analytic costs;
* :mod:`~dso_nas.models.heads` - the classifier and auxiliary heads the tasks build;
* :mod:`~dso_nas.models.width` - the global width multiplier that meets a parameter or FLOPs
  budget (TPAMI §4.1).

The search spaces, their derivation and the architecture file live in :mod:`dso_nas.spaces`.
"""
