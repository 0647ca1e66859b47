"""The one place that imports Matplotlib: figures on an Agg canvas, saved as PNG, and PNGs read back.

Matplotlib is used through its Agg canvas only (no display, no change of the global backend),
and imported when the first figure is made, so importing the plot modules stays cheap.
"""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

DPI = 110


def figure(width: float, height: float) -> "Figure":
    """A ``width x height`` inch figure at :data:`DPI`, attached to an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - defers the slow matplotlib import
    from matplotlib.figure import Figure  # noqa: PLC0415 - defers the slow matplotlib import

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save(fig: "Figure", path: str) -> str:
    """Write ``fig`` to ``path`` as PNG (its folder is created); return ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, format="png")
    log.debug("wrote %s", path)
    return path


def read_png(path: str) -> Any:
    """The pixels of a PNG file, as Matplotlib's ``imread`` gives them."""
    from matplotlib.image import imread  # noqa: PLC0415 - defers the slow matplotlib import

    return imread(path)


def box_patch(xy: Any, width: float, height: float, **style: Any) -> Any:
    """A rounded box (``FancyBboxPatch``) with its lower left corner at ``xy``."""
    from matplotlib.patches import FancyBboxPatch  # noqa: PLC0415 - defers the slow matplotlib import

    return FancyBboxPatch(xy, width, height, **style)
