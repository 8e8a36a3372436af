"""Tabular learning: classification or regression from numeric and categorical columns.

One task with both heads: the DataModule says which (``num_classes``: the classes, 0 for regression).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, MetricCollection, R2Score
from torchmetrics.classification import BinaryAUROC, MulticlassAccuracy, MulticlassAUROC

from mlplab.errors import CheckpointError, ConfigError
from mlplab.tasks.base import Task

#: A tabular family (or ``functools.partial`` of one), called as
#: ``family(num_numeric, cardinalities, num_outputs)``.
TabularBackbone = Callable[[int, tuple[int, ...], int], nn.Module]

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class TabularTask(Task):
    """Predict a class or a value from a table's numeric and categorical columns.

    Batches are ``(x_num (B, N), x_cat (B, C), y (B,))`` as :class:`~mlplab.data.TabularDataModule`
    delivers them. The backbone is called with ``(num_numeric, cardinalities, num_outputs)`` and maps
    ``(x_num, x_cat)`` to ``(B, num_outputs)``, or an ensemble of ``k`` members (TabM) to
    ``(B, k, num_outputs)``: its members are trained together, the loss being the mean of theirs, and
    its prediction is the mean of theirs (of the probabilities for classification), as in the TabM paper.

    **Classification** (``num_classes >= 2``): cross-entropy; metrics ``<stage>/acc``, ``<stage>/auroc``
    (binary: of the positive class's probability; more classes: macro one-vs-rest) and
    ``<stage>/logloss`` (of the predicted probabilities); the best checkpoint by ``val/acc``.
    **Regression** (``num_classes == 0``): MSE on the standardised target; metrics ``<stage>/rmse``,
    ``<stage>/mae`` (in the target's units, through ``target_scale``) and ``<stage>/r2``; the best
    checkpoint by ``val/rmse``. ``<stage>/loss`` is the training loss (:meth:`loss`: on the standardised
    target for regression, the mean of an ensemble's members' losses), whereas the metrics judge the
    ensemble's prediction. Metrics (and ``<stage>/loss``) are torchmetrics objects, one set per
    evaluation stage, over every process of a multi-process run, without the rows that pad a process's
    share.

    Before training, a family with a ``fit_to_data`` method gets the training split (TabM and the MLP
    set their piecewise-linear bins from it); checkpoints keep what it set.

    Args:
        backbone: The family: its class path and arguments.
        num_numeric: Numeric columns; filled in from the DataModule.
        cardinalities: Codes per categorical column; filled in from the DataModule.
        num_classes: Classes of the target, 0 for regression; filled in from the DataModule.
        target_scale: Mean and standard deviation of the training targets (regression); filled in from
            the DataModule.
        table_digest: Fingerprint of the table's encoding and training rows; filled in from the
            DataModule. Checkpoints keep it, and one trained on a table encoded otherwise is refused.
        **kwargs: The optimiser, its LR scheduler and the scheduler's interval (:class:`~mlplab.tasks.Task`).
    """

    architecture_arguments = ("backbone", "dropped_layers", "num_numeric", "cardinalities", "num_classes")

    def __init__(
        self,
        backbone: TabularBackbone,
        num_numeric: int,
        cardinalities: tuple[int, ...],
        num_classes: int,
        target_scale: tuple[float, float] = (0.0, 1.0),
        table_digest: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.save_hyperparameters()
        if num_classes == 1 or num_classes < 0:
            raise ConfigError(
                f"TabularTask: num_classes must be 0 (regression) or at least 2, got {num_classes}"
            )
        if target_scale[1] <= 0:
            raise ConfigError(
                f"TabularTask: the target's standard deviation must be positive, got {target_scale[1]}"
            )
        self.classification = num_classes >= 2
        self.num_classes = num_classes
        self.target_mean, self.target_std = float(target_scale[0]), float(target_scale[1])
        self.table_digest = table_digest
        self._fit_to_data_pending = False  # setup left the family's fit to the data to on_fit_start
        self.monitor, self.monitor_mode = ("val/acc", "max") if self.classification else ("val/rmse", "min")
        num_outputs = num_classes if self.classification else 1
        self.backbone = self.build_backbone(backbone, num_numeric, tuple(cardinalities), num_outputs)
        self.val_metrics = self._metrics("val")
        self.test_metrics = self._metrics("test")
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()

    def _metrics(self, stage: str) -> MetricCollection:
        if self.classification:
            auroc = BinaryAUROC() if self.num_classes == 2 else MulticlassAUROC(self.num_classes)
            metrics = {"acc": MulticlassAccuracy(self.num_classes, average="micro"), "auroc": auroc,
                       "logloss": MeanMetric()}  # fmt: skip
        else:
            metrics = {"rmse": MeanSquaredError(squared=False), "mae": MeanAbsoluteError(), "r2": R2Score()}
        return MetricCollection(metrics, prefix=f"{stage}/")

    # ---------------------------------------------------------------------------------- model
    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return self.backbone(x_num, x_cat)

    def predict(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(B, K)``, or values ``(B,)`` in the target's units; ensembles averaged."""
        return self._combine(self(x_num, x_cat))

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy or MSE (standardised target), averaged over an ensemble's members."""
        if outputs.ndim == 3:  # (B, k, O): every member against the same targets
            targets = targets.unsqueeze(1).expand(-1, outputs.shape[1])
            outputs, targets = outputs.flatten(0, 1), targets.flatten()
        if self.classification:
            return F.cross_entropy(outputs.float(), targets)
        return F.mse_loss(outputs.float().squeeze(-1), targets)

    def example_backbone_input(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_num (B, N), x_cat (B, C))`` as the DataModule's batches hold them."""
        num_numeric, cardinalities = self._backbone_args[:2]
        shapes = (batch_size, num_numeric), (batch_size, len(cardinalities))
        return torch.zeros(shapes[0]), torch.zeros(shapes[1], dtype=torch.long)

    def inference_module(self) -> nn.Module:
        """The trained model as ``mlplab export`` writes it: a :class:`TabularPredictor` of the family.

        It predicts what :meth:`predict` (and so ``mlplab predict``) does: class probabilities, or values
        in the target's units; an ensemble's members averaged.
        """
        return TabularPredictor(self.backbone, self.num_classes, (self.target_mean, self.target_std))

    def example_inputs(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, Any]:
        """Inputs of :meth:`inference_module` by name, as ``mlplab export`` traces it: ``x_num``, ``x_cat``.

        ``x_num`` ``(B, N)``: the numeric columns as the DataModule transforms them; ``x_cat`` ``(B, C)``:
        the category codes (0 for an unknown value).
        """
        num_numeric, cardinalities = self._backbone_args[:2]
        x_num = torch.randn(batch_size, num_numeric, generator=generator)
        codes = [torch.randint(0, int(c), (batch_size,), generator=generator) for c in cardinalities]
        x_cat = torch.stack(codes, 1) if codes else torch.zeros(batch_size, 0, dtype=torch.long)
        return {"x_num": x_num, "x_cat": x_cat}

    # ------------------------------------------------------------------------------- training
    def setup(self, stage: str) -> None:
        """Before a fit, hand the training split to a family that fits something to it (bins).

        A DataModule that serves a checkpoint's encoding (a resumed fit) leaves it to the start of the
        fit (:meth:`on_fit_start`): the checkpoint restores what the family set from the training split
        of then, which may differ from today's (a numeric column constant in it now has no bins).
        """
        super().setup(stage)
        self._fit_to_data_pending = False
        fit = getattr(self.backbone, "fit_to_data", None)
        if stage != "fit" or fit is None:
            return
        data = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if data is None or not hasattr(data, "split_tensors"):
            rank_zero_warn("TabularTask: no TabularDataModule, so the family keeps its default bins")
            return
        if getattr(data, "encoding_from_checkpoint", False):
            self._fit_to_data_pending = True
            return
        fit(*data.split_tensors("train"))

    def on_fit_start(self) -> None:
        """Fit the family to the training split if :meth:`setup` left it to now and no checkpoint set it."""
        super().on_fit_start()
        if getattr(self, "_fit_to_data_pending", False):
            self._fit_to_data_pending = False
            self.backbone.fit_to_data(*self.trainer.datamodule.split_tensors("train"))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse, in one line, a checkpoint trained on another table; take its target scale.

        A checkpoint that keeps the table's encoding (the DataModule's ``state_dict``) is checked by the
        DataModule (a column the model reads missing or now text, another target, classes,
        ``numeric_policy`` or ``split_seed``: refused before the weights' check), which then reads the
        checkpoint's columns with its codes and numeric transform even when the table has changed since
        (the command line hands it the state before it builds this task, so the shapes are the
        checkpoint's); the regression target's mean and std are then the checkpoint's too. A model built
        from the changed table before its DataModule took the encoding is refused in a line naming the
        columns (:meth:`refuse_shapes_of_another_table`). One of an
        earlier version, which keeps only the digest, is refused when the table's digest differs (its
        encoding, rebuilt from the table, would differ).
        """
        self._fit_to_data_pending = False  # the checkpoint's weights and bins replace the family's
        state = data_state(checkpoint)
        datamodule = getattr(getattr(self, "_trainer", None), "datamodule", None)
        check = getattr(datamodule, "check_trained_table", None)
        if state is not None and check is not None:
            check(state)
        theirs = checkpoint.get("hyper_parameters", {}).get("table_digest")
        if (
            state is None
            and theirs is not None
            and self.table_digest is not None
            and theirs != self.table_digest
        ):
            raise CheckpointError(
                f"the checkpoint was trained on a table encoded otherwise (digest {theirs} there, "
                f"{self.table_digest} here: other columns, category codes, classes or training rows) and, "
                "written by an earlier mlplab, keeps no encoding of it; use the data settings it was "
                "trained with (file, split_seed, categorical, drop, min_category_count, numeric_policy)"
            )
        if state is not None:
            self.refuse_shapes_of_another_table(checkpoint, state["preprocessing"], datamodule)
        scale = checkpoint.get("hyper_parameters", {}).get("target_scale")
        if state is not None and scale is not None:
            self.target_mean, self.target_std = float(scale[0]), float(scale[1])
        super().on_load_checkpoint(checkpoint)

    def refuse_shapes_of_another_table(
        self, checkpoint: dict[str, Any], encoding: dict[str, Any], datamodule: Any
    ) -> None:
        """Refuse, in one line naming the columns, a model built from a table that has changed since the fit.

        A DataModule given the checkpoint's encoding (``load_state_dict``) serves a changed table with the
        checkpoint's columns and codes; Lightning gives it that encoding only after it has restored the
        model, so a model built from the DataModule before (``trainer.test(model, datamodule=data,
        ckpt_path=...)`` in Python) has the table's own shapes, which the weights do not fit.

        Raises:
            CheckpointError: The checkpoint's ``num_numeric`` or ``cardinalities`` differ from this model's.
        """
        saved = checkpoint.get("hyper_parameters", {})
        then_cards = [int(c) for c in saved.get("cardinalities", self.hparams.cardinalities)]
        now_cards = [int(c) for c in self.hparams.cardinalities]
        then_numeric = int(saved.get("num_numeric", self.hparams.num_numeric))
        now_numeric = int(self.hparams.num_numeric)
        if then_cards == now_cards and then_numeric == now_numeric:
            return
        columns = [str(c) for c in encoding.get("categorical_columns", [])]
        differences = []
        if then_numeric != now_numeric:
            now_columns = getattr(datamodule, "numeric_columns", None)
            gone = [str(c) for c in encoding.get("numeric_columns", []) if c not in (now_columns or [])]
            named = (
                f" (the table's own encoding now leaves out {', '.join(gone)})"
                if now_columns and gone
                else ""
            )
            differences.append(f"{then_numeric} numeric columns{named}, this model {now_numeric}")
        if then_cards != now_cards and len(then_cards) == len(now_cards) == len(columns):
            for column, then, now in zip(columns, then_cards, now_cards):
                if then != now:
                    differences.append(f"column {column!r} with {then} codes, this model with {now}")
        elif then_cards != now_cards:
            differences.append(f"cardinalities {tuple(then_cards)}, this model {tuple(now_cards)}")
        key = type(datamodule).__qualname__ if datamodule is not None else "TabularDataModule"
        raise CheckpointError(
            f"the checkpoint's model reads {'; '.join(differences)}: the model was built from the table as "
            "it is now, which has changed since the fit; build it from a DataModule that holds the "
            f"checkpoint's encoding (data.load_state_dict(checkpoint[{key!r}]) first, or "
            "mlplab.load_run(<run dir>).datamodule()), as mlplab test, validate and predict --ckpt_path do"
        )

    def optimizer_parameters(self) -> list[Any]:
        """The base's groups, and the numeric features' linear embeddings without weight decay too.

        These are the TabM paper's parameter groups (biases, norms and linear embeddings undecayed);
        ``exclude_from_weight_decay: nothing`` decays every parameter.
        """
        groups = super().optimizer_parameters()
        if self.exclude_from_weight_decay == "nothing":
            return groups
        embeddings = {id(p) for module in self.modules() if type(module).__name__ == "LinearEmbeddings"
                      for p in module.parameters()}  # fmt: skip
        decay = [p for group in groups if group.get("weight_decay") is None for p in group["params"]]
        keep = [p for group in groups if group.get("weight_decay") == 0.0 for p in group["params"]]
        moved = [p for p in decay if id(p) in embeddings]
        decay = [p for p in decay if id(p) not in embeddings]
        return [g for g in ({"params": decay}, {"params": keep + moved, "weight_decay": 0.0}) if g["params"]]

    def training_loss(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x_num, x_cat, y = batch
        self.record_flops((x_num, x_cat))
        outputs = self(x_num, x_cat)
        if self.classification:
            # a plain mean keeps the accelerator busy: metric objects check their inputs on the host
            members = outputs.detach().softmax(-1)
            predicted = (members.mean(1) if members.ndim == 3 else members).argmax(-1)
            self.log_epoch_mean("train/acc", (predicted == y).float().mean(), len(y))
        return self.loss(outputs, y)

    # ----------------------------------------------------------------------------- evaluation
    def evaluation_step(self, batch: Batch, batch_idx: int, stage: str) -> None:
        x_num, x_cat, y = batch
        outputs = self(x_num, x_cat)
        real = self.evaluation_samples(batch_idx, len(y)).count  # later rows pad this process's share
        if real == 0:
            return
        outputs, y = outputs[:real], y[:real]
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        (self.val_loss if stage == "val" else self.test_loss).update(self.loss(outputs, y), weight=real)
        predictions = self._combine(outputs)
        if self.classification:
            metrics["acc"].update(predictions, y)
            metrics["auroc"].update(predictions[:, 1] if self.num_classes == 2 else predictions, y)
            picked = predictions.gather(1, y.unsqueeze(1)).squeeze(1)
            metrics["logloss"].update(-picked.clamp_min(1e-12).log())
        else:
            metrics.update(predictions, y * self.target_std + self.target_mean)

    def log_evaluation(self, stage: str) -> None:
        shown = stage == "val"  # in the progress bar
        self.log(f"{stage}/loss", self.val_loss if stage == "val" else self.test_loss, prog_bar=shown)
        self.log_dict(self.val_metrics if stage == "val" else self.test_metrics, prog_bar=shown)

    def _combine(self, outputs: torch.Tensor) -> torch.Tensor:
        """The prediction from the backbone's outputs (as :meth:`predict`)."""
        return combine_outputs(outputs, self.classification, self.target_mean, self.target_std)

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, torch.Tensor]:
        x_num, x_cat, y = batch
        predictions = self.predict(x_num, x_cat)
        if self.classification:
            return {"probabilities": predictions, "predictions": predictions.argmax(-1), "targets": y}
        return {"predictions": predictions, "targets": y * self.target_std + self.target_mean}


def data_state(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The table's encoding a checkpoint keeps (a ``TabularDataModule``'s state), or ``None`` (older ones)."""
    for value in checkpoint.values():
        if isinstance(value, dict) and "numeric_columns" in (value.get("preprocessing") or {}):
            return value
    return None


def combine_outputs(
    outputs: torch.Tensor, classification: bool, target_mean: float, target_std: float
) -> torch.Tensor:
    """A tabular family's prediction from its outputs ``(B, O)`` or, for an ensemble, ``(B, k, O)``.

    Classification: the class probabilities ``(B, K)`` (an ensemble's members' probabilities averaged);
    regression: the values ``(B,)`` in the target's units (the members' standardised values averaged,
    then times ``target_std`` plus ``target_mean``).
    """
    if classification:
        probabilities = outputs.float().softmax(-1)
        return probabilities.mean(1) if probabilities.ndim == 3 else probabilities
    values = outputs.float().squeeze(-1)
    values = values.mean(1) if values.ndim == 2 else values
    return values * target_std + target_mean


class TabularPredictor(nn.Module):
    """A trained tabular family that predicts as :meth:`TabularTask.predict` (``mlplab export``).

    ``(x_num, x_cat)`` to class probabilities ``(B, K)`` or values ``(B,)`` in the target's units.

    The family is the task's own submodule (``backbone``), so the weights keep their names; the target's
    mean and standard deviation are constants of the forward.

    Args:
        backbone: The family.
        num_classes: Classes of the target, 0 for regression.
        target_scale: Mean and standard deviation of the training targets (regression).
    """

    def __init__(self, backbone: nn.Module, num_classes: int, target_scale: tuple[float, float]):
        super().__init__()
        self.backbone = backbone
        self.classification = num_classes >= 2
        self.num_classes = num_classes
        self.target_mean, self.target_std = float(target_scale[0]), float(target_scale[1])

    @property
    def output_description(self) -> str:
        """What the output is, in words (``mlplab export`` writes it into ``config.json``)."""
        if self.classification:
            return (
                f"class probabilities (batch, {self.num_classes}) in the order of the training split's "
                "sorted classes (an ensemble's members' probabilities averaged), as mlplab predict's "
                "probabilities"
            )
        return (
            f"predicted values (batch,) in the target's units (an ensemble's members averaged, times "
            f"{self.target_std:.6g} plus {self.target_mean:.6g}), as mlplab predict's predictions"
        )

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        outputs = self.backbone(x_num, x_cat)
        return combine_outputs(outputs, self.classification, self.target_mean, self.target_std)


__all__ = ["TabularBackbone", "TabularPredictor", "TabularTask", "combine_outputs"]
