import pytest
import torch
import torch.nn.functional as F

from mlplab.errors import ConfigError
from mlplab.models import GatedLinearAttention, count_parameters
from mlplab.models.sequence.gla import gla_chunkwise, gla_recurrent


def gla_inputs(strength: float, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    batch, heads, length, d_k, d_v = 2, 3, 45, 8, 5
    q = torch.randn(batch, heads, length, d_k, generator=generator) * d_k**-0.5
    k = torch.randn(batch, heads, length, d_k, generator=generator)
    v = torch.randn(batch, heads, length, d_v, generator=generator)
    log_alpha = F.logsigmoid(torch.randn(batch, heads, length, d_k, generator=generator) * strength) / 16
    return q, k, v, log_alpha * (16 if strength > 4 else 1)  # > 4: decays far stronger than the paper's


@pytest.mark.parametrize("strength", [1.0, 8.0])
@pytest.mark.parametrize("chunk_size", [1, 8, 16, 64])
def test_chunkwise_form_equals_the_recurrence(chunk_size, strength):
    inputs = [t.requires_grad_() for t in gla_inputs(strength)]
    recurrent = gla_recurrent(*inputs)
    chunked = gla_chunkwise(*inputs, chunk_size=chunk_size)
    torch.testing.assert_close(chunked, recurrent, atol=1e-4, rtol=1e-4)
    for ours, theirs in zip(
        torch.autograd.grad(chunked.sum(), inputs), torch.autograd.grad(recurrent.sum(), inputs)
    ):
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_recurrence_is_the_papers():
    q, k, v, log_alpha = gla_inputs(1.0)
    state = torch.zeros(2, 3, 8, 5)
    for t in range(3):
        state = torch.diag_embed(log_alpha[:, :, t].exp()) @ state + k[:, :, t, :, None] @ v[:, :, t, None, :]
    torch.testing.assert_close(
        gla_recurrent(q, k, v, log_alpha)[:, :, 2], (q[:, :, 2, None] @ state).squeeze(-2)
    )


def test_layer_modes_agree():
    torch.manual_seed(0)
    model = GatedLinearAttention(13, 30, embed_dim=16, depth=2, num_heads=2, chunk_size=7)
    tokens = torch.randint(0, 13, (2, 30))
    chunked = model(tokens)
    chunked.square().sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    for block in model.blocks:
        block.mixer.mode = "recurrent"
    model.zero_grad()
    recurrent = model(tokens)
    recurrent.square().sum().backward()
    torch.testing.assert_close(recurrent, chunked, atol=1e-4, rtol=1e-4)
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, atol=1e-4, rtol=1e-4, msg=name)


def test_parameter_count_from_the_layer_definition():
    # fla / Zoology GLA layer: q, k: d -> d/2; v, g: d -> d; gate d -> 16 -> d/2 (+ bias); per-head RMSNorm
    # over d_v = d / heads; o: d -> d; then a 4x GELU MLP with biases and two RMSNorms per block.
    d, heads, layers, vocab = 384, 4, 6, 65
    layer = 2 * d * d // 2 + 2 * d * d + d * 16 + 16 * d // 2 + d // 2 + d // heads + d * d
    block = layer + (d * 4 * d + 4 * d + 4 * d * d + d) + 2 * d
    with torch.device("meta"):
        model = GatedLinearAttention(vocab, 256, embed_dim=d, depth=layers, num_heads=heads)
    assert count_parameters(model)[0] == layers * block + vocab * d + d == 10_715_328


def test_bad_settings():
    with pytest.raises(ConfigError, match="num_heads=5 must divide the key width 8"):
        GatedLinearAttention(13, 30, embed_dim=16, num_heads=5)
    with pytest.raises(ConfigError, match="mode must be chunk or recurrent"):
        GatedLinearAttention(13, 30, embed_dim=16, num_heads=2, mode="fused")
