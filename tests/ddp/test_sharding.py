"""What each process of a multi-process run gets, checked in one process: shares, padding, windows, noise."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
import torch

from mlplab.callbacks.watchdog import DistributedWatchdog, collective_failure_line, is_collective_failure
from mlplab.data import CharTextDataModule, RandomWindowLoader, TensorBatchLoader
from mlplab.data import common as data_common
from mlplab.data.common import fetch_file, per_sample_normal
from mlplab.errors import ConfigError
from tests.ddp.conftest import CONFIGS

SIZES = [(n, w, b) for n in (1, 2, 5, 11, 24, 25, 97) for w in (1, 2, 3, 4) for b in (1, 3, 8)]


def loaders(total: int, world_size: int, batch_size: int, **options) -> list[TensorBatchLoader]:
    data = torch.arange(total)
    return [
        TensorBatchLoader((data,), batch_size, rank=rank, world_size=world_size, **options)
        for rank in range(world_size)
    ]


@pytest.mark.parametrize(("total", "world_size", "batch_size"), SIZES)
def test_training_shares_are_equal_and_each_step_is_one_process_batch(total, world_size, batch_size):
    ranks = loaders(total, world_size, batch_size, shuffle=True, seed=3, shards="cut")
    assert len({len(loader) for loader in ranks}) == 1
    batches = [list(loader) for loader in ranks]
    seen = [sample for loader in batches for batch in loader for sample in batch[0].tolist()]
    assert len(seen) == len(set(seen)) == world_size * (total // world_size)  # N cut to W x floor(N/W)
    (single,) = loaders(total, 1, batch_size * world_size, shuffle=True, seed=3)
    for step, together in enumerate(zip(*batches)):
        if len(together[0][0]) < batch_size:
            continue  # a last, partial batch (training drops it when there is more than one)
        step_samples = sorted(torch.cat([batch[0] for batch in together]).tolist())
        first = step * batch_size * world_size
        assert step_samples == sorted(single.order(0)[first : first + batch_size * world_size].tolist())


@pytest.mark.parametrize(("total", "world_size", "batch_size"), SIZES)
def test_evaluation_shares_are_padded_to_equal_length_and_count_every_sample_once(
    total, world_size, batch_size
):
    ranks = loaders(total, world_size, batch_size, shards="pad")
    assert len({len(loader) for loader in ranks}) == 1
    counted = []
    for loader in ranks:
        for index, (batch,) in enumerate(loader):
            samples = loader.batch_samples(index)
            assert torch.equal(samples.indices, batch)  # the rows are the samples it names
            assert samples.count == len(batch) or index == len(loader) - 1  # padding ends a share
            counted += batch[: samples.count].tolist()
    assert sorted(counted) == list(range(total))


@pytest.mark.parametrize(("total", "world_size"), [(11, 2), (5, 4), (97, 3)])
def test_prediction_shares_are_left_uneven(total, world_size):
    ranks = loaders(total, world_size, 4, shards="uneven")
    seen = [sample for loader in ranks for (batch,) in loader for sample in batch.tolist()]
    assert sorted(seen) == list(range(total))


def test_text_processes_draw_the_windows_of_one_process_with_the_global_batch():
    tokens = torch.arange(500)
    single = RandomWindowLoader(tokens, context_length=8, batch_size=6, batches=3, seed=4)
    ranks = [RandomWindowLoader(tokens, 8, 3, 3, seed=4, rank=r, world_size=2) for r in (0, 1)]
    for together, (inputs, _) in zip(zip(*ranks), single):
        assert torch.equal(torch.stack([together[0][0], together[1][0]], 1).flatten(0, 1), inputs)
    assert not torch.equal(next(iter(ranks[0]))[0], next(iter(ranks[1]))[0])


def test_text_epochs_hold_the_same_tokens_whatever_the_number_of_processes():
    data = CharTextDataModule(corpus="pydoc_topics", context_length=16, batch_size=4, batches_per_epoch=10)
    data.setup()
    for world_size, batches in ((1, 10), (2, 5), (3, 3)):
        data.trainer = SimpleNamespace(global_rank=0, world_size=world_size)
        assert len(data.train_dataloader()) == batches


def test_an_images_evaluation_noise_is_its_own_in_any_batch():
    indices = torch.tensor([7, 3, 1000, 5])
    noise = per_sample_normal(indices, (1, 4, 4), seed=12)
    alone = torch.cat([per_sample_normal(torch.tensor([i]), (1, 4, 4), seed=12) for i in indices.tolist()])
    assert torch.equal(noise, alone)
    assert not torch.equal(noise, per_sample_normal(indices, (1, 4, 4), seed=13))
    many = per_sample_normal(torch.arange(2000), (64,), seed=0)
    assert abs(float(many.mean())) < 0.01 and abs(float(many.std()) - 1) < 0.01


def test_processes_that_miss_a_file_download_it_once(tmp_path, monkeypatch):
    calls = []

    def slow_download(url, destination, checksum=None, algorithm="sha256"):
        calls.append(url)
        time.sleep(0.3)
        destination.write_text("data")
        return destination

    monkeypatch.setattr(data_common, "download_file", slow_download)
    found = []
    fetchers = [
        threading.Thread(target=lambda: found.append(fetch_file(tmp_path, "x.csv", "u", None, "X")))
        for _ in range(3)
    ]
    for thread in fetchers:
        thread.start()
    for thread in fetchers:
        thread.join()
    assert calls == ["u"] and found == [tmp_path / "x.csv"] * 3


def test_watchdog_arguments_are_checked():
    with pytest.raises(ConfigError, match="watchdog.timeout_s and watchdog.signal_grace_s must be positive"):
        DistributedWatchdog(timeout_s=0)


def test_a_failed_collective_reads_as_one_line():
    gloo = RuntimeError(
        "[../third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed by peer [127.0.0.1]:61073. "
        "This is typically caused by a remote worker crashing. Check the logs of the remote worker."
    )
    wrapped = RuntimeError("during the step")
    wrapped.__cause__ = gloo
    assert is_collective_failure(wrapped) and not is_collective_failure(RuntimeError("shapes differ"))
    line = collective_failure_line(wrapped, 1, 2)
    assert line == (
        "rank 1 of 2: a collective failed (Connection closed by peer [127.0.0.1]:61073.); another process "
        "of the run stopped or is stuck: see its output above"
    )


def test_sync_batchnorm_on_cpu_processes_is_refused_in_one_line(cli, capsys):
    status = cli("fit", "--config", str(CONFIGS / "quickstart.yaml"), "--trainer.accelerator", "cpu",
                 "--trainer.devices", "2", "--trainer.strategy", "ddp",
                 "--trainer.sync_batchnorm", "true")  # fmt: skip
    assert status == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert line.startswith("error: trainer.sync_batchnorm: torch's SyncBatchNorm runs on GPUs only")
