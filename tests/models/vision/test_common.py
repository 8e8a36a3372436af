import pytest
import torch

from mlplab.errors import ConfigError
from mlplab.models.vision.common import check_batch, classification_shapes, require_divisible


def test_classification_shapes():
    assert classification_shapes("F", (3, 32, 32), (10,)) == (3, 32, 32, 10)
    with pytest.raises(
        ConfigError, match=r"F takes images of shape \(channels, height, width\), got input shape"
    ):
        classification_shapes("F", (3072,), (10,))
    with pytest.raises(ConfigError, match=r"output shape must be \(num_classes,\), got \(3, 32, 32\)"):
        classification_shapes("F", (3, 32, 32), (3, 32, 32))


def test_divisibility_and_batch_messages_name_the_sizes():
    with pytest.raises(ConfigError, match=r"F: the image size 30×32 is not divisible by 4 \(patch size 4\)"):
        require_divisible("F", 30, 32, 4, "patch size 4")
    with pytest.raises(ConfigError, match=r"F was built for 32×32 images, got 28×28 \(a batch of shape"):
        check_batch("F", torch.zeros(2, 3, 28, 28), (3, 32, 32))
    with pytest.raises(
        ConfigError, match=r"built for inputs of shape \(3, 32, 32\), got a batch of shape \(2, 1, 32, 32\)"
    ):
        check_batch("F", torch.zeros(2, 1, 32, 32), (3, 32, 32))
