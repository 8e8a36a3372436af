"""Commands beside training: parameter-matched sweeps with Pareto frontiers (``mlplab sweep``)."""

from mlplab.tools.sweep import load_sweep, plan_sweep, run_sweep

__all__ = ["load_sweep", "plan_sweep", "run_sweep"]
