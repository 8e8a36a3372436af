import functools
from pathlib import Path

import lightning as L
import pytest
import torch

from mlplab.errors import CheckpointError, ConfigError
from mlplab.models import HourglassMLP
from mlplab.optim import LinearWarmupDecay
from mlplab.tasks import ImageClassification, ImageRestoration


def make_task(**backbone_args) -> ImageRestoration:
    args = {"embed_dim": 96, "mlp_dim": 16, "depth": 2, **backbone_args}
    return ImageRestoration(functools.partial(HourglassMLP, **args), image_shape=(1, 8, 8), num_classes=10)


def test_linear_decay_to_zero_with_warmup():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = LinearWarmupDecay(optimizer, total_steps=10, warmup_steps=2)
    lrs = []
    for _ in range(11):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:3] == [0.5, 1.0, 1.0]
    assert lrs[10] == 0.0
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:]))


def test_optimizer_gets_only_trainable_parameters_and_scheduler_the_run_length():
    task = make_task(fixed_input_projection=True)
    trainer = L.Trainer(max_steps=37, logger=False, enable_checkpointing=False)
    task.trainer = trainer
    config = task.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    handed = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert id(task.backbone.input_projection.weight) not in handed
    assert handed == {id(p) for p in task.parameters() if p.requires_grad}
    assert scheduler.total_steps == 37
    assert isinstance(optimizer, torch.optim.AdamW)


def test_flops_measured_on_meta_device_match_the_matmul_count():
    task = make_task()
    batch = 32
    forward = 2 * batch * (64 * 96 + 2 * 2 * 96 * 16 + 96 * 64)
    input_projection_grad = 2 * batch * 64 * 96  # not needed: the input requires no gradient
    assert task.measure_flops(torch.rand(batch, 1, 8, 8)) == 3 * forward - input_projection_grad


def test_checkpoint_from_a_different_architecture_is_refused():
    task = make_task()
    other = make_task(embed_dim=128)
    checkpoint = {
        "state_dict": other.state_dict(),
        "hyper_parameters": {"backbone": {"class_path": "x.Other"}},
    }
    with pytest.raises(
        CheckpointError, match=r"does not fit this HourglassMLP \(it holds a x.Other\).*differently shaped"
    ):
        task.on_load_checkpoint(checkpoint)
    task.on_load_checkpoint({"state_dict": task.state_dict()})  # a fitting one passes


def test_a_checkpoint_from_before_a_family_changed_layout_is_refused_with_the_change():
    from mlplab.models import GaussianRBFNet
    from mlplab.tasks import ImageFitting

    task = ImageFitting(functools.partial(GaussianRBFNet, variant="tiny"), image_shape=(3, 8, 8))
    saved = {k: v.clone() for k, v in task.state_dict().items()}
    grid = next(k for k in saved if ".grids." in k)
    saved[grid] = saved[grid][..., 1:, 1:]  # a lattice one vertex smaller a side, as before 2026-11-29
    reason = r"written before the family's weights changed layout \(2026-11-29: the grids moved onto the"
    with pytest.raises(CheckpointError, match=reason):
        task.on_load_checkpoint({"state_dict": saved, "hyper_parameters": dict(task.hparams)})


def test_backbone_must_be_a_factory():
    with pytest.raises(ConfigError, match="must be a family class or functools.partial"):
        ImageRestoration(
            HourglassMLP((1, 8, 8), (1, 8, 8), embed_dim=96, mlp_dim=8), image_shape=(1, 8, 8), num_classes=10
        )


def test_a_subclass_with_the_old_evaluation_hook_name_is_refused_when_defined():
    with pytest.raises(TypeError, match=r"Old\._evaluate: the evaluation hook is now named evaluation_step"):

        class Old(ImageClassification):
            def _evaluate(self, batch, batch_idx, stage):
                return None


@pytest.mark.parametrize(
    ("task", "family", "shapes", "batch"),
    [
        ("ImageClassification", "MlpMixer", {"image_shape": (3, 16, 16), "num_classes": 5},
         (torch.rand(4, 3, 16, 16), torch.randint(0, 5, (4,)))),
        ("ImageRestoration", "MAXIM",  # prototypes as targets: no random degradation between the two calls
         {"image_shape": (1, 8, 8), "num_classes": 5, "mode": "generative_classification"},
         (torch.rand(4, 1, 8, 8), torch.randint(0, 5, (4,)))),
        ("ForecastingTask", "TSMixer", {"lookback": 48, "horizon": 16, "num_series": 3},
         (torch.randn(4, 48, 3), torch.randn(4, 16, 3), torch.rand(4, 48, 4), torch.rand(4, 16, 4))),
    ],
)  # fmt: skip
def test_every_task_adds_the_mixture_of_experts_balancing_loss(task, family, shapes, batch):
    import mlplab.tasks
    from mlplab.models import registry
    from mlplab.nn import ChannelMLP, auxiliary_loss

    torch.manual_seed(0)
    backbone = functools.partial(
        registry.get(family).cls,
        **registry.variant_args(family),
        channel_mlp=ChannelMLP(kind="moe", num_experts=3),
    )
    model = getattr(mlplab.tasks, task)(backbone, **shapes)
    plain = model.training_loss(batch, 0)
    extra = auxiliary_loss(model.backbone)
    assert extra is not None and extra > 0
    torch.testing.assert_close(model.training_step(batch, 0), plain + extra)


class EveryStepRestoration(ImageRestoration):
    """The task as it logged before: ``self.log`` on every training step."""

    def logs_this_step(self) -> bool:
        return True


def logged_train_losses(task_class: type, folder, seed: int = 0) -> list[tuple[int, float]]:
    from lightning.pytorch.loggers import CSVLogger

    from mlplab.data import DigitsDataModule

    L.seed_everything(seed)
    task = task_class(
        functools.partial(HourglassMLP, embed_dim=96, mlp_dim=16, depth=2),
        image_shape=(1, 8, 8),
        num_classes=10,
        num_logged_images=0,
    )
    logger = CSVLogger(folder)
    quiet = {"enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False}
    trainer = L.Trainer(max_steps=23, log_every_n_steps=4, logger=logger, limit_val_batches=0, **quiet)
    trainer.fit(task, datamodule=DigitsDataModule(batch_size=32, normalize=False))
    import csv

    with open(Path(logger.log_dir) / "metrics.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("train/loss")]
    return [(int(row["step"]), float(row["train/loss"])) for row in rows]


def test_train_loss_logged_only_on_logging_steps_draws_the_same_curve(tmp_path):
    """Skipping ``self.log`` on the steps Lightning does not write loses nothing from the curves."""
    every_step = logged_train_losses(EveryStepRestoration, tmp_path / "every")
    logging_steps = logged_train_losses(ImageRestoration, tmp_path / "logging")
    assert logging_steps == every_step
    assert [step for step, _ in logging_steps] == [3, 7, 11, 15, 19]  # every 4th step


class PerStepAccuracy(ImageClassification):
    """The task as it logged before: ``self.log(..., on_epoch=True)`` of the batch accuracy every step."""

    def log_epoch_mean(self, name: str, value: torch.Tensor, weight: int | torch.Tensor) -> None:
        self.log(name, value, on_step=False, on_epoch=True, sync_dist=True)


def epoch_accuracy(task_class: type, root) -> float:
    from mlplab.data import DigitsDataModule
    from mlplab.models import ConventionalMLP

    L.seed_everything(0)
    backbone = functools.partial(ConventionalMLP, embed_dim=64, mlp_dim=96, depth=1)
    task = task_class(backbone, image_shape=(1, 8, 8), num_classes=10)
    quiet = {"enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False}
    trainer = L.Trainer(max_epochs=2, logger=False, limit_val_batches=0, default_root_dir=root, **quiet)
    data = DigitsDataModule(num_val=1597, num_test=100)  # 100 training images
    data.setup("fit")
    images, labels = data.train_dataloader().tensors
    loader = torch.utils.data.DataLoader(  # a plain loader keeps the last, smaller batch: 48 + 48 + 4
        torch.utils.data.TensorDataset(images.float() / 255, labels), batch_size=48
    )
    trainer.fit(task, train_dataloaders=loader)
    return float(trainer.callback_metrics["train/acc"])


def test_epoch_mean_equals_lightnings_on_epoch_mean_over_unequal_batches(tmp_path):
    """``log_epoch_mean`` gives what logging every step with ``on_epoch=True`` gives (batches 48, 48, 4)."""
    accuracy = epoch_accuracy(ImageClassification, tmp_path / "mean")
    assert 0.0 < accuracy < 1.0
    assert accuracy == pytest.approx(epoch_accuracy(PerStepAccuracy, tmp_path / "log"), abs=1e-6)


def test_stage_metrics_count_only_the_real_rows_and_weigh_the_loss_by_them():
    task = make_task()
    mse = torch.nn.functional.mse_loss
    targets = torch.rand(4, 1, 8, 8)
    predictions = targets.clone()
    predictions[3] = 1 - targets[3]  # a padding row, far off: it must not count
    metrics, loss = task.update_stage_metrics("val", 3, predictions, targets, mse)
    assert metrics is task.val_metrics and loss is task.val_loss
    assert float(loss.compute()) == 0.0
    assert float(metrics.compute()["val/ssim"]) == pytest.approx(1.0)
    task.update_stage_metrics("val", 1, torch.zeros(1, 1, 8, 8), torch.full((1, 1, 8, 8), 0.5), mse)
    assert float(loss.compute()) == pytest.approx(0.25 / 4)  # 4 real rows: 3 with loss 0, 1 with 0.25
    untouched, _ = task.update_stage_metrics("test", 0, predictions, targets, mse)
    assert untouched is task.test_metrics and task.test_loss.update_count == 0


def test_a_task_built_in_python_writes_checkpoints_that_load_safely_and_rebuild_it(tmp_path):
    """Classes and partials as arguments used to be pickled: torch.load(weights_only=True), and so
    trainer.test(ckpt_path=...), refused the file (functools.partial is not an allowed global)."""
    import mlplab
    from mlplab.analysis.density import ActivationDensity
    from mlplab.data import DigitsDataModule

    L.seed_everything(0)
    task = ImageRestoration(
        functools.partial(HourglassMLP, embed_dim=32, mlp_dim=8, depth=1),
        image_shape=(1, 8, 8),
        num_classes=10,
        num_logged_images=0,
        optimizer=functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9),
        lr_scheduler=None,
        density=ActivationDensity(eps=1e-6),
    )
    data = DigitsDataModule(batch_size=32, normalize=False)
    quiet = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False}
    trainer = L.Trainer(max_steps=3, limit_val_batches=1, default_root_dir=tmp_path, **quiet)
    trainer.fit(task, datamodule=data)
    path = trainer.checkpoint_callback.best_model_path

    hparams = torch.load(path, weights_only=True)["hyper_parameters"]
    assert hparams["backbone"] == {
        "class_path": "mlplab.models.vision.hourglass.HourglassMLP",
        "init_args": {"embed_dim": 32, "mlp_dim": 8, "depth": 1},
    }
    assert hparams["optimizer"] == {
        "class_path": "torch.optim.sgd.SGD",
        "init_args": {"lr": 0.05, "momentum": 0.9},
    }
    assert hparams["density"] == {"weight": 0.0, "eps": 1e-6, "threshold": 0.0}
    assert hparams["_class_path"] == "mlplab.tasks.image_restoration.ImageRestoration"
    assert trainer.test(task, datamodule=data, ckpt_path=path, verbose=False)[0]["test/psnr"] > 0

    task.eval()
    images = torch.rand(4, 1, 8, 8)
    for rebuilt in (ImageRestoration.load_from_checkpoint(path), mlplab.load_run(path).model):
        rebuilt.eval()
        assert isinstance(rebuilt.backbone, HourglassMLP) and rebuilt.density == task.density
        assert torch.equal(rebuilt.backbone(images), task.backbone(images))
        assert (
            rebuilt.configure_optimizers().defaults["momentum"] == 0.9
        )  # lr_scheduler None: the optimiser alone


def test_arguments_without_a_config_form_keep_the_hyperparameters_pickled_said_once():
    from mlplab.models.sequence.gla import GatedLinearAttention
    from mlplab.tasks.base import hyperparameters_as_config

    family = functools.partial(GatedLinearAttention, num_heads=2, embed_dim=8)  # embed_dim through **kwargs
    saved = hyperparameters_as_config(ImageRestoration, {"backbone": family, "folder": Path("runs")})
    assert saved["backbone"] == {
        "class_path": "mlplab.models.sequence.gla.GatedLinearAttention",
        "init_args": {"num_heads": 2, "embed_dim": 8},
    }
    assert saved["folder"] == "runs" and saved["_instantiator"] == "lightning.pytorch.cli.instantiate_module"

    optimizer = lambda params: torch.optim.SGD(params, lr=0.1)  # noqa: E731
    with pytest.warns(UserWarning, match=r"optimizer \(<function.*weights_only=False"):
        kept = hyperparameters_as_config(ImageRestoration, {"backbone": family, "optimizer": optimizer})
    assert kept == {"backbone": family, "optimizer": optimizer}  # all as they were: loads as before

    class Local(ImageRestoration):  # a class defined in a function: its path does not import
        pass

    with pytest.warns(UserWarning, match=r"Local: the class .*Local \(not importable by its path\)"):
        assert hyperparameters_as_config(Local, {"backbone": family}) == {"backbone": family}


def quiet_validation_trainer() -> L.Trainer:
    return L.Trainer(limit_val_batches=1, logger=False, enable_progress_bar=False, enable_model_summary=False)


def test_a_data_given_argument_left_at_its_default_is_refused_in_one_line():
    """A task built in Python without target_scale reported a regression table's metrics standardised."""
    from mlplab.data import TabularDataModule
    from mlplab.models import TabularMLP, registry
    from mlplab.tasks import TabularTask

    data = TabularDataModule(dataset="diabetes", batch_size=64)
    data.setup("fit")
    family = functools.partial(TabularMLP, **registry.variant_args("TabularMLP", "tiny"))
    shapes = {"num_numeric": data.num_numeric, "cardinalities": data.cardinalities}
    shapes["num_classes"] = data.num_classes
    trainer = quiet_validation_trainer()
    with pytest.raises(ConfigError, match=r"target_scale=\(15.*pass target_scale=data.target_scale"):
        trainer.validate(TabularTask(family, **shapes), data)
    given = TabularTask(family, **shapes, target_scale=data.target_scale, table_digest=data.table_digest)
    assert trainer.validate(given, data, verbose=False)[0]["val/rmse"] > 10  # in the target's units


def test_num_time_features_is_checked_only_for_a_family_that_takes_them():
    from mlplab.data import ETTDataModule
    from mlplab.models import DLinear, TimeMixer, registry
    from mlplab.tasks import ForecastingTask

    data = ETTDataModule(lookback=32, horizon=8, batch_size=64)
    data.setup("fit")
    assert data.num_time_features > 0
    shapes = {"lookback": 32, "horizon": 8, "num_series": data.num_series}
    trainer = quiet_validation_trainer()
    assert trainer.validate(ForecastingTask(DLinear, **shapes), data, verbose=False)
    tiny = functools.partial(TimeMixer, **registry.variant_args("TimeMixer", "tiny"))
    with pytest.raises(ConfigError, match="num_time_features=4 .*num_time_features=data.num_time_features"):
        trainer.validate(ForecastingTask(tiny, **shapes), data)


def test_a_trainer_built_in_python_prints_the_flops_counted(tmp_path, capsys):
    """Lightning's own summary printed 'Total FLOPs: 0' for every task built outside the command line."""
    from lightning.pytorch.callbacks import ModelSummary

    from mlplab.callbacks import FlopsModelSummary, RichFlopsModelSummary
    from mlplab.data import DigitsDataModule

    trainer = L.Trainer(max_steps=1, limit_val_batches=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(make_task(), DigitsDataModule(normalize=False, batch_size=64))
    summaries = [callback for callback in trainer.callbacks if isinstance(callback, ModelSummary)]
    assert len(summaries) == 1 and isinstance(summaries[0], (FlopsModelSummary, RichFlopsModelSummary))
    printed = capsys.readouterr().out
    assert "Total FLOPs" in printed and "Total FLOPs: 0 " not in printed


def test_a_family_given_by_name_in_python_is_refused_in_one_line():
    """``backbone="HourglassMLP"`` (a config's short name) ended in TypeError: 'str' is not callable."""
    with pytest.raises(
        ConfigError, match=r"got the name 'HourglassMLP'.*functools.partial\(Family, variant=NAME\)"
    ):
        ImageClassification("HourglassMLP", image_shape=(1, 8, 8), num_classes=10)


def test_a_named_variant_in_python_builds_and_round_trips_through_its_checkpoint(tmp_path):
    # functools.partial(Family, variant="tiny") ended in TypeError: unexpected keyword argument 'variant',
    # though a config's init_args: {variant: tiny} builds the variant
    import mlplab
    from mlplab.data import DigitsDataModule
    from mlplab.models import registry

    torch.manual_seed(0)
    family = functools.partial(HourglassMLP, variant="tiny", depth=1)  # the variant, depth on top
    task = ImageRestoration(family, image_shape=(1, 8, 8), num_logged_images=0)
    expected = {**registry.variant_args("HourglassMLP", "tiny"), "depth": 1}
    reference = HourglassMLP((1, 8, 8), (1, 8, 8), **expected)
    assert sum(p.numel() for p in task.backbone.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    quiet = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False}
    trainer = L.Trainer(max_steps=1, limit_val_batches=1, default_root_dir=tmp_path, **quiet)
    trainer.fit(task, datamodule=DigitsDataModule(batch_size=32, normalize=False))
    path = trainer.checkpoint_callback.best_model_path
    hparams = torch.load(path, weights_only=True)["hyper_parameters"]
    assert hparams["backbone"] == {
        "class_path": "mlplab.models.vision.hourglass.HourglassMLP",
        "init_args": expected,
    }
    images = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        for rebuilt in (ImageRestoration.load_from_checkpoint(path), mlplab.load_run(path).model):
            assert torch.equal(rebuilt.eval().backbone(images), task.eval().backbone(images))
    with pytest.raises(ConfigError, match=r"^HourglassMLP has no variant 'huge' \(it has tiny, "):
        ImageRestoration(functools.partial(HourglassMLP, variant="huge"), image_shape=(1, 8, 8))


def test_a_resumed_fit_after_its_schedule_ended_at_zero_says_it_trains_nothing(cli, tmp_path):
    """The default ``LinearWarmupDecay`` ends a fit at learning rate 0: extending the fit trains nothing."""
    from tests.conftest import REPO

    run = [
        "--config", str(REPO / "configs" / "quickstart.yaml"), "--model.backbone.embed_dim=32",
        "--model.backbone.mlp_dim=8", "--trainer.limit_train_batches=3", "--trainer.limit_val_batches=1",
        f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]  # fmt: skip
    assert cli("fit", *run, "--trainer.max_epochs=1") == 0
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    before = torch.load(last, weights_only=True)["state_dict"]
    with pytest.warns(
        UserWarning, match="ended there at learning rate 0: the 3 steps this fit runs after it train"
    ):
        assert cli("fit", *run, "--trainer.max_epochs=2", "--ckpt_path=last") == 0
    after = torch.load(last, weights_only=True)["state_dict"]
    moved = {key for key in before if not torch.equal(before[key], after[key])}
    assert moved and all(
        key.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked") for key in moved
    )
