"""``mlplab sweep``: parameter-matched sweeps over families and shapes, compared as Pareto frontiers.

The Hourglass paper's method (Chen et al., 2025, arXiv 2510.01796; official code
mtkresearch/Hourglass_LM, ``hourglass_mlp/hourglass-main/hourglass_mnist.sh``) as a command for any
family: build every shape of a grid, keep those whose parameter count is within a tolerance of a
budget, train them, and compare the best metric each family reaches against its parameter count.

The modules, in the order a sweep uses them:

* :mod:`~mlplab.tools.sweep.spec`: the sweep file's typed keys, parsed by jsonargparse, and checks;
* :mod:`~mlplab.tools.sweep.plan`: counting every shape on the meta device, the budget filter, and
  the planned runs, each resolved to its full config;
* :mod:`~mlplab.tools.sweep.record`: :class:`RunRecord`, the typed record of one run, and its files;
* :mod:`~mlplab.tools.sweep.execute`: running the runs, each as its own process
  (:mod:`~mlplab.tools.sweep.worker`), with the engines sequential, Ray and SLURM (submitit), and the
  lock that keeps two sweeps from sharing an output folder;
* :mod:`~mlplab.tools.sweep.report`: ``results.csv`` (every run ever finished in the folder, the
  current ones marked), ``best.csv``, ``pareto.png`` and TensorBoard;
* :mod:`~mlplab.tools.sweep.command`: :func:`run_sweep` and the ``mlplab sweep`` command line.

The training CLI (:mod:`mlplab.cli`) does not import this package; the ``mlplab`` program
(:mod:`mlplab.__main__`) sends ``mlplab sweep`` here.
"""

from mlplab.tools.sweep.command import main, run_sweep
from mlplab.tools.sweep.plan import Plan, plan_sweep
from mlplab.tools.sweep.record import RunRecord
from mlplab.tools.sweep.spec import SweepSpec, load_sweep

__all__ = ["Plan", "RunRecord", "SweepSpec", "load_sweep", "main", "plan_sweep", "run_sweep"]
