"""Every figure and drawing of the package, drawn from data the other layers supply.

* :mod:`~dso_nas.plots.canvas` - the one place that imports Matplotlib (Agg canvas, PNG files);
* :mod:`~dso_nas.plots.records` - a run folder's epoch records as the plots read them;
* :mod:`~dso_nas.plots.training` - a run folder's λ sparsity, kept FLOPs per block and loss and
  accuracy curves (``sparsity.png``, ``block_flops.png``, ``curves.png``);
* :mod:`~dso_nas.plots.cells` - derived cells drawn in the style of TPAMI Fig. 6 (the dense
  space hands over its cells);
* :mod:`~dso_nas.plots.study` - a study's figures (error against parameters, λ sparsity, the
  searched blocks).

The package sits on the ground floor beside ``ops`` and ``data``: it imports only the
package's bottom layer (``errors``, ``runlog``), so the spaces, the run and the study can all
call it. Matplotlib is imported when the first figure is made.
"""
from .cells import draw_architecture, draw_cell
from .records import load_phases, series, stage_sizes
from .study import plot_study
from .training import plot_run, plot_run_or_warn

__all__ = ["draw_architecture", "draw_cell", "load_phases", "series", "stage_sizes", "plot_study", "plot_run",
           "plot_run_or_warn"]
