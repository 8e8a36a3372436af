"""TabularTask: its metrics against scikit-learn's, ensembles, data-fitted bins, weight-decay groups."""

from __future__ import annotations

import functools
import warnings

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, r2_score, roc_auc_score

from mlplab.data import TabularDataModule
from mlplab.errors import ConfigError
from mlplab.models import FinalMLP, TabM, TabularMLP
from mlplab.models.tabular.common import compute_bins
from mlplab.tasks import TabularTask
from tests.helpers import assert_padding_rows_are_left_out


def data_module(name: str, **kwargs) -> TabularDataModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TabularDataModule(dataset=name, batch_size=32, eval_batch_size=40, **kwargs)


def task_for(data: TabularDataModule, family, **args) -> TabularTask:
    return TabularTask(
        functools.partial(family, **args),
        num_numeric=data.num_numeric,
        cardinalities=data.cardinalities,
        num_classes=data.num_classes,
        target_scale=data.target_scale,
        optimizer=functools.partial(torch.optim.AdamW, lr=3e-3, weight_decay=1e-4),
    )


def trainer(tmp_path, epochs: int = 3) -> L.Trainer:
    return L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )


def test_classification_metrics_are_scikit_learns(tmp_path):
    torch.manual_seed(0)
    data = data_module("penguins")
    task = task_for(data, TabM, ensemble_size=4, depth=2, embed_dim=32, dropout=0.0)
    run = trainer(tmp_path)
    run.fit(task, data)
    (logged,) = run.test(task, data, verbose=False)
    x_num, x_cat, y = data.split_tensors("test")
    task.eval()
    with torch.no_grad():
        probabilities = task.predict(x_num, x_cat).numpy()
    assert logged["test/acc"] == pytest.approx(accuracy_score(y, probabilities.argmax(1)), abs=1e-6)
    assert logged["test/auroc"] == pytest.approx(roc_auc_score(y, probabilities, multi_class="ovr"), abs=1e-5)
    assert logged["test/logloss"] == pytest.approx(log_loss(y, probabilities, labels=[0, 1, 2]), abs=1e-5)
    assert logged["test/acc"] > 0.6  # above the 44 % of the largest class after 18 steps


def test_binary_auroc_reads_the_positive_class(tmp_path):
    torch.manual_seed(0)
    data = data_module("breast_cancer")
    task = task_for(
        data, FinalMLP, embed_dim=4, mlp1_dims=(16,), mlp2_dims=(16,), gate_dims=(8,), num_heads=2
    )
    run = trainer(tmp_path, epochs=2)
    run.fit(task, data)
    (logged,) = run.test(task, data, verbose=False)
    x_num, x_cat, y = data.split_tensors("test")
    task.eval()
    with torch.no_grad():
        probabilities = task.predict(x_num, x_cat).numpy()
    assert logged["test/auroc"] == pytest.approx(roc_auc_score(y, probabilities[:, 1]), abs=1e-5)


def test_regression_metrics_are_in_the_targets_units(tmp_path):
    torch.manual_seed(0)
    data = data_module("diabetes")
    task = task_for(data, TabularMLP, depth=2, embed_dim=32, dropout=0.0)
    run = trainer(tmp_path)
    run.fit(task, data)
    (logged,) = run.test(task, data, verbose=False)
    x_num, x_cat, y = data.split_tensors("test")
    task.eval()
    with torch.no_grad():
        predicted = task.predict(x_num, x_cat).numpy()
    truth = y.numpy() * data.target_scale[1] + data.target_scale[0]
    assert logged["test/rmse"] == pytest.approx(float(np.sqrt(np.mean((predicted - truth) ** 2))), rel=1e-5)
    assert logged["test/mae"] == pytest.approx(mean_absolute_error(truth, predicted), rel=1e-5)
    assert logged["test/r2"] == pytest.approx(r2_score(truth, predicted), abs=1e-5)
    assert 40 < logged["test/rmse"] < 80  # diabetes progression, in its own units (std 77)


@pytest.mark.parametrize("dataset", ["penguins", "diabetes"])
def test_the_rows_padding_a_process_share_are_left_out_of_every_metric(tmp_path, dataset):
    # Process 1 of 2 evaluates every other test row from the second, its share padded with the first
    # row when the split is odd (as the CLI's loaders do): its metrics and loss are those of its real rows.
    torch.manual_seed(0)
    data = data_module(dataset)
    task = task_for(data, TabM, ensemble_size=2, depth=1, embed_dim=8, dropout=0.0)
    assert_padding_rows_are_left_out(task, data.split_tensors("test"), 40, tmp_path)


def test_an_ensemble_trains_on_the_mean_of_its_members_losses_and_predicts_their_mean():
    task = TabularTask(
        functools.partial(TabM, ensemble_size=3, depth=1, embed_dim=8),
        num_numeric=2,
        cardinalities=(3,),
        num_classes=4,
    )
    outputs = torch.randn(5, 3, 4)
    targets = torch.randint(0, 4, (5,))
    members = [F.cross_entropy(outputs[:, i], targets) for i in range(3)]
    torch.testing.assert_close(task.loss(outputs, targets), torch.stack(members).mean())
    torch.testing.assert_close(task._combine(outputs), outputs.softmax(-1).mean(1))
    regression = TabularTask(
        functools.partial(TabM, ensemble_size=3, depth=1, embed_dim=8),
        num_numeric=2,
        cardinalities=(),
        num_classes=0,
        target_scale=(10.0, 2.0),
    )
    values = torch.randn(5, 3, 1)
    torch.testing.assert_close(regression._combine(values), values.squeeze(-1).mean(1) * 2.0 + 10.0)


def test_fit_sets_the_bins_from_the_training_split_and_checkpoints_keep_them(tmp_path):
    torch.manual_seed(0)
    data = data_module("wine")
    task = task_for(data, TabM, ensemble_size=2, depth=1, embed_dim=8, num_bins=6, numeric_embed_dim=4)
    embeddings = task.backbone.features.embeddings
    default = embeddings.encoding_weight.clone()
    run = trainer(tmp_path, epochs=1)
    run.fit(task, data)
    expected = type(embeddings)(data.num_numeric, 6, 4)
    expected.set_bins(compute_bins(data.split_tensors("train")[0], 6))
    torch.testing.assert_close(embeddings.encoding_weight, expected.encoding_weight)
    assert not torch.equal(embeddings.encoding_weight, default)
    fresh = task_for(data, TabM, ensemble_size=2, depth=1, embed_dim=8, num_bins=6, numeric_embed_dim=4)
    fresh.load_state_dict(task.state_dict())
    torch.testing.assert_close(fresh.backbone.features.embeddings.encoding_bias, embeddings.encoding_bias)


def test_biases_and_linear_embeddings_get_no_weight_decay():
    task = TabularTask(
        functools.partial(TabM, ensemble_size=2, depth=1, embed_dim=8, num_bins=4),
        num_numeric=3,
        cardinalities=(2,),
        num_classes=2,
    )
    decayed, exempt = task.optimizer_parameters()
    names = {id(p): n for n, p in task.named_parameters()}
    assert exempt["weight_decay"] == 0.0
    assert sorted(names[id(p)] for p in exempt["params"]) == [
        "backbone.blocks.0.linear.bias",
        "backbone.features.embeddings.linear.bias",
        "backbone.features.embeddings.linear.weight",
        "backbone.head.bias",
    ]
    assert "backbone.blocks.0.linear.r" in {names[id(p)] for p in decayed["params"]}
    task.exclude_from_weight_decay = "nothing"
    (everything,) = task.optimizer_parameters()
    assert len(everything["params"]) == sum(1 for _ in task.parameters())


def test_bad_task_arguments_are_refused():
    family = functools.partial(TabularMLP, depth=1, embed_dim=4)
    with pytest.raises(ConfigError, match="num_classes must be 0 \\(regression\\) or at least 2, got 1"):
        TabularTask(family, num_numeric=2, cardinalities=(), num_classes=1)
    with pytest.raises(ConfigError, match="standard deviation must be positive"):
        TabularTask(family, num_numeric=2, cardinalities=(), num_classes=0, target_scale=(1.0, 0.0))


@pytest.mark.gpu
def test_tabm_with_bins_trains_on_the_gpu_with_the_table_on_the_device(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    torch.manual_seed(0)
    data = data_module("penguins")
    task = task_for(data, TabM, ensemble_size=8, depth=2, embed_dim=64, num_bins=8)
    run = L.Trainer(
        max_epochs=3,
        accelerator="gpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    run.fit(task, data)
    assert data.split_tensors("train")[0].is_cuda  # small tables live on the accelerator
    (logged,) = run.test(task, data, verbose=False)
    assert logged["test/acc"] > 0.6


def test_a_model_built_from_a_changed_table_is_refused_in_one_line_naming_the_column(tmp_path):
    # trainer.test(model, datamodule=data, ckpt_path=...) with model and data built from a table whose
    # training split has gained a category since the fit ended in a weights' shape error that blamed
    # the config ("use the config the checkpoint was trained with"): Lightning restores the model before
    # the DataModule's encoding. Now the line names the column and the counts and says how to build
    # the model with the checkpoint's encoding; built so, the changed table is served.
    import pandas as pd

    from mlplab.data.tabular import split_indices
    from mlplab.errors import CheckpointError

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"x": rng.normal(size=60), "channel": rng.choice(["ad", "mail", "web"], 60)})
    table["y"] = np.where(table["x"] > 0, "yes", "no")
    path = tmp_path / "shop.csv"
    table.to_csv(path, index=False)

    def data() -> TabularDataModule:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return TabularDataModule(path=str(path), target="y", batch_size=16, numeric_policy="standard")

    fitted = data()
    run = trainer(tmp_path, epochs=1)
    run.fit(task_for(fitted, TabM, ensemble_size=2, depth=1, embed_dim=8, num_bins=4), fitted)
    checkpoint = tmp_path / "model.ckpt"
    run.save_checkpoint(checkpoint)
    table.loc[split_indices(60, 0.2, 0.2, 0)["train"][:3], "channel"] = "radio"
    table.to_csv(path, index=False)
    changed = data()
    assert changed.cardinalities == (5,)
    for stage in ("test", "validate", "predict", "fit"):
        task = task_for(changed, TabM, ensemble_size=2, depth=1, embed_dim=8, num_bins=4)
        with pytest.raises(CheckpointError) as caught, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            getattr(trainer(tmp_path, epochs=2), stage)(task, changed, ckpt_path=checkpoint)
        assert str(caught.value).startswith(
            "the checkpoint's model reads column 'channel' with 4 codes, this model with 5: the model was "
            "built from the table as it is now, which has changed since the fit; build it from a DataModule "
            "that holds the checkpoint's encoding (data.load_state_dict(checkpoint['TabularDataModule']) "
            "first, or mlplab.load_run(<run dir>).datamodule())"
        ), stage
        assert "\n" not in str(caught.value)
    restored = data()  # the way the message says
    restored.load_state_dict(torch.load(checkpoint)["TabularDataModule"])
    task = task_for(restored, TabM, ensemble_size=2, depth=1, embed_dim=8, num_bins=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (logged,) = trainer(tmp_path).test(task, restored, ckpt_path=checkpoint, verbose=False)
    assert restored.cardinalities == (4,) and "test/acc" in logged
