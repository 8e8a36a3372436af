"""FinalMLP: the official code's fusion, gates and embeddings, and its parameter count by formula."""

from __future__ import annotations

import pytest
import torch

from mlplab.errors import ConfigError
from mlplab.models import FinalMLP, registry
from mlplab.models.tabular.finalmlp import InteractionAggregation


def fuxictr_fusion(module: InteractionAggregation, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """FuxiCTR's ``InteractionAggregation.forward``, written as the official code writes it."""
    h, hx, hy, out = module.num_heads, module.head_x, module.head_y, module.output_dim
    output = module.w_x(x) + module.w_y(y)
    head_x, head_y = x.view(-1, h, hx), y.view(-1, h, hy)
    xy = torch.matmul(
        torch.matmul(head_x.unsqueeze(2), module.weight.view(h, hx, -1)).view(-1, h, out, hy),
        head_y.unsqueeze(-1),
    ).squeeze(-1)
    return output + xy.sum(dim=1)


@pytest.mark.parametrize(("heads", "out"), [(1, 1), (2, 3), (4, 2)])
def test_bilinear_fusion_is_the_official_codes(heads, out):
    torch.manual_seed(0)
    fusion = InteractionAggregation(8, 12, out, heads)
    x, y = torch.randn(5, 8), torch.randn(5, 12)
    torch.testing.assert_close(fusion(x, y), fuxictr_fusion(fusion, x, y))


def test_embeddings_gates_and_streams():
    torch.manual_seed(0)
    model = FinalMLP(2, (3, 4), 2, embed_dim=4, mlp1_dims=(8,), mlp2_dims=(6,), gate_dims=(5,), num_heads=2)
    embeddings = model.embeddings
    assert (embeddings.categorical.weight[[0, 3]] == 0).all()  # the unknown codes start at zero
    assert embeddings.categorical.weight[1:3].abs().max() < 1e-3  # N(0, 1e-4), as FuxiCTR
    x_num, x_cat = torch.tensor([[2.0, -1.0]]), torch.tensor([[2, 1]])
    fields = embeddings(x_num, x_cat)
    torch.testing.assert_close(fields[0, 0], 2.0 * embeddings.numeric[0])  # value times the field's vector
    torch.testing.assert_close(fields[0, 3], embeddings.categorical.weight[3 + 1])  # second field, code 1
    gate = model.gates[0]()
    assert gate.shape == (1, 4 * 4) and (gate > 0).all() and (gate < 2).all()
    # without feature selection both streams see the same embeddings
    plain = FinalMLP(2, (3, 4), 2, embed_dim=4, mlp1_dims=(8,), mlp2_dims=(6,), feature_selection=False)
    assert plain.gates is None and plain(x_num, x_cat).shape == (1, 2)
    # Xavier-normal linear layers with zero biases, as FuxiCTR's reset_parameters
    assert (model.mlp1[0].bias == 0).all() and (model.fusion.w_x.bias == 0).all()


def test_parameter_count_by_formula():
    n, cards, d = 6, (9, 17, 4), 16
    fields = n + len(cards)
    spec = registry.get("FinalMLP").variant("default").args
    model = FinalMLP(n, cards, 2, **spec)
    f = d * fields

    def mlp(widths):
        return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))

    expected = n * d + sum(cards) * d  # embeddings
    expected += 2 * (d + mlp([d, 1024, 512, f]))  # two gates: context and MLP
    expected += mlp([f, 1024, 512]) + mlp([f, 1024, 512, 256])  # streams
    expected += (512 + 1) * 2 + (256 + 1) * 2 + 2 * (512 // 2) * (256 // 2) * 2  # fusion
    assert sum(p.numel() for p in model.parameters()) == expected


def test_refusals():
    with pytest.raises(ConfigError, match=r"last widths \(8, 6\) must be divisible by num_heads \(4\)"):
        FinalMLP(2, (3,), 2, mlp1_dims=(8,), mlp2_dims=(6,), num_heads=4)
    with pytest.raises(ConfigError, match="mlp1_dims and mlp2_dims need at least one width"):
        FinalMLP(2, (3,), 2, mlp1_dims=())
    with pytest.raises(ConfigError, match="mlp2_dropout must be in"):
        FinalMLP(2, (3,), 2, mlp2_dropout=1.5)
