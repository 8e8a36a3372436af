"""FunctionFitting through the CLI: KAN and S-KAN learn a formula; S-KAN's selection phase; errors."""

from __future__ import annotations

import pytest
import torch

from mlplab.data import FunctionDataModule
from mlplab.models import KAN
from mlplab.tasks import FunctionFitting
from tests.helpers import assert_padding_rows_are_left_out

QUIET = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.accelerator=cpu",
]


def fit_args(root, family, *extra):
    return ["fit", "--model=FunctionFitting", f"--model.backbone={family}", "--model.backbone.embed_dim=5",
            "--model.optimizer=torch.optim.Adam", "--model.optimizer.lr=0.02", "--model.lr_scheduler=null",
            "--data=FunctionDataModule", "--data.formula=x1*x2", "--data.num_train=256", "--data.num_val=128",
            "--data.num_test=128", "--data.batch_size=32",
            f"--trainer.default_root_dir={root}", *QUIET, *extra]  # fmt: skip


def test_kan_fits_a_formula_and_reports_rmse(cli, tmp_path):
    assert cli(*fit_args(tmp_path, "KAN", "--trainer.max_epochs=6")) == 0
    run = tmp_path / "lightning_logs" / "version_0"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rmse = [e.value for e in EventAccumulator(str(run)).Reload().Scalars("val/rmse")]
    assert len(rmse) == 6 and rmse[-1] < 0.5 * rmse[0]


def test_skan_selection_phase_prunes_and_the_checkpoint_keeps_it(cli, tmp_path, caplog):
    callback = ['--trainer.callbacks=[{"class_path": "mlplab.callbacks.ActivationSelection", '
                '"init_args": {"at_epoch": 1, "keep": 1}}]']  # fmt: skip
    assert cli(*fit_args(tmp_path, "SKAN", "--trainer.max_epochs=2", *callback)) == 0
    assert "kept 1 activation space(s) per node from epoch 1" in caplog.text
    state = torch.load(
        tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt", weights_only=False
    )
    active = [v for k, v in state["state_dict"].items() if k.endswith(".active")]
    assert active and all(mask.sum(-1).eq(1).all() for mask in active)


def test_rmse_is_over_the_whole_split():
    data = FunctionDataModule("x1 + x2", num_train=64, num_val=100, num_test=10, eval_batch_size=30)
    task = FunctionFitting(lambda *shapes: KAN(*shapes, embed_dim=3), num_inputs=data.num_inputs)
    data.setup()
    for batch in data.val_dataloader():
        task.val_rmse.update(task(batch[0]), batch[1])
    x, y = data.splits["val"]
    assert task.val_rmse.compute().item() == pytest.approx(
        (task(x) - y).pow(2).mean().sqrt().item(), rel=1e-5
    )


def test_a_bad_formula_ends_with_one_error_line(cli, capsys, tmp_path):
    capsys.readouterr()
    assert cli(*fit_args(tmp_path, "KAN", "--data.formula=sin(x1")) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot parse the formula 'sin(x1'" in errors[0], err[-1500:]


@pytest.mark.gpu
def test_skan_fits_on_the_gpu(cli, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    args = [
        a for a in fit_args(tmp_path, "SKAN", "--trainer.max_epochs=3") if a != "--trainer.accelerator=cpu"
    ]
    assert cli(*args, "--trainer.accelerator=gpu") == 0


def test_the_rows_padding_a_process_share_are_left_out_of_every_metric(tmp_path):
    data = FunctionDataModule("x1 * x2", num_train=64, num_val=16, num_test=41)
    task = FunctionFitting(lambda *shapes: KAN(*shapes, embed_dim=3), num_inputs=data.num_inputs)
    data.setup()
    assert_padding_rows_are_left_out(task, data.split_tensors("test"), 8, tmp_path)
