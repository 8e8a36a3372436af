"""PointwiseFitting: what FunctionFitting and ImageFitting share keeps their checkpoints and metric names."""

from __future__ import annotations

import torch

from mlplab.models import KAN, SIREN
from mlplab.tasks import FunctionFitting, ImageFitting


def test_the_fitting_tasks_keep_their_checkpoint_keys_hyperparameters_and_metrics():
    function = FunctionFitting(lambda *shapes: KAN(*shapes, embed_dim=3), num_inputs=2)
    image = ImageFitting(lambda *shapes: SIREN(*shapes, embed_dim=8, depth=2), image_shape=(3, 4, 4))
    # the keys and hyper-parameters checkpoints written before the shared base held
    kan = [
        f"backbone.layers.{i}.{name}" for i in (0, 1) for name in ("coef", "grid", "scale_base", "scale_sp")
    ]
    siren = ["backbone.head.bias", "backbone.head.weight"] + [
        f"backbone.layers.{i}.{name}" for i in (0, 1) for name in ("linear.bias", "linear.weight", "omega")
    ]
    assert sorted(function.state_dict()) == kan and sorted(image.state_dict()) == siren
    assert sorted(function.hparams) == ["backbone", "num_inputs", "num_outputs"]
    assert sorted(image.hparams) == ["backbone", "image_shape", "log_images", "target_psnr"]
    assert function._stage_metrics("val") == (function.val_loss, function.val_rmse)
    assert image._stage_metrics("test") == (image.test_loss, image.test_psnr)
    coords, colours = torch.rand(5, 2) * 2 - 1, torch.rand(5, 3)
    assert set(image.predict_step((coords, colours), 0)) == {"coords", "predictions", "targets"}
    points, values = torch.rand(5, 2), torch.rand(5, 1)
    assert set(function.predict_step((points, values), 0)) == {"inputs", "predictions", "targets"}
