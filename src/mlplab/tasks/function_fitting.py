"""Function fitting: regress samples of a formula, as the KAN papers evaluate their networks."""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import MeanMetric, MeanSquaredError

from mlplab.errors import ConfigError, require_positive
from mlplab.tasks.base import ImageBackbone
from mlplab.tasks.pointwise import PointwiseFitting


class FunctionFitting(PointwiseFitting):
    """Fit ``y = f(x)`` from samples with the mean squared error; report the root mean squared error.

    The backbone is called as ``family((num_inputs,), (num_outputs,))`` and maps ``(B, num_inputs)`` to
    ``(B, num_outputs)`` (the KAN families, or any flat MLP such as ``StandardMLP``). Metrics:
    ``<stage>/rmse`` (over the whole split, every process of a multi-process run, without the rows that
    pad a process's share) and ``<stage>/loss``; the best checkpoint is chosen by ``val/rmse``.

    Args:
        backbone: The family: its class path and arguments.
        num_inputs: Input dimension; filled in from the DataModule.
        num_outputs: Output dimension; filled in from the DataModule.
        **kwargs: The optimiser, its LR scheduler and the scheduler's interval (:class:`~mlplab.tasks.Task`).
    """

    monitor = "val/rmse"
    monitor_mode = "min"
    metric_name = "rmse"
    inputs_name = "inputs"

    def __init__(self, backbone: ImageBackbone, num_inputs: int, num_outputs: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        self.save_hyperparameters()
        require_positive("FunctionFitting", num_inputs=num_inputs, num_outputs=num_outputs)
        self.num_inputs, self.num_outputs = num_inputs, num_outputs
        self.backbone = self.build_backbone(backbone, (num_inputs,), (num_outputs,))
        self.val_rmse = MeanSquaredError(squared=False)
        self.test_rmse = MeanSquaredError(squared=False)
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()

    def example_backbone_input(self, batch_size: int) -> torch.Tensor:
        """Points ``(B, num_inputs)``."""
        return torch.zeros(batch_size, self.num_inputs)

    def example_inputs(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, Any]:
        """Inputs of the backbone by name, for ``mlplab export``: points ``(B, num_inputs)`` in [-1, 1]."""
        return {"inputs": torch.rand(batch_size, self.num_inputs, generator=generator) * 2 - 1}

    def check_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        if inputs.ndim != 2 or inputs.shape[-1] != self.num_inputs:
            raise ConfigError(
                f"FunctionFitting was built for {self.num_inputs} inputs, "
                f"got a batch of shape {tuple(inputs.shape)}"
            )
