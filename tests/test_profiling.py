"""``mlplab.profiling.StepProfiler``: the profile preset's profiler (its runs: tests/test_configs.py)."""

from __future__ import annotations

import pytest

from mlplab.errors import ConfigError
from mlplab.profiling import StepProfiler


@pytest.mark.parametrize("wait, warmup, active", [(-1, 1, 3), (1, -1, 3), (1, 1, 0)])
def test_a_schedule_that_records_nothing_is_one_clear_line(wait, warmup, active):
    with pytest.raises(ConfigError, match=r"^trainer.profiler: StepProfiler needs wait >= 0.*active >= 1"):
        StepProfiler(wait=wait, warmup=warmup, active=active)
