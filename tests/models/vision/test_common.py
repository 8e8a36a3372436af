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


def test_the_shared_linear_initialisation_reaches_the_experts():
    # init_linear_weights (truncated normal, std 0.02, zero biases: EfficientMod and MS-MLP) skipped the
    # mixture-of-experts channel MLPs' w1 / w2, which kept uniform +-1/sqrt(fan_in)
    from mlplab.models.vision.common import init_linear_weights
    from mlplab.nn.moe import MixtureOfExperts

    torch.manual_seed(0)
    experts = MixtureOfExperts(64, 256, num_experts=4)
    experts.apply(init_linear_weights)
    for weight in (experts.w1, experts.w2):  # uniform: std 0.072 and 0.036
        torch.testing.assert_close(weight.std().item(), 0.02, rtol=0.05, atol=0)
    assert not experts.b1.any() and not experts.b2.any()
