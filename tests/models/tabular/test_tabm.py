"""TabM and the MLP baseline against the authors' ``tabm`` package: the same weights give the same outputs.

Every parameter of the package's model has one of mlplab's of the same shape (and the other way round);
with the package's weights copied over, the outputs agree to float32 rounding, for every arch type,
with and without piecewise-linear embeddings (whose bin edges mlplab computes itself and must equal
``rtdl_num_embeddings.compute_bins``'s).
"""

from __future__ import annotations

import re

import pytest
import torch

from mlplab.errors import ConfigError
from mlplab.models.tabular.common import PiecewiseLinearEmbeddings, compute_bins
from mlplab.models.tabular.mlp import TabularMLP
from mlplab.models.tabular.tabm import TabM

tabm = pytest.importorskip("tabm", reason="the tabm package (pip install -e '.[dev]') is the reference")
rtdl = pytest.importorskip("rtdl_num_embeddings")

#: mlplab's names -> the package's.
RENAMES = [
    (r"^features\.embeddings\.linear\.", "num_module.linear0."),
    (r"^features\.embeddings\.weight$", "num_module.linear.weight"),
    (r"^features\.embeddings\.encoding_weight$", "num_module.impl.weight"),
    (r"^features\.embeddings\.encoding_bias$", "num_module.impl.bias"),
    (r"^blocks\.(\d+)\.linear\.", r"backbone.blocks.\1.0."),
    (r"^adapter$", "backbone.affine.weight"),
    (r"^head\.", "output."),
]


def package_name(name: str) -> str:
    for pattern, replacement in RENAMES:
        name = re.sub(pattern, replacement, name)
    return name


def table(rows: int = 300, numeric: int = 3, cardinalities=(4, 2)):
    generator = torch.Generator().manual_seed(0)
    x_num = torch.randn(rows, numeric, generator=generator)
    x_cat = torch.stack([torch.randint(0, c, (rows,), generator=generator) for c in cardinalities], 1)
    return x_num, x_cat


def copy_from(package_model: torch.nn.Module, ours: torch.nn.Module) -> None:
    theirs = package_model.state_dict()
    mapped = {}
    for name, tensor in ours.state_dict().items():
        if name.endswith("single_bin"):
            mapped[name] = tensor
            continue
        source = package_name(name)
        assert source in theirs, f"{name} -> {source} is not in the package's model"
        assert theirs[source].shape == tensor.shape, name
        mapped[name] = theirs[source]
    ours.load_state_dict(mapped)
    ours_params = sum(p.numel() for p in ours.parameters())
    assert ours_params == sum(p.numel() for p in package_model.parameters())


@pytest.mark.parametrize("arch_type", ["tabm", "tabm-mini", "tabm-packed"])
@pytest.mark.parametrize("bins", [None, 12], ids=["plain", "ple"])
def test_tabm_matches_the_package_weight_for_weight(arch_type, bins):
    x_num, x_cat = table()
    cardinalities = (4, 2)
    ours = TabM(3, cardinalities, 2, arch_type=arch_type, ensemble_size=5, depth=3, embed_dim=24,
                dropout=0.0, num_bins=bins, numeric_embed_dim=6)  # fmt: skip
    embeddings = None
    if bins is not None:
        edges = rtdl.compute_bins(x_num, n_bins=bins)
        ours.fit_to_data(x_num, x_cat, torch.zeros(len(x_num)))
        embeddings = rtdl.PiecewiseLinearEmbeddings(edges, 6, activation=False, version="B")
    theirs = tabm.TabM.make(
        n_num_features=3, cat_cardinalities=list(cardinalities), d_out=2, num_embeddings=embeddings,
        arch_type=arch_type, k=5, n_blocks=3, d_block=24, dropout=0.0,
    )  # fmt: skip
    if bins is not None:  # the bin edges mlplab computed are the package's
        impl = theirs.num_module.impl
        torch.testing.assert_close(ours.features.embeddings.encoding_weight, impl.weight)
        torch.testing.assert_close(ours.features.embeddings.encoding_bias, impl.bias)
    copy_from(theirs, ours)
    ours.eval(), theirs.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(x_num, x_cat), theirs(x_num, x_cat), atol=1e-5, rtol=1e-5)


def test_mlp_matches_the_package_mlp_backbone_and_a_linear_head():
    x_num, x_cat = table()
    ours = TabularMLP(3, (4, 2), 1, depth=2, embed_dim=16, dropout=0.0)
    backbone = tabm.MLPBackbone(d_in=3 + 4 + 2, n_blocks=2, d_block=16, dropout=0.0)
    head = torch.nn.Linear(16, 1)
    for (name, mine), theirs in zip(ours.named_parameters(), [*backbone.parameters(), *head.parameters()]):
        assert mine.shape == theirs.shape, name
        mine.data.copy_(theirs.data)
    one_hot = torch.cat(
        [torch.nn.functional.one_hot(x_cat[:, 0], 4), torch.nn.functional.one_hot(x_cat[:, 1], 2)], 1
    )
    ours.eval(), backbone.eval()
    with torch.no_grad():
        expected = head(backbone(torch.cat([x_num, one_hot.float()], 1)))
        torch.testing.assert_close(ours(x_num, x_cat), expected)


def test_bins_are_the_packages_quantile_bins_even_with_few_distinct_values():
    x_num, _ = table()
    x_num[:, 1] = torch.randint(0, 4, (len(x_num),)).float()  # four distinct values: three bins
    ours = compute_bins(x_num, 10)
    theirs = rtdl.compute_bins(x_num, n_bins=10)
    assert [len(e) for e in ours] == [len(e) for e in theirs] and len(ours[1]) == 4
    for mine, reference in zip(ours, theirs):
        torch.testing.assert_close(mine, reference)
    embedding = PiecewiseLinearEmbeddings(3, 10, 4)
    embedding.set_bins(ours)
    reference = rtdl.PiecewiseLinearEmbeddings(theirs, 4, activation=False, version="B")
    torch.testing.assert_close(embedding.encode(x_num), reference.impl(x_num))


def test_tabm_initialisation_follows_the_package():
    model = TabM(3, (4, 2), 2, ensemble_size=8, depth=2, embed_dim=16)
    first = model.blocks[0].linear
    r = first.r.detach()
    assert set(r.unique().tolist()) <= {-1.0, 1.0}  # random signs without embeddings
    assert (r[:, 3:7] == r[:, 3:4]).all() and (r[:, 7:9] == r[:, 7:8]).all()  # one sign per feature
    assert (model.blocks[1].linear.r == 1).all() and (first.s == 1).all()
    assert (first.bias == first.bias[0]).all()  # biases equal across members
    assert (first.weight[:, [3, 7]] == 0).all()  # the unknown codes' columns start at zero


def test_refusals_name_the_argument():
    with pytest.raises(ConfigError, match="arch_type must be tabm, tabm-mini or tabm-packed"):
        TabM(3, (4,), 2, arch_type="tabm-huge")
    with pytest.raises(ConfigError, match="ensemble_size must be a positive integer, got 0"):
        TabM(3, (4,), 2, ensemble_size=0)
    with pytest.raises(ConfigError, match="no feature columns"):
        TabularMLP(0, (), 2)
    with pytest.raises(ConfigError, match=r"built for 3 numeric and 1 categorical columns"):
        TabM(3, (4,), 2, ensemble_size=2, depth=1, embed_dim=8)(torch.randn(2, 5), torch.zeros(2, 1).long())
    with pytest.raises(ConfigError, match="constant in the training split"):
        compute_bins(torch.ones(20, 2), 4)
