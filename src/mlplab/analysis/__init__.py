"""Looking inside trained models: layer similarity and dropping, activation density, magnitude pruning.

Each question a paper asks of a trained network is one command on a run directory (``mlplab analyze``,
``mlplab drop-layers``, ``mlplab prune``, :mod:`mlplab.analysis.command`) and a small library module
that works on any registered family through its :class:`~mlplab.models.registry.BlockLayout`:

* :mod:`~mlplab.analysis.layers`: the residual blocks and their attention / channel-MLP branches of a
  built backbone, and the surgery that removes them (the task option ``dropped_layers``);
* :mod:`~mlplab.analysis.similarity`: the cosine similarity between the input and the output of every
  block and sub-layer (He et al. 2024, "What Matters in Transformers? Not All Attention is Needed");
* :mod:`~mlplab.analysis.density`: the activation density of the channel MLPs and DEFT's density loss
  (Runwal et al. 2024, "From PEFT to DEFT"), the task option ``density``;
* :mod:`~mlplab.analysis.pruning`: global magnitude pruning with ``torch.nn.utils.prune`` (Gupta et al.
  2022, "Is Complexity Required for Neural Network Pruning?"), used by
  :class:`mlplab.callbacks.GlobalMagnitudePruning` and ``mlplab prune``;
* :mod:`~mlplab.analysis.run`: reading a run directory (config and checkpoint) and evaluating it.

This package imports nothing of the training CLI at import time (the tasks import
:mod:`~mlplab.analysis.layers` and :mod:`~mlplab.analysis.density`).
"""
