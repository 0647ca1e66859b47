"""Figures of a finished phase, never failing the run that made them."""
from __future__ import annotations

import logging

from ..errors import UserError

LOG = logging.getLogger("dso_nas")


def plot(run_dir: str) -> None:
    """Draw the run folder's plots (:func:`dso_nas.plots.plot_run`); a failure is a warning."""
    from ..plots import plot_run  # noqa: PLC0415 - matplotlib import is slow

    try:
        plot_run(run_dir)
    except UserError as e:  # a finished run must not fail on its figures
        LOG.warning("plots not written: %s", e)
