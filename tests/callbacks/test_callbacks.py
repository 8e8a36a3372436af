import functools

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import Logger

from mlplab.callbacks import BestCheckpoint, CompileBackbone, Throughput, leading_batch_size
from mlplab.data import DigitsDataModule
from mlplab.errors import ConfigError, DataNotFoundError
from mlplab.models import HourglassMLP
from mlplab.tasks import ImageClassification, ImageRestoration

BACKBONE = functools.partial(HourglassMLP, embed_dim=96, mlp_dim=16, depth=1)


def fit(task, tmp_path, callbacks, **trainer_args):
    trainer_args.setdefault("max_epochs", 2)
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        callbacks=callbacks,
        enable_progress_bar=False,
        **trainer_args,
    )
    trainer.fit(task, datamodule=DigitsDataModule(normalize=False, batch_size=64))
    return trainer


def test_best_checkpoint_follows_the_task_metric(tmp_path):
    restoration = BestCheckpoint(filename="best")
    fit(ImageRestoration(BACKBONE, (1, 8, 8), 10), tmp_path, [restoration])
    assert (restoration.monitor, restoration.mode) == ("val/psnr", "max")
    assert restoration.best_model_path.endswith("best.ckpt") and restoration.best_model_score > 10
    classification = BestCheckpoint()
    task = ImageClassification(
        functools.partial(HourglassMLP, embed_dim=96, mlp_dim=16, output_activation="none"), (1, 8, 8), 10
    )
    fit(task, tmp_path / "c", [classification])
    assert (classification.monitor, classification.mode) == ("val/acc", "max")
    explicit = BestCheckpoint(monitor="val/loss", mode="min")
    fit(ImageRestoration(BACKBONE, (1, 8, 8), 10), tmp_path / "e", [explicit])
    assert explicit.monitor == "val/loss" and explicit.best_model_score < 0.1


def test_best_checkpoint_built_in_python_writes_what_the_command_line_does(tmp_path):
    """``BestCheckpoint()`` with no arguments writes best.ckpt and last.ckpt, which load_run needs."""
    import mlplab

    fit(ImageRestoration(BACKBONE, (1, 8, 8), 10), tmp_path, [BestCheckpoint()], max_epochs=1)
    run_dir = tmp_path / "lightning_logs" / "version_0"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert mlplab.load_run(run_dir).checkpoint.name == "best.ckpt"


class RecordingLogger(Logger):
    name, version = "recording", 0

    def __init__(self):
        super().__init__()
        self.records = []

    def log_metrics(self, metrics, step=None):
        self.records.append((step, dict(metrics)))

    def log_hyperparams(self, params, *args, **kwargs):
        pass


def test_a_monitor_given_without_mode_is_judged_by_its_name(tmp_path):
    # Lightning's ModelCheckpoint would keep mode "min" for val/ssim: best.ckpt the worst epoch.
    logger = RecordingLogger()
    ssim = BestCheckpoint(filename="best", monitor="val/ssim")
    fit(ImageRestoration(BACKBONE, (1, 8, 8), 10), tmp_path, [ssim], max_epochs=3, logger=logger)
    scores = [m["val/ssim"] for _, m in logger.records if "val/ssim" in m]
    assert len(scores) == 3 and len(set(scores)) == 3
    assert ssim.mode == "max" and float(ssim.best_model_score) == pytest.approx(max(scores))
    loss = BestCheckpoint(filename="best", monitor="val/loss")
    fit(ImageRestoration(BACKBONE, (1, 8, 8), 10), tmp_path / "l", [loss], max_epochs=1)
    assert loss.mode == "min"


class ScoredRestoration(ImageRestoration):
    def validation_step(self, batch, batch_idx):
        super().validation_step(batch, batch_idx)
        self.log("val/score", float(batch_idx))


def test_a_monitor_whose_name_tells_no_direction_needs_mode(tmp_path):
    unknown = BestCheckpoint(filename="best", monitor="val/score")
    with pytest.raises(ConfigError, match="give max or min for --checkpoint.monitor val/score"):
        fit(ScoredRestoration(BACKBONE, (1, 8, 8), 10), tmp_path, [unknown], max_epochs=1)
    typo = BestCheckpoint(filename="best", monitor="val/scroe")  # a typo is named as such first
    with pytest.raises(ConfigError, match="'val/scroe' is not a metric this run logs"):
        fit(ScoredRestoration(BACKBONE, (1, 8, 8), 10), tmp_path / "t", [typo], max_epochs=1)
    no_sanity = BestCheckpoint(filename="best", monitor="val/score")
    with pytest.raises(ConfigError, match="give max or min"):
        fit(ScoredRestoration(BACKBONE, (1, 8, 8), 10), tmp_path / "n", [no_sanity], num_sanity_val_steps=0)
    given = BestCheckpoint(filename="best", monitor="val/score", mode="max")
    fit(ScoredRestoration(BACKBONE, (1, 8, 8), 10), tmp_path / "g", [given], max_epochs=1)
    assert given.mode == "max" and given.best_model_path.endswith("best.ckpt")


def test_throughput_gets_flops_from_the_task(tmp_path):
    task = ImageRestoration(BACKBONE, (1, 8, 8), 10)
    logger = RecordingLogger()
    fit(task, tmp_path, [Throughput(window_size=3)], log_every_n_steps=5, logger=logger)
    assert task.flops_per_batch == task.measure_flops(torch.zeros(64, 1, 8, 8)) > 0
    rates = [m for _, m in logger.records if "train/device/samples_per_sec" in m]
    assert len(rates) == 42 // 5 - 2  # one per logging step once the window of 3 is full
    last = rates[-1]
    assert last["train/device/flops_per_sec"] == pytest.approx(
        last["train/device/samples_per_sec"] / 64 * task.flops_per_batch, rel=0.05
    )
    assert "train/device/mfu" not in last  # a CPU has no known peak FLOP/s
    assert leading_batch_size((torch.zeros(7, 3), torch.zeros(7))) == 7


@pytest.mark.parametrize("task_name", ["LanguageModeling", "AssociativeRecall"])
def test_throughput_logs_tokens_per_second_for_sequence_tasks(task_name, tmp_path):
    from mlplab.data import CharTextDataModule, MQARDataModule
    from mlplab.models import Transformer
    from mlplab.tasks import AssociativeRecall, LanguageModeling

    backbone = functools.partial(Transformer, embed_dim=16, depth=1, num_heads=2)
    if task_name == "LanguageModeling":
        data = CharTextDataModule(corpus="pydoc_topics", context_length=24, batch_size=4, batches_per_epoch=8)
        task = LanguageModeling(backbone, data.vocab_size, data.context_length, sample_length=0)
    else:
        data = MQARDataModule(preset=None, sequence_length=24, num_kv_pairs=2, vocab_size=32, batch_size=4,
                              num_train_examples=32, num_test_examples=8)  # fmt: skip
        task = AssociativeRecall(backbone, data.vocab_size, data.context_length)
    logger = RecordingLogger()
    trainer = L.Trainer(max_epochs=1, limit_val_batches=1, log_every_n_steps=2, logger=logger,
                        callbacks=[Throughput(window_size=2)], enable_progress_bar=False)  # fmt: skip
    trainer.fit(task, datamodule=data)
    rates = [m for _, m in logger.records if "train/device/tokens_per_sec" in m]
    assert rates, "no tokens/s logged"
    last = rates[-1]
    assert last["train/device/tokens_per_sec"] == pytest.approx(last["train/device/samples_per_sec"] * 24)
    assert last["train/tokens"] == trainer.global_step * 4 * 24  # cumulative tokens at that step


def test_compile_callback_compiles_the_backbone_in_place(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(
        torch.nn.Module, "compile", lambda self, **kw: calls.append((type(self).__name__, kw))
    )
    task = ImageRestoration(BACKBONE, (1, 8, 8), 10)
    fit(task, tmp_path, [CompileBackbone(enabled=True, mode="max-autotune")], max_steps=1)
    assert calls == [("HourglassMLP", {"mode": "max-autotune", "fullgraph": False, "dynamic": None})]
    calls.clear()
    fit(ImageRestoration(BACKBONE, (1, 8, 8), 10), tmp_path, [CompileBackbone()], max_steps=1)
    assert calls == []


@pytest.mark.slow
def test_compiled_training_keeps_checkpoint_keys(tmp_path):
    task = ImageRestoration(BACKBONE, (1, 8, 8), 10)
    keys = set(task.state_dict())
    fit(task, tmp_path, [CompileBackbone(enabled=True)], max_steps=3)
    assert set(task.state_dict()) == keys


def test_last_checkpoint_is_the_latest_epoch_not_a_copy_of_the_best(tmp_path):
    # Monitoring the loss with mode "max" makes the first epoch the best one and never replaced.
    checkpoint = BestCheckpoint(filename="best", monitor="val/loss", mode="max", save_last=True)
    fit(ImageRestoration(BACKBONE, (1, 8, 8), 10), tmp_path, [checkpoint], max_epochs=3, logger=False)
    best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=False)
    last = torch.load(checkpoint.last_model_path, map_location="cpu", weights_only=False)
    assert checkpoint.last_model_path.endswith("last.ckpt")
    # last.ckpt is written at the end of fit: the state after the third (last) epoch, 3 x 21 steps
    assert (best["epoch"], best["global_step"]) == (0, 21)
    assert (last["epoch"], last["global_step"]) == (3, 63)


def test_last_checkpoint_every_n_steps_and_at_the_end_only(tmp_path):
    from mlplab.callbacks import AtomicCheckpointIO

    written = []

    class Spy(L.Callback):
        def on_save_checkpoint(self, trainer, pl_module, checkpoint):
            written.append(trainer.global_step)

    checkpoint = BestCheckpoint(
        filename="best", save_last=True, save_top_k=0, last_every_n_steps=8, last_every_minutes=None
    )
    trainer = fit(ImageRestoration(BACKBONE, (1, 8, 8), 10), tmp_path, [checkpoint, Spy()], logger=False)
    assert written == [8, 16, 24, 32, 40, 42]  # 21 steps per epoch: never after a validation
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    written.clear()
    at_the_end = BestCheckpoint(filename="best", save_last=True, save_top_k=0)  # every 10 minutes
    fit(ImageRestoration(BACKBONE, (1, 8, 8), 10), tmp_path / "b", [at_the_end, Spy()], logger=False)
    assert written == [42]


@pytest.mark.parametrize(
    ("name", "precision", "matmul", "peak"),
    [
        ("NVIDIA H200", "bf16-mixed", "highest", 989.4e12),  # Lightning found no peak: no MFU at all
        ("NVIDIA H200", "32-true", "high", 494.7e12),  # float32 products on tensor cores (TF32)
        ("NVIDIA H200", "32-true", "highest", 67e12),
        ("NVIDIA H200 NVL", "16-mixed", "highest", 835.5e12),
        ("NVIDIA A100-SXM4-80GB", "bf16-mixed", "highest", 312e12),  # Lightning's table, as before
    ],
)
def test_the_mfu_divides_by_the_dense_peak_of_the_gpu(name, precision, matmul, peak, monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: matmul)
    strategy = SimpleNamespace(root_device=torch.device("cuda", 0))
    trainer = SimpleNamespace(strategy=strategy, precision=precision, world_size=1)
    throughput = Throughput()
    throughput.setup(trainer, None, "fit")
    assert throughput.meter.available_flops == pytest.approx(peak)


def test_throughput_logs_every_log_every_n_steps_optimizer_steps_with_gradient_accumulation(tmp_path):
    # It counted batches: with two batches per optimizer step it logged (and waited for the device)
    # twice as often as log_every_n_steps says, at steps 3, 5, 8, ...
    task = ImageRestoration(BACKBONE, (1, 8, 8), 10)
    logger = RecordingLogger()
    fit(task, tmp_path, [Throughput(window_size=2)], log_every_n_steps=5, logger=logger,
        accumulate_grad_batches=2)  # fmt: skip
    logged = [(step, m) for step, m in logger.records if "train/batches" in m]
    assert [step for step, _ in logged] == [4, 9, 14, 19]  # optimizer steps 5, 10, ... at Lightning's steps
    assert [m["train/samples"] for _, m in logged] == [64 * 10, 64 * 20, 64 * 29, 64 * 39]  # every batch


def test_throughput_logs_at_the_step_of_train_loss(tmp_path):
    # It logged at trainer.global_step, one more than Lightning's step for the same batch's train/loss
    # and learning rate: the curves were offset by one.
    task = ImageRestoration(BACKBONE, (1, 8, 8), 10)
    logger = RecordingLogger()
    fit(task, tmp_path, [Throughput(window_size=2)], log_every_n_steps=5, logger=logger, max_epochs=1)
    rates = [step for step, m in logger.records if "train/batches" in m]
    losses = [step for step, m in logger.records if "train/loss" in m]
    assert rates == losses == [4, 9, 14, 19]


def test_throughput_leaves_out_the_checkpoints_written_after_validation(tmp_path, monkeypatch):
    # The clock restarted at the end of validation, before the checkpoint callback wrote best.ckpt and
    # last.ckpt there: their time counted as training. A slow write is faked by moving the clock.
    import mlplab.callbacks.throughput as module

    skipped = [0.0]
    monkeypatch.setattr(
        module.time, "perf_counter", lambda real=module.time.perf_counter: real() + skipped[0]
    )

    class SlowWrite(BestCheckpoint):
        def on_validation_end(self, trainer, pl_module):
            super().on_validation_end(trainer, pl_module)
            if not trainer.sanity_checking:
                skipped[0] += 1000.0

    logger = RecordingLogger()
    task = ImageRestoration(BACKBONE, (1, 8, 8), 10)
    fit(task, tmp_path, [Throughput(window_size=2), SlowWrite(filename="best")], log_every_n_steps=5,
        logger=logger)  # fmt: skip
    times = [m["train/time"] for _, m in logger.records if "train/time" in m]
    assert len(times) == 8 and skipped[0] == 2000.0 and times[-1] < 1000.0


class MissingDigits(DigitsDataModule):
    def prepare_data(self) -> None:
        raise DataNotFoundError("digits not found")


class FailAtStep(L.Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"failed at step {self.step}")


def test_a_fit_that_fails_before_its_first_step_writes_no_last_checkpoint(tmp_path, monkeypatch):
    """A missing dataset once left an untrained last.ckpt in the working directory (163 MB for MS-MLP)."""
    monkeypatch.chdir(tmp_path)
    trainer = L.Trainer(
        default_root_dir=tmp_path / "run", callbacks=[BestCheckpoint()], enable_progress_bar=False
    )
    with pytest.raises(DataNotFoundError):
        trainer.fit(ImageRestoration(BACKBONE, (1, 8, 8), 10), datamodule=MissingDigits(normalize=False))
    with pytest.raises(RuntimeError, match="at step 0"):
        fit(ImageRestoration(BACKBONE, (1, 8, 8), 10), tmp_path / "run", [BestCheckpoint(), FailAtStep(0)])
    assert sorted(p.name for p in tmp_path.rglob("*.ckpt")) == []
    with pytest.raises(RuntimeError, match="at step 3"):  # a crash after training steps still keeps them
        fit(ImageRestoration(BACKBONE, (1, 8, 8), 10), tmp_path / "run", [BestCheckpoint(), FailAtStep(3)])
    (last,) = tmp_path.rglob("*.ckpt")
    assert last.name == "last.ckpt" and torch.load(last, weights_only=True)["global_step"] == 3
