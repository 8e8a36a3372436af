"""The progress bars the CLI adds (the bars' choice is tested with the CLI, tests/test_cli.py)."""

from __future__ import annotations

import pytest
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

from mlplab.callbacks import ThrottledRichProgressBar


def test_the_rich_bar_shows_the_run_version_as_an_integer(monkeypatch):
    pytest.importorskip("rich")
    from lightning.pytorch.callbacks.progress.rich_progress import MetricsTextColumn

    monkeypatch.setattr(ProgressBar, "get_metrics", lambda self, trainer, module: {"v_num": 3, "loss": 0.25})
    metrics = ThrottledRichProgressBar().get_metrics(None, None)
    assert metrics == {"v_num": "3", "loss": 0.25}
    column = MetricsTextColumn(trainer=None, style=None, text_delimiter=" ", metrics_format=".3f")
    column._metrics = metrics
    assert list(column._generate_metrics_texts()) == ["v_num: 3", "loss: 0.250"]


def test_the_rich_bar_refreshes_at_its_redraw_interval_unless_told_otherwise():
    pytest.importorskip("rich")
    assert ThrottledRichProgressBar().refresh_rate == 10  # Lightning's thread would wake 100 times a second
    assert ThrottledRichProgressBar(interval=0.5).refresh_rate == 2
    assert ThrottledRichProgressBar(interval=5).refresh_rate == 1
    assert ThrottledRichProgressBar(interval=0.5, refresh_rate=30).refresh_rate == 30
    assert ThrottledRichProgressBar(interval=0).refresh_rate == RichProgressBar().refresh_rate
