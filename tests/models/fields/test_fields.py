"""The neural-field families against their papers' formulas (what the registry tests do not check)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mlplab.errors import ConfigError
from mlplab.models import CAM, SIREN, CoordinateMLP, FreSh, GaussianRBFNet
from mlplab.models.fields.common import FourierFeatures, PositionalEncoding
from mlplab.models.fields.rbfnet import MultiResolutionGrid


def test_fourier_features_are_tanciks_on_coordinates_in_zero_one():
    torch.manual_seed(0)
    features = FourierFeatures(2, 5, frequency_scale=3.0)
    coords = torch.rand(7, 2) * 2 - 1
    phase = 2 * math.pi * ((coords + 1) / 2) @ (3.0 * features.matrix)
    torch.testing.assert_close(features(coords), torch.cat([phase.sin(), phase.cos()], -1))
    features.set_frequency_scale(1.5)
    assert "frequency_scale" in features.state_dict() and features.frequency_scale.item() == 1.5


def test_positional_encoding_keeps_the_input_and_doubles_octaves():
    encoding = PositionalEncoding(2, 3)
    coords = torch.tensor([[0.25, -0.5]])
    out = encoding(coords)
    assert out.shape == (1, 2 * (1 + 2 * 3)) and encoding.out_features == out.shape[1]
    torch.testing.assert_close(out[0, :2], coords[0])
    torch.testing.assert_close(
        out[0, 2:8], torch.sin(torch.tensor([1, 2, 4, 1, 2, 4]) * math.pi * coords[0].repeat_interleave(3))
    )


def test_siren_initialisation_and_output_scale():
    torch.manual_seed(0)
    model = SIREN((2,), (1,), embed_dim=64, depth=3, first_omega=30.0)
    first, hidden = model.layers[0].linear, model.layers[1].linear
    assert first.weight.abs().max() <= 1 / 2 and hidden.weight.abs().max() <= math.sqrt(6 / 64) / 30
    coords = torch.rand(5, 2) * 2 - 1
    raw = model.head(model.layers(coords))
    torch.testing.assert_close(model(coords), (raw + 1) / 2)  # [-1, 1] of the official code -> [0, 1]
    model.set_frequency_scale(12.0)
    assert model.frequency_scale.item() == 12.0
    torch.testing.assert_close(model.layers[0](coords), torch.sin(12.0 * first(coords)))


def test_cam_at_initialisation_is_a_normalised_ffn_and_reads_its_grid_bilinearly():
    torch.manual_seed(0)
    model = CAM((2,), (3,), embed_dim=8, depth=1, num_frequencies=4, grid_size=3)
    layer = model.layers[0]
    h, coords = torch.randn(6, 8), torch.rand(6, 2) * 2 - 1
    # the official normalisation: F.instance_norm over a (1, pixels, features) tensor
    official = F.relu(F.instance_norm(layer.linear(h)[None])[0])
    torch.testing.assert_close(layer(h, coords), official, atol=1e-5, rtol=1e-5)
    assert (
        layer.grid.detach().mul(10).eq(torch.cat([torch.ones(1, 1, 3, 3), torch.zeros(1, 1, 3, 3)], 1)).all()
    )
    with torch.no_grad():  # gamma = 1, beta ramps with the column: read at the corners and the centre
        layer.grid[0, 1] = torch.tensor([[0.0, 1.0, 2.0]] * 3) / layer.multiplier
        layer.linear.weight.zero_()
        layer.linear.bias.zero_()
    corners = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [0.0, 0.0]])
    shifted = layer(torch.zeros(3, 8), corners)  # a zero layer normalises to zeros: relu(beta)
    torch.testing.assert_close(shifted[:, 0], torch.tensor([0.0, 2.0, 1.0]))


def test_gaussian_rbf_responses_match_the_direct_formula():
    torch.manual_seed(0)
    model = GaussianRBFNet((2,), (1,), num_levels=2, features_per_level=2, base_resolution=4,
                           max_resolution=8, num_rbfs=3)  # fmt: skip
    with torch.no_grad():
        for p in [*model.centres, *model.log_precisions, *model.encoding.grids]:
            p.normal_()
    coords = torch.rand(5, 2) * 2 - 1
    features = model.encoding(coords)
    responses = []
    for level in range(2):
        f = features[:, : 2 * (level + 1)]
        c = torch.cat(list(model.centres[: level + 1]), -1)
        beta = torch.cat(list(model.log_precisions[: level + 1]), -1).exp()
        responses.append(torch.exp(-0.5 * (beta * (f[:, None] - c) ** 2).sum(-1)))
    torch.testing.assert_close(model(coords), model.head(torch.cat(responses, -1)), atol=1e-5, rtol=1e-5)


def test_multi_resolution_grid_is_the_official_grid_encoder_lattice():
    # gridencoder (hashgrid, align_corners false): level l has scale base * g^l - 1, ceil(scale) + 2 vertices
    # per side, and reads coordinate c at vertex position (c + 1) / 2 * scale + 1/2
    grid = MultiResolutionGrid(num_levels=3, features_per_level=1, base_resolution=4, max_resolution=16)
    assert grid.resolutions == [4, 8, 16] and grid.scales == [3.0, 7.0, 15.0]
    assert [tuple(g.shape) for g in grid.grids] == [(1, 1, 5, 5), (1, 1, 9, 9), (1, 1, 17, 17)]
    with torch.no_grad():
        for g in grid.grids:
            g.zero_()
        grid.grids[0].copy_(torch.arange(25.0).view(1, 1, 5, 5))  # vertex (row, column) holds 5 row + column
    coords = torch.tensor([[0.0, 0.0], [-1.0, 1.0], [1.0, -1.0]])
    # centre: vertex position 2 along both, vertex (2, 2); (-1, 1): rows 0.5, columns 3.5, between
    # vertices 0..1 and 3..4 (mean of 3, 4, 8, 9); (1, -1): rows 3.5, columns 0.5 (mean of 15, 16, 20, 21)
    torch.testing.assert_close(grid(coords)[:, 0], torch.tensor([12.0, 6.0, 18.0]))
    # the kernel's float32 scale at the last level of the image variant: 511 exactly, so 512 (not 513)
    assert MultiResolutionGrid(8, 1, 16, 512).resolutions == [16, 27, 44, 71, 116, 191, 313, 512]


def test_fresh_and_encodings_are_refused_where_they_make_no_sense():
    with pytest.raises(ConfigError, match="fresh needs an encoding"):
        CoordinateMLP((2,), (3,), encoding="none", fresh=FreSh())
    with pytest.raises(ConfigError, match="encoding must be fourier, positional or none"):
        CoordinateMLP((2,), (3,), encoding="hash")
    with pytest.raises(ConfigError, match="has no frequency scale for FreSh"):
        GaussianRBFNet.__mro__[1].__init__(GaussianRBFNet.__new__(GaussianRBFNet), (2,), (3,), fresh=FreSh())
    with pytest.raises(ConfigError, match="fresh.candidates must be positive"):
        FreSh(candidates=[0.0])
    with pytest.raises(ConfigError, match="maps coordinates"):
        SIREN((2, 2), (3,))


@pytest.mark.parametrize("family", [CAM, GaussianRBFNet])
def test_a_family_that_reads_2d_grids_refuses_other_coordinates(family):
    with pytest.raises(
        ConfigError, match=rf"^{family.__name__} reads 2-D grids: input_shape must be \(2,\), got \(3,\)$"
    ):
        family((3,), (3,))
    assert SIREN((3,), (1,), embed_dim=4, depth=1).in_features == 3  # a field without grids takes any
