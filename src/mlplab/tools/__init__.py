"""Commands beside training: parameter-matched sweeps with Pareto frontiers (``mlplab sweep``)."""
