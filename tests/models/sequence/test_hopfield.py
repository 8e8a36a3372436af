import pytest
import torch

from mlplab.errors import ConfigError
from mlplab.models import HopfieldLM, count_parameters
from mlplab.models.sequence.hopfield import HopfieldAssociation, HopfieldLookup


def test_association_is_the_hopfield_update_iterated():
    torch.manual_seed(0)
    layer = HopfieldAssociation(8, n_heads=2, beta=0.7, update_steps=2)
    x = torch.randn(2, 6, 8)
    heads = lambda t: t.view(2, 6, 2, 4).transpose(1, 2)  # noqa: E731
    q = heads(layer.q_proj(layer.norm_state(x)))
    k = heads(layer.k_proj(layer.norm_stored(x)))
    v = heads(layer.v_proj(layer.norm_projection(x)))
    mask = torch.ones(6, 6, dtype=torch.bool).triu(1)

    def associate(query):  # softmax(beta q k^T) over stored patterns s <= t
        return (0.7 * query @ k.transpose(-1, -2)).masked_fill(mask, float("-inf")).softmax(-1)

    for _ in range(2):
        q = associate(q) @ k  # xi <- Y^T softmax(beta Y xi), in the key space
    expected = layer.out_proj((associate(q) @ v).transpose(1, 2).reshape(2, 6, 8))
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


def test_lookup_is_the_official_hopfield_layer_on_learned_patterns():
    # hflayers.HopfieldLayer's defaults: one head, learned lookup weights Y used as stored patterns and
    # pattern projections, each of state / stored / projection LayerNormed and projected with biases
    torch.manual_seed(0)
    layer = HopfieldLookup(8, num_patterns=5)
    with torch.no_grad():
        layer.patterns.normal_()
    x = torch.randn(2, 6, 8)
    q = layer.q_proj(layer.norm_state(x))  # (2, 6, 8)
    k = layer.k_proj(layer.norm_stored(layer.patterns))  # (5, 8)
    v = layer.v_proj(layer.norm_projection(layer.patterns))
    expected = layer.out_proj((q @ k.t() / 8**0.5).softmax(-1) @ v)
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)
    assert layer.patterns.shape == (5, 8) and layer.beta == pytest.approx(8**-0.5)


def test_default_beta_and_pattern_norms_follow_hflayers():
    layer = HopfieldAssociation(64, n_heads=4)
    assert layer.beta == pytest.approx(1 / 4)  # 1 / sqrt(head_dim)
    assert all(
        isinstance(n, torch.nn.LayerNorm)
        for n in (layer.norm_state, layer.norm_stored, layer.norm_projection)
    )


def test_parameter_count_from_the_layer_definition():
    # per block: three affine LayerNorms on state / stored / projected patterns, q/k/v/out projections with
    # biases, optional learned stored patterns (hflayers' HopfieldLayer: the same association on them, plus
    # the patterns), then LayerNorm + 4x GELU MLP. Learned positions, final LayerNorm, tied head.
    d, layers, vocab, context, patterns = 384, 6, 65, 256, 32
    association = 3 * 2 * d + 4 * (d * d + d)
    lookup = association + patterns * d
    mlp = 2 * d + d * 4 * d + 4 * d + 4 * d * d + d
    with torch.device("meta"):
        plain = HopfieldLM(vocab, context, embed_dim=d, depth=layers, num_heads=6)
        with_memory = HopfieldLM(
            vocab, context, embed_dim=d, depth=layers, num_heads=6, stored_patterns=patterns
        )
    embeddings = vocab * d + context * d + 2 * d
    assert count_parameters(plain)[0] == layers * (association + mlp) + embeddings == 10_780_032
    assert count_parameters(with_memory)[0] == count_parameters(plain)[0] + layers * lookup


def test_bad_settings():
    with pytest.raises(ConfigError, match="update_steps must be >= 0"):
        HopfieldLM(13, 30, embed_dim=16, num_heads=2, update_steps=-1)
    with pytest.raises(ConfigError, match="num_heads=3 must divide embed_dim=16"):
        HopfieldLM(13, 30, embed_dim=16, num_heads=3)
