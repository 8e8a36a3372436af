"""Sequence families (pure PyTorch, causal), called as ``family(vocab_size, context_length, **args)``.

Each file holds a mixer layer and the family built around it; they are exported from
:mod:`mlplab.models`, and :mod:`mlplab.models.sequence.common` holds :class:`SequenceModel`.
"""
