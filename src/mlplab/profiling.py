"""``StepProfiler``: the PyTorch profiler with a schedule kept per stage, whatever a stage's length.

Lightning's :class:`~lightning.pytorch.profilers.PyTorchProfiler` records steps with a default schedule
(one step skipped, one warm-up step, three recorded) only while every stage it profiles has five steps
or more. The first stage with fewer (a validation of one to four batches, such as the KAN recipes' or a
run's sanity check) replaces that schedule for the whole run with one that records everything into one
trace named after that stage: no ``training_step`` trace is written, and the table mixes the stages.
A schedule given explicitly is kept, and each stage is then counted on its own: this profiler gives one.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.profilers import PyTorchProfiler

from mlplab.errors import ConfigError


class StepProfiler(PyTorchProfiler):
    """The PyTorch profiler: of each stage, ``wait`` steps skipped, ``warmup`` warm up, ``active`` recorded.

    Every stage (training, validation, test, predict) gets its own Chrome trace
    (``<filename>-<stage step>.pt.trace.json`` in the run directory) and the summary table goes to
    ``<run dir>/<stage>-<filename>.txt``, as with Lightning's profiler. A stage with fewer than
    ``wait + warmup + active`` steps records the steps it has past ``wait + warmup`` (torch says so with
    "Incorrect schedule: RECORD followed by NONE"); one of ``wait + warmup`` steps or fewer records none.

    Args:
        wait: Steps of each stage left out first.
        warmup: Steps then run under the profiler without being recorded (its start-up cost).
        active: Steps then recorded.
        **kwargs: Lightning's ``PyTorchProfiler`` arguments (``filename``, ``export_to_chrome``,
            ``row_limit``, ``sort_by_key``, ``record_module_names``, ...).
    """

    def __init__(self, wait: int = 1, warmup: int = 1, active: int = 3, **kwargs: Any) -> None:
        if wait < 0 or warmup < 0 or active < 1:
            raise ConfigError(
                f"trainer.profiler: StepProfiler needs wait >= 0, warmup >= 0 and active >= 1 "
                f"(got wait {wait}, warmup {warmup}, active {active})"
            )
        schedule = torch.profiler.schedule(wait=wait, warmup=warmup, active=active)
        super().__init__(schedule=schedule, **kwargs)
        self.wait, self.warmup, self.active = wait, warmup, active
