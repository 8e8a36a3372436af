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


# ------------------------------------------------------- the attention-only minimal Transformer
# Bermeitinger et al. 2024, "Reducing the Transformer Architecture to a Minimum": attention matrices per
# block (no biases) 4d^2 standard; W_K = W_Q 3d^2; merged W_QK d^2; merged W_VO d^2; no W_V, W_O 0;
# a symmetric W_QK d(d+1)/2.
def _attention_params(d: int, query_key: str, value_output: str, symmetric: bool) -> int:
    if query_key == "merged":
        qk = d * (d + 1) // 2 if symmetric else d * d
    else:
        qk = d * d if symmetric else 2 * d * d
    vo = {"separate": 2 * d * d, "merged": d * d, "none": 0}[value_output]
    return qk + vo


REDUCED = [
    ("separate", "separate", False, 6),
    ("separate", "separate", True, 6),
    ("merged", "separate", False, 1),
    ("merged", "merged", False, 1),
    ("merged", "none", False, 1),
    ("merged", "merged", True, 1),
    ("merged", "none", True, 1),
    ("separate", "none", True, 1),
]


@pytest.mark.parametrize(("query_key", "value_output", "symmetric", "heads"), REDUCED)
def test_attention_only_parameter_counts_follow_the_formula(query_key, value_output, symmetric, heads):
    vocab, context, d, depth = 65, 256, 384, 6
    with torch.device("meta"):
        model = Transformer(vocab, context, embed_dim=d, depth=depth, num_heads=heads, bias=False,
                            channel_mlp=None, query_key=query_key, value_output=value_output,
                            symmetric_similarity=symmetric)  # fmt: skip
    per_block = d + _attention_params(d, query_key, value_output, symmetric)  # LayerNorm weight + attention
    assert count_parameters(model)[0] == vocab * d + context * d + d + depth * per_block


def test_the_minimal_variant_is_a_tenth_of_nanogpts_model():
    from mlplab.models import registry

    d = 384
    assert registry.count("Transformer", "minimal", "sequence") == 23 * d + 24 * d + d + 6 * (
        d + d * (d + 1) // 2 + d * d
    )
    full = registry.count("Transformer", "nanogpt-shakespeare")
    with torch.device("meta"):
        minimal = registry.build("Transformer", 65, 256, variant="minimal")
    assert count_parameters(minimal)[0] / full < 0.15  # 1.45M of 10.75M at the Shakespeare shapes


def test_merged_matrices_compute_what_the_separate_ones_do():
    """One head: W_QK = W_Q W_K^T and W_VO = W_V W_O give the standard layer's output."""
    torch.manual_seed(0)
    standard = Transformer(11, 8, embed_dim=8, depth=1, num_heads=1, channel_mlp=None)
    merged = Transformer(11, 8, embed_dim=8, depth=1, num_heads=1, channel_mlp=None, query_key="merged",
                         value_output="merged")  # fmt: skip
    merged.load_state_dict(standard.state_dict(), strict=False)
    wq, wk, wv = standard.blocks[0].mixer.qkv.weight.detach().chunk(3)  # nn.Linear: y = x W^T
    wo = standard.blocks[0].mixer.out_proj.weight.detach()
    with torch.no_grad():
        merged.blocks[0].mixer.query.weight.copy_(wk.T @ wq)  # x (wk^T wq)^T x^T = (x wq^T)(x wk^T)^T
        merged.blocks[0].mixer.out_proj.weight.copy_(wo @ wv)
    tokens = torch.randint(0, 11, (2, 8))
    torch.testing.assert_close(merged(tokens), standard(tokens), atol=1e-5, rtol=1e-5)


def test_symmetric_similarity_is_symmetric():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 8)
    shared = Transformer(11, 8, embed_dim=8, depth=1, num_heads=2, symmetric_similarity=True).blocks[0].mixer
    q, k, _ = shared.heads(x)
    assert shared.key is None and torch.equal(k, q)  # W_K = W_Q
    merged = Transformer(11, 8, embed_dim=8, depth=1, num_heads=1, query_key="merged",
                         symmetric_similarity=True).blocks[0].mixer  # fmt: skip
    matrix = merged.query.matrix()
    torch.testing.assert_close(matrix, matrix.T)
    q, k, _ = merged.heads(x)
    scores = q @ k.transpose(-1, -2)  # x_i S x_j^T
    torch.testing.assert_close(scores, scores.transpose(-1, -2))
    assert merged.query.weight.numel() == 8 * 9 // 2


def test_without_value_and_output_matrices_the_output_is_a_mean_of_the_inputs():
    mixer = Transformer(11, 8, embed_dim=8, depth=1, num_heads=1, query_key="merged",
                        value_output="none").blocks[0].mixer  # fmt: skip
    assert mixer.value is None and mixer.out_proj is None
    same = torch.randn(1, 1, 8).expand(2, 5, 8)  # every token the same vector: any convex mix of them is it
    torch.testing.assert_close(mixer(same), same, atol=1e-6, rtol=1e-6)


def test_the_minimal_transformer_learns():
    torch.manual_seed(0)
    model = Transformer(11, 8, embed_dim=16, depth=2, num_heads=1, channel_mlp=None, query_key="merged",
                        value_output="merged", symmetric_similarity=True)  # fmt: skip
    tokens = torch.arange(8).remainder(11).repeat(4, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_reduced_matrices_need_one_head():
    with pytest.raises(ConfigError, match=r"query_key=merged and value_output=separate need num_heads=1"):
        Transformer(65, 256, num_heads=6, query_key="merged")
    with pytest.raises(ConfigError, match=r"value_output=none need num_heads=1"):
        Transformer(65, 256, num_heads=6, value_output="none")
    with pytest.raises(ConfigError, match=r"query_key must be separate or merged"):
        Transformer(65, 256, num_heads=1, query_key="fused")
