import pytest
import torch
import torch.nn.functional as F

from mlplab.errors import ConfigError
from mlplab.models import Transformer, count_parameters


def test_nanogpt_shakespeare_parameter_count():
    # nanoGPT (karpathy/nanoGPT), config/train_shakespeare_char.py: n_layer=6, n_head=6, n_embd=384,
    # block_size=256, bias=False, vocab 65 -> "number of parameters: 10.65M" (get_num_params leaves out
    # the 256 x 384 position table): 10,646,784; 10,745,088 in all.
    with torch.device("meta"):
        model = Transformer(65, 256, embed_dim=384, depth=6, num_heads=6, bias=False)
    total, trainable = count_parameters(model)
    assert total == trainable == 10_745_088
    assert total - 256 * 384 == 10_646_784


@pytest.mark.parametrize(("gate", "extra"), [("headwise", 6 * 384 * 6), ("elementwise", 6 * 384 * 384)])
def test_gated_attention_adds_one_gate_projection_per_block(gate, extra):
    with torch.device("meta"):
        plain = count_parameters(Transformer(65, 256, bias=False))[0]
        gated = count_parameters(Transformer(65, 256, bias=False, attention_gate=gate))[0]
    assert gated - plain == extra  # W_g: d -> heads (head-wise) or d -> d (element-wise), no bias


def test_attention_matches_a_written_out_causal_softmax():
    torch.manual_seed(0)
    model = Transformer(11, 8, embed_dim=8, depth=1, num_heads=2, channel_mlp=None, attention_gate="headwise")
    attn = model.blocks[0].mixer
    x = torch.randn(2, 8, 8)
    q, k, v = attn.qkv(x).view(2, 8, 3, 2, 4).permute(2, 0, 3, 1, 4)
    scores = (q @ k.transpose(-1, -2)) / 2.0
    scores = scores.masked_fill(torch.ones(8, 8, dtype=torch.bool).triu(1), float("-inf"))
    y = (scores.softmax(-1) @ v).transpose(1, 2)  # (B, T, H, d/H)
    y = y * torch.sigmoid(attn.gate(x))[..., None]
    expected = attn.out_proj(y.reshape(2, 8, 8))
    torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)


def test_structure_follows_nanogpt():
    model = Transformer(65, 256, bias=False)
    block = model.blocks[0]
    assert block.norm1.bias is None and block.mixer.qkv.bias is None and block.mlp.fc1.bias is None
    assert model.position.weight.shape == (256, 384)
    std = block.mixer.out_proj.weight.std().item()
    assert std == pytest.approx(0.02 / (2 * 6) ** 0.5, rel=0.1)  # GPT-2's scaled residual init


def test_bad_settings():
    with pytest.raises(ConfigError, match="num_heads=5 must divide embed_dim=384"):
        Transformer(65, 256, num_heads=5)
    with pytest.raises(ConfigError, match="attention_gate must be none, headwise or elementwise"):
        Transformer(65, 256, attention_gate="sideways")
    with pytest.raises(ConfigError, match="vocab_size must be a positive integer"):
        Transformer(0, 256)


def test_dropout_only_in_training():
    model = Transformer(11, 8, embed_dim=8, depth=1, num_heads=2, dropout=0.5).eval()
    tokens = torch.randint(0, 11, (2, 8))
    torch.testing.assert_close(model(tokens), model(tokens))
    model.train()
    assert not torch.allclose(F.softmax(model(tokens), -1), F.softmax(model(tokens), -1))
