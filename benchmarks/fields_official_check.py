"""The neural-field families against their official code, weight for weight.

Builds each official model from a local checkout of its repository (not part of mlplab), copies its
weights into mlplab's family of the same configuration (renaming the keys), and compares the outputs
in evaluation mode and the gradients of every weight under one loss (the mean square of the outputs),
on random coordinates, on the CPU in float32. Parameter counts are compared too.

* ``--siren``: a checkout of github.com/vsitzmann/siren. SIREN against the ``Siren`` class of
  ``explore_siren.ipynb`` (``first_omega_0``, ``hidden_omega_0``) and against ``modules.py``'s
  ``SingleBVPNet(type="sine")`` (the training scripts' model; ``sin(30 x)`` everywhere). ``modules.py``
  imports ``torchmeta``, which is stubbed when missing (its meta-layers are plain layers without
  ``params``). mlplab returns ``(y + 1) / 2`` (colours in [0, 1]), so its output is mapped back with
  ``2 out - 1`` before the comparison.
* ``--cam``: a checkout of github.com/maincold2/CAM. CAM and its FFN baseline (mlplab's
  ``CoordinateMLP`` with Fourier features) against ``CAM_image.py``'s ``CAM`` and ``FFN`` as
  ``train_image`` builds them (``scale=-1``). The official models take coordinates ``v`` in [0, 1]
  and mlplab ``2 v - 1``; the Fourier matrix is stored times 2π there (``proj``), and its grids are
  read with ``v[0]`` along the width, where mlplab reads the first coordinate along the height, so
  the grids are copied transposed.
* ``--fourier``: a checkout of github.com/tancik/fourier-feature-networks. ``Demo.ipynb``'s
  ``input_mapping`` (run on NumPy, in float64) against ``CoordinateMLP``'s encoding with the same matrix
  ``B``; then, if JAX imports (``--jax-path DIR`` after ``pip install --target DIR jax jaxlib``), the
  Demo's network ``make_network(4, 256)`` (stax, JAX on the CPU) on ``input_mapping`` against
  ``CoordinateMLP`` ``ffn`` with the same ``B`` and weights: outputs and gradients of the Demo's loss, in
  float32 and float64.
* ``--rbfnet``: a checkout of github.com/AbdelazizBouzidi/GNF. GaussianRBFNet's decoder against
  ``models/gnf_fields.py``'s ``RBFDecoder`` (per level, and ``per_level: false`` as one level), fed
  mlplab's grid features; then its grids against ``gridencoder/grid.py``'s ``GridEncoder`` (hashgrid,
  ``align_corners: false``) and the whole field against ``models/network.py``'s
  ``NeuralFieldNetwork(GridEncoder, RBFDecoder)``. ``GridEncoder`` runs as committed except its CUDA
  kernels (compiled with nvcc on import), which the check replaces by a line-by-line PyTorch
  transcription of ``gridencoder.cu``'s ``kernel_grid`` / ``kernel_grid_backward`` (a stand-in
  ``_gridencoder`` module): that part compares mlplab with the transcription, not with the kernel run.
* ``--fresh``: a checkout of github.com/gmum/FreSh. FreSh's spectrum and Wasserstein distance against
  ``scripts/find_optimal_config.py``'s (``get_spectrum(resize_to_square(image))``, ``get_wasserstein``).

Run from the repository root, e.g.::

    pip install --target /tmp/jax jax jaxlib
    python benchmarks/fields_official_check.py --siren ~/src/siren --cam ~/src/CAM \\
        --fourier ~/src/fourier-feature-networks --jax-path /tmp/jax --rbfnet ~/src/GNF --fresh ~/src/FreSh

Prints one JSON line per model: parameters (ours, official), the largest output difference, the
largest relative gradient difference, and whether they agree to 1e-5 (outputs absolute, gradients
relative to each weight's largest official gradient; FreSh: spectra relative to the largest value,
distances relative). Exits with status 1 when a comparison misses the bound.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import types
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import official_code
import torch
from official_code import load_module
from torch import Tensor, nn

from mlplab.models import count_parameters, registry
from mlplab.models.fields.cam import CAM
from mlplab.models.fields.coordinate_mlp import CoordinateMLP
from mlplab.models.fields.rbfnet import GaussianRBFNet
from mlplab.models.fields.siren import SIREN


def compare(
    official: nn.Module,
    ours: nn.Module,
    convert: Callable[[dict[str, Tensor]], dict[str, Tensor]],
    run_official: Callable[[nn.Module], Tensor],
    run_ours: Callable[[nn.Module], Tensor],
    convert_gradients: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
    ours_only: tuple[str, ...] = (),
) -> dict:
    """Copy the official weights into ours; compare outputs (eval) and gradients (eval, one loss).

    ``convert`` maps the official state dict (names and layouts) to ours, the whole of it; the official
    gradients go through ``convert_gradients`` (default: the same conversion; a weight mlplab stores
    divided by a factor has its gradient multiplied by it) before the comparison. Weights whose names
    start with one of ``ours_only`` have no official counterpart: they keep their values and their
    gradients are not compared.
    """
    own = ours.state_dict()
    state = convert(official.state_dict())
    for key, value in state.items():
        if key not in own or own[key].shape != value.shape:
            raise KeyError(f"{key} {tuple(value.shape)} (from the official weights) is not one of mlplab's")
    parameters = dict(ours.named_parameters())
    # mlplab's own buffers (omega, frequency_scale) are built from the same settings
    for key, value in own.items():
        if key not in state and (key not in parameters or (ours_only and key.startswith(ours_only))):
            state[key] = value
    ours.load_state_dict(state, strict=True)
    official.eval(), ours.eval()
    out_official, out_ours = run_official(official), run_ours(ours)
    out_ours = out_ours.reshape(out_official.shape)
    out_official.square().mean().backward()
    out_ours.square().mean().backward()
    official_gradients = (convert_gradients or convert)(
        {key: p.grad for key, p in official.named_parameters()}
    )
    gradient_gap = 0.0
    for key, parameter in ours.named_parameters():
        if ours_only and key.startswith(ours_only):
            continue
        theirs = official_gradients[key]
        scale = theirs.abs().max().clamp_min(1e-12)
        gradient_gap = max(gradient_gap, float((parameter.grad - theirs).abs().max() / scale))
    output_gap = float((out_ours - out_official).detach().abs().max())
    return {
        "params_ours": count_parameters(ours)[0],
        "params_official": sum(p.numel() for p in official.parameters()),
        "max_output_difference": output_gap,
        "max_relative_gradient_difference": gradient_gap,
        "agree_1e-5": output_gap < 1e-5 and gradient_gap < 1e-5,
    }


def renamer(mapping: Callable[[str], str | None]) -> Callable[[dict[str, Tensor]], dict[str, Tensor]]:
    """A conversion that renames every official tensor by ``mapping`` (``None``: leave it out)."""

    def convert(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        return {mapping(key): value for key, value in tensors.items() if mapping(key) is not None}

    return convert


# ------------------------------------------------------------------------------------------------
# SIREN (vsitzmann/siren)
# ------------------------------------------------------------------------------------------------


def notebook_siren(checkout: Path) -> type[nn.Module]:
    """The ``SineLayer`` and ``Siren`` classes of ``explore_siren.ipynb`` (their code cell, executed)."""
    notebook = json.loads((checkout / "explore_siren.ipynb").read_text())
    cells = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    source = next(cell for cell in cells if "class SineLayer" in cell and "class Siren" in cell)
    namespace = {"torch": torch, "nn": nn, "np": __import__("numpy"), "OrderedDict": OrderedDict}
    exec(compile(source, str(checkout / "explore_siren.ipynb"), "exec"), namespace)
    return namespace["Siren"]


def torchmeta_stub() -> None:
    """``torchmeta``'s names that ``modules.py`` imports, as plain modules (used without ``params``)."""
    try:
        import torchmeta.modules  # noqa: F401

        return
    except ImportError:
        pass

    class MetaModule(nn.Module):
        pass

    class MetaSequential(nn.Sequential, MetaModule):
        def forward(self, input, params=None):  # noqa: A002 - torchmeta's signature
            for module in self:
                input = module(input, params=None) if isinstance(module, MetaModule) else module(input)
            return input

    package, modules, utils = (
        types.ModuleType(n) for n in ("torchmeta", "torchmeta.modules", "torchmeta.modules.utils")
    )
    modules.MetaModule, modules.MetaSequential = MetaModule, MetaSequential
    utils.get_subdict = lambda params, key=None: None
    sys.modules |= {"torchmeta": package, "torchmeta.modules": modules, "torchmeta.modules.utils": utils}


def check_siren(checkout: Path) -> list[dict]:
    Siren = notebook_siren(checkout)
    torchmeta_stub()
    official_modules = load_module(checkout / "modules.py", "official_siren_modules")
    coords = torch.rand(64, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    rows = []
    for variant, channels, omegas in [("image", 1, (30.0, 30.0)), ("image", 3, (30.0, 30.0)),
                                      ("tiny", 1, (30.0, 30.0)), ("image", 3, (20.0, 45.0))]:  # fmt: skip
        args = dict(registry.get("SIREN").variants[variant].args)
        args |= {"first_omega": omegas[0], "hidden_omega": omegas[1]}
        depth = args["depth"]
        torch.manual_seed(0)
        official = Siren(in_features=2, hidden_features=args["embed_dim"], hidden_layers=depth - 1,
                         out_features=channels, outermost_linear=True, first_omega_0=omegas[0],
                         hidden_omega_0=omegas[1])  # fmt: skip
        ours = SIREN((2,), (channels,), **args)

        def notebook_name(key: str, depth: int = depth) -> str:
            index, rest = key.split(".", 2)[1:]
            index = int(index)
            return f"layers.{index}.{rest}" if index < depth else f"head.{rest.split('.')[-1]}"

        row = compare(official, ours, renamer(notebook_name), lambda m: m(coords)[0],
                      lambda m: 2 * m(coords) - 1)  # fmt: skip
        rows.append({"family": "SIREN", "variant": f"{variant}, {channels} channel(s), omega {omegas}",
                     "official": "explore_siren.ipynb Siren", **row})  # fmt: skip
    args = dict(registry.get("SIREN").variants["image"].args)
    torch.manual_seed(0)
    official = official_modules.SingleBVPNet(
        out_features=3, type="sine", in_features=2, mode="mlp", hidden_features=args["embed_dim"],
        num_hidden_layers=args["depth"] - 1,
    )  # fmt: skip
    ours = SIREN((2,), (3,), **args)
    depth = args["depth"]

    def module_name(key: str) -> str | None:  # net.net.<i>.0.<weight|bias>
        parts = key.split(".")
        index = int(parts[2])
        return f"layers.{index}.linear.{parts[-1]}" if index < depth else f"head.{parts[-1]}"

    row = compare(official, ours, renamer(module_name), lambda m: m({"coords": coords})["model_out"],
                  lambda m: 2 * m(coords) - 1)  # fmt: skip
    official_name = "modules.py SingleBVPNet(type='sine')"
    rows.append({"family": "SIREN", "variant": "image, 3 channels", "official": official_name, **row})
    return rows


# ------------------------------------------------------------------------------------------------
# CAM and its FFN baseline (maincold2/CAM)
# ------------------------------------------------------------------------------------------------


def cam_converter(
    modulated: bool, gradients: bool = False
) -> Callable[[dict[str, Tensor]], dict[str, Tensor]]:
    """``CAM_image.py``'s CAM / FFN tensors (or their ``gradients``) -> mlplab's CAM / CoordinateMLP."""
    grid_factor = 10.0 if gradients else 0.1  # mlplab keeps the grids divided by grid_lr_multiplier (10)

    def convert(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        converted = {}
        for key, value in tensors.items():
            if key == "pos_enc.proj":
                converted["encoding.matrix"] = value / (2 * math.pi)
            elif key.startswith("FC_final."):
                converted[f"head.{key.split('.')[-1]}"] = value
            elif modulated and key.endswith(".affine"):  # stored divided by the learning-rate multiplier
                index = int(key.split(".")[0][3:])
                converted[f"layers.{index}.grid"] = value.transpose(-1, -2) * grid_factor
            elif modulated:
                index = int(key.split(".")[0][3:])
                converted[f"layers.{index}.linear.{key.split('.')[-1]}"] = value
            else:  # CoordinateMLP: Linear, ReLU, Linear, ReLU, ...
                index = int(key.split(".")[0][3:])
                converted[f"layers.{2 * index}.{key.split('.')[-1]}"] = value
        return converted

    return convert


def check_cam(checkout: Path) -> list[dict]:
    official_module = load_module(checkout / "CAM_image.py", "official_cam_image")
    generator = torch.Generator().manual_seed(0)
    unit = torch.rand(1, 128, 2, generator=generator)  # the official coordinates, in [0, 1]
    coords = unit[0] * 2 - 1  # mlplab's, in [-1, 1]
    rows = []
    for family, variant, official_class in [(CAM, "image", official_module.CAM),  # grids 32 x 32, fixed there
                                            (CoordinateMLP, "ffn", official_module.FFN),
                                            (CoordinateMLP, "tiny", official_module.FFN)]:  # fmt: skip
        args = dict(registry.get(family.__name__).variants[variant].args)
        torch.manual_seed(0)
        official = official_class(in_features=2, out_features=3, hidden_features=args["embed_dim"],
                                  num_layers=args["depth"], num_frequencies=args["num_frequencies"],
                                  sigma=args.get("frequency_scale", 10.0), scale=-1)  # fmt: skip
        ours = family((2,), (3,), **args)
        convert, gradients = cam_converter(family is CAM), cam_converter(family is CAM, gradients=True)
        row = compare(official, ours, convert, lambda m: m(unit)[0], lambda m: m(coords), gradients)
        rows.append({"family": family.__name__, "variant": variant,
                     "official": f"CAM_image.py {official_class.__name__}", **row})  # fmt: skip
    return rows


# ------------------------------------------------------------------------------------------------
# Gaussian RBFNet (AbdelazizBouzidi/GNF): the decoder
# ------------------------------------------------------------------------------------------------


def gnf_decoder_class(checkout: Path) -> type[nn.Module]:
    """``RBFDecoder`` of ``models/gnf_fields.py``, its class alone (the file imports CUDA encoders)."""
    source = (checkout / "models" / "gnf_fields.py").read_text()
    start, end = source.index("class RBFDecoder"), source.index("class GNFRenderer")
    namespace = {"torch": torch, "nn": nn}
    exec(compile(source[start:end], str(checkout / "models" / "gnf_fields.py"), "exec"), namespace)
    return namespace["RBFDecoder"]


def official_rbf_decoder(RBFDecoder: type, units: int, features: int, levels: int, generator) -> nn.Module:
    """``RBFDecoder(units, 3, features, "gaussian")``, per level if ``levels > 1``; random centres, betas.

    At the checked commit ``RBFDecoder.__init__`` calls ``_init_multi_level(n_rbfs, num_features,
    out_dim)``, which takes ``num_levels`` too, so ``per_level=True`` cannot be built as committed: it is
    built with ``per_level=False`` and then ``_init_multi_level`` is called with ``num_levels`` here.
    """
    official = RBFDecoder(units, 3, features, "gaussian", per_level=False, device="cpu")
    if levels > 1:
        official.per_level = True
        official.centers, official.betas, official.betas_shifts = (
            nn.ModuleList(),
            nn.ParameterList(),
            nn.ParameterList(),
        )
        official.weighted_sums = nn.ModuleList()
        official._init_multi_level(units, features, levels, 3)
    with torch.no_grad():
        for embedding in official.centers:
            embedding.weight.normal_(generator=generator)
        for beta in official.betas:
            beta.normal_(std=0.3, generator=generator)
    official.indices = torch.arange(units)
    return official


def rbf_decoder_state(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """mlplab's names of ``RBFDecoder``'s tensors (``betas_shifts``: never used in the official forward)."""
    converted = {}
    for key, value in tensors.items():
        parts = key.split(".")
        if parts[0] == "centers":
            converted[f"centres.{parts[1]}"] = value
        elif parts[0] == "betas":
            converted[f"log_precisions.{parts[1]}"] = value
        elif parts[0] == "weighted_sums":
            converted[f"head.{parts[-1]}"] = value
    return converted


def check_rbfnet(checkout: Path) -> list[dict]:
    """The RBF decoder on mlplab's grid features; then the grids and the whole model (``hashgrid``).

    ``per_level=False`` (the image configuration ``configs/rgb.yaml``: one group of ``n_rbfs`` units over
    all features) is mlplab's ``num_levels: 1``.
    """
    RBFDecoder = gnf_decoder_class(checkout)
    generator = torch.Generator().manual_seed(0)
    coords = torch.rand(128, 2, generator=generator) * 2 - 1
    rows = []
    for variant, levels in [("image", None), ("tiny", None), ("image, one level (per_level false)", 1)]:
        args = dict(registry.get("GaussianRBFNet").variants[variant.split(",")[0]].args)
        if levels is not None:
            args["num_levels"] = levels
        levels, features, units = args["num_levels"], args["features_per_level"], args["num_rbfs"]
        torch.manual_seed(0)
        ours = GaussianRBFNet((2,), (3,), **args)
        with torch.no_grad():  # features, centres and precisions away from their near-zero start
            for grid in ours.encoding.grids:
                grid.normal_(generator=generator)
        official = official_rbf_decoder(RBFDecoder, units, features, levels, generator)
        features_in = ours.encoding(coords).detach()
        row = compare(official, ours, rbf_decoder_state, lambda m, f=features_in: m(None, f),
                      lambda m: m(coords), ours_only=("encoding.",))  # fmt: skip
        unused = sum(p.numel() for key, p in official.named_parameters() if key.startswith("betas_shifts"))
        row["params_ours"] -= sum(p.numel() for p in ours.encoding.parameters())
        rows.append({"family": "GaussianRBFNet", "variant": f"{variant}: decoder ({levels} level(s))",
                     "official": "models/gnf_fields.py RBFDecoder", **row,
                     "official_params_never_used": unused})  # fmt: skip
    rows += check_rbfnet_grids(checkout, RBFDecoder)
    return rows


# The CUDA kernels of gridencoder/src/gridencoder.cu (kernel_grid, kernel_grid_backward, get_grid_index,
# fast_hash), transcribed into PyTorch line by line for linear interpolation: the official GridEncoder
# compiles them with nvcc when imported, which a CPU cannot run. D-dimensional, hashing included.
PRIMES = (1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737)


def _kernel_corners(inputs: Tensor, offsets: Tensor, level: int, S: float, H: int, gridtype: int,
                    align_corners: bool, dtype: torch.dtype):  # fmt: skip
    """Per corner of a level's cell: (weight (B,), row of ``embeddings`` (B,)), and the in-range mask."""
    D = inputs.shape[1]
    hashmap_size = int(offsets[level + 1] - offsets[level])
    if dtype == torch.float32:  # exp2f(level * S) * H - 1.0f, in float32 as there
        level_times_s = torch.tensor(level, dtype=torch.float32) * torch.tensor(S, dtype=torch.float32)
        scale = float(torch.exp2(level_times_s) * H - 1.0)
    else:
        scale = float(2.0 ** (level * S) * H - 1.0)
    resolution = math.ceil(scale) + 1
    position = inputs.to(dtype) * scale + (0.0 if align_corners else 0.5)
    grid_position = position.floor()
    position = position - grid_position
    grid_position = grid_position.long()
    corners = []
    for idx in range(1 << D):
        weight = torch.ones(len(inputs), dtype=dtype)
        local = []
        for d in range(D):
            if idx & (1 << d) == 0:
                weight = weight * (1 - position[:, d])
                local.append(grid_position[:, d])
            else:
                weight = weight * position[:, d]
                local.append(grid_position[:, d] + 1)
        stride, index = 1, torch.zeros(len(inputs), dtype=torch.long)
        for d in range(D):
            if stride > hashmap_size:
                break
            index = index + local[d] * stride
            stride *= resolution if align_corners else resolution + 1
        if gridtype == 0 and stride > hashmap_size:
            index = torch.zeros(len(inputs), dtype=torch.long)
            for d in range(D):
                index = index ^ ((local[d] * PRIMES[d]) & 0xFFFFFFFF)
        corners.append((weight, int(offsets[level]) + index % hashmap_size))
    inside = ((inputs >= 0) & (inputs <= 1)).all(dim=1)
    return corners, inside


def fake_gridencoder_backend() -> types.ModuleType:
    """A ``_gridencoder`` module whose two functions run the transcribed kernels (linear, no ``dy_dx``)."""

    def forward(inputs, embeddings, offsets, outputs, B, D, C, L, S, H, dy_dx, gridtype, align_corners,
                interpolation):  # fmt: skip
        assert interpolation == 0 and dy_dx is None, "transcribed: linear interpolation, no input gradient"
        for level in range(L):
            corners, inside = _kernel_corners(inputs, offsets, level, S, H, gridtype, align_corners,
                                              embeddings.dtype)  # fmt: skip
            result = sum(weight[:, None] * embeddings[index] for weight, index in corners)
            outputs[level] = torch.where(inside[:, None], result, torch.zeros_like(result))

    def backward(grad, inputs, embeddings, offsets, grad_embeddings, B, D, C, L, S, H, dy_dx, grad_inputs,
                 gridtype, align_corners, interpolation):  # fmt: skip
        for level in range(L):
            corners, inside = _kernel_corners(inputs, offsets, level, S, H, gridtype, align_corners,
                                              embeddings.dtype)  # fmt: skip
            for weight, index in corners:  # atomicAdd(&grad_grid[index + c], w * grad_cur[c]), in range only
                grad_embeddings.index_add_(0, index[inside], weight[inside, None] * grad[level][inside])

    return types.SimpleNamespace(grid_encode_forward=forward, grid_encode_backward=backward)


def official_grid_encoder(checkout: Path) -> type[nn.Module]:
    """``gridencoder/grid.py``'s ``GridEncoder`` as committed, its CUDA backend the transcription above."""
    sys.modules["_gridencoder"] = fake_gridencoder_backend()
    try:
        module = load_module(checkout / "gridencoder" / "grid.py", "official_gridencoder")
    finally:
        del sys.modules["_gridencoder"]
    return module.GridEncoder


def check_rbfnet_grids(checkout: Path, RBFDecoder: type) -> list[dict]:
    """mlplab's grids against ``GridEncoder`` (``hashgrid``, ``align_corners: false`` as configs/rgb.yaml).

    Official inputs are (x, y) with x along the fastest index; mlplab's are (row, column): the official
    model is fed ``coords.flip(-1)``, and its level table rows ``offsets[l] + x + y (r + 1)`` are mlplab's
    grid ``[y, x]``. The rows each level adds to reach a multiple of 8 are never read (zero gradient).
    Rows: the encoding alone (features out), and the whole field ``NeuralFieldNetwork(GridEncoder,
    RBFDecoder)`` of ``models/network.py`` (``main_rgb.py --encoder hashgrid``).
    """
    GridEncoder = official_grid_encoder(checkout)
    network = load_module(checkout / "models" / "network.py", "official_gnf_network")
    generator = torch.Generator().manual_seed(1)
    coords = torch.rand(256, 2, generator=generator) * 2 - 1
    coords[:4] = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [0.0, 0.0]])  # the corners and centre
    rows = []
    for variant, whole in [("image", False), ("tiny", False), ("image", True), ("tiny", True)]:
        args = dict(registry.get("GaussianRBFNet").variants[variant].args)
        levels, features, units = args["num_levels"], args["features_per_level"], args["num_rbfs"]
        torch.manual_seed(0)
        encoder = GridEncoder(input_dim=2, num_levels=levels, level_dim=features,
                              base_resolution=args["base_resolution"],
                              desired_resolution=args["max_resolution"], log2_hashmap_size=19,
                              gridtype="hash", align_corners=False)  # fmt: skip
        with torch.no_grad():
            encoder.embeddings.normal_(generator=generator)
        ours = GaussianRBFNet((2,), (3,), **args)
        offsets = encoder.offsets.tolist()

        def convert(tensors: dict[str, Tensor], offsets=offsets, ours=ours, prefix="encoder.") -> dict:
            converted = rbf_decoder_state(
                {key.removeprefix("decoder."): v for key, v in tensors.items() if key.startswith("decoder.")}
            )
            table = tensors[f"{prefix}embeddings"]
            for level, grid in enumerate(ours.encoding.grids):
                side = grid.shape[-1]
                rows_of_level = table[offsets[level] : offsets[level] + side * side]
                converted[f"encoding.grids.{level}"] = rows_of_level.t().reshape(1, -1, side, side)
            return converted

        if whole:
            decoder = official_rbf_decoder(RBFDecoder, units, features, levels, generator)
            official = network.NeuralFieldNetwork(encoder, decoder)
            row = compare(official, ours, convert, lambda m: m(coords.flip(-1)), lambda m: m(coords))
            name = (
                "whole field: NeuralFieldNetwork(GridEncoder, RBFDecoder), GridEncoder's kernel transcribed"
            )
        else:
            official = encoder

            def convert_grids(tensors: dict[str, Tensor], convert=convert) -> dict[str, Tensor]:
                return {k.removeprefix("encoding."): v for k, v in convert(tensors, prefix="").items()}

            row = compare(
                official, ours.encoding, convert_grids, lambda m: m(coords.flip(-1)), lambda m: m(coords)
            )
            name = "encoding: GridEncoder (hashgrid, align_corners false), its CUDA kernel transcribed"
        row["official_params_never_used"] = (
            int(encoder.embeddings.numel())
            - sum(g.numel() for g in ours.encoding.grids)
            + (sum(p.numel() for k, p in official.named_parameters() if "betas_shifts" in k) if whole else 0)
        )
        rows.append({"family": "GaussianRBFNet", "variant": f"{variant}: {name}",
                     "official": "gridencoder/grid.py GridEncoder" + (" + RBFDecoder" if whole else ""),
                     **row})  # fmt: skip
    return rows


# ------------------------------------------------------------------------------------------------
# Fourier features (tancik/fourier-feature-networks, JAX)
# ------------------------------------------------------------------------------------------------


def demo_cell(checkout: Path, marker: str) -> str:
    """The code cell of ``Demo.ipynb`` that holds ``marker``."""
    notebook = json.loads((checkout / "Demo.ipynb").read_text())
    cells = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    return next(cell for cell in cells if marker in cell)


def check_fourier(checkout: Path, jax_path: Path | None = None) -> list[dict]:
    """The feature map on NumPy (float64); then, if JAX imports, the whole network of ``Demo.ipynb``.

    The Demo's cell with ``input_mapping`` and ``make_network`` (stax: ``num_layers - 1`` Dense + Relu,
    Dense(3), Sigmoid) is executed as written with ``np`` = ``jax.numpy``; the Demo's image network
    ``make_network(4, 256)`` on ``input_mapping(x, B)`` with ``B`` 256 x 2, sigma 10, is mlplab's ``ffn``
    variant. Its weights are copied into mlplab's (stax ``Dense`` keeps ``W`` as (in, out): transposed),
    and outputs and every weight's gradient of the Demo's loss ``.5 mean((pred - y)^2)`` (random
    targets) are compared, in float32 and in float64.
    """
    import numpy

    source = demo_cell(checkout, "def input_mapping")
    start = source.index("def input_mapping")
    end = source.index("\n\n", start)
    namespace = {"np": numpy}
    exec(compile(source[start:end], str(checkout / "Demo.ipynb"), "exec"), namespace)
    ours = CoordinateMLP((2,), (3,), **registry.get("CoordinateMLP").variants["ffn"].args).encoding
    coords = torch.rand(128, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    v = ((coords + 1) / 2).double().numpy()  # the Demo's coordinates are in [0, 1]
    ours = ours.double()  # at sigma = 10 the phases reach hundreds of radians: float32 rounds them to ~3e-5
    matrix = (ours.matrix * ours.frequency_scale).T.numpy()  # the Demo's B: (mapping_size, 2)
    official = torch.from_numpy(namespace["input_mapping"](v, matrix))
    gap = float((ours(coords.double()) - official).abs().max())
    variant = "ffn: Fourier feature map only (float64)"
    rows = [{"family": "CoordinateMLP", "variant": variant, "official": "Demo.ipynb input_mapping",
             "max_output_difference": gap, "agree_1e-5": gap < 1e-5}]  # fmt: skip
    if jax_path is not None:
        sys.path.append(str(jax_path))
    try:
        import jax
    except ImportError:
        print(
            "fields_official_check: jax not importable (--jax-path): the JAX network is skipped",
            file=sys.stderr,
        )
        return rows
    jax.config.update("jax_enable_x64", True)  # float64 arrays stay float64; float32 ones stay float32
    rows += check_fourier_jax(checkout, jax)
    return rows


def check_fourier_jax(checkout: Path, jax: types.ModuleType) -> list[dict]:
    """``Demo.ipynb``'s ``make_network(4, 256)`` on ``input_mapping`` (JAX) against CoordinateMLP ``ffn``."""
    import numpy
    from jax.example_libraries import optimizers, stax

    jnp = jax.numpy
    source = demo_cell(checkout, "def make_network")
    namespace = {"np": jnp, "stax": stax, "optimizers": optimizers, "jit": jax.jit, "grad": jax.grad,
                 "random": jax.random, "tqdm": None}  # fmt: skip
    exec(compile(source, str(checkout / "Demo.ipynb"), "exec"), namespace)  # defines, runs nothing
    args = dict(registry.get("CoordinateMLP").variants["ffn"].args)
    rows = []
    for dtype, numpy_dtype in [(torch.float32, numpy.float32), (torch.float64, numpy.float64)]:
        init_fn, apply_fn = namespace["make_network"](args["depth"] + 1, args["embed_dim"])
        torch.manual_seed(0)
        ours = CoordinateMLP((2,), (3,), **args).to(dtype)
        b = (
            (ours.encoding.matrix * ours.encoding.frequency_scale).T.detach().numpy().astype(numpy_dtype)
        )  # (256, 2)
        _, params = init_fn(jax.random.PRNGKey(0), (-1, 2 * b.shape[0]))
        params = [tuple(numpy.asarray(p, dtype=numpy_dtype) for p in layer) for layer in params]
        with torch.no_grad():
            linears = [m for m in [*ours.layers, ours.head] if isinstance(m, nn.Linear)]
            dense = [layer for layer in params if layer]  # Relu and Sigmoid hold ()
            for linear, (w, bias) in zip(linears, dense, strict=True):
                linear.weight.copy_(torch.from_numpy(w.T.copy()))
                linear.bias.copy_(torch.from_numpy(bias.copy()))
        generator = torch.Generator().manual_seed(0)
        coords = (torch.rand(256, 2, generator=generator) * 2 - 1).to(dtype)
        target = torch.rand(256, 3, generator=generator).to(dtype)
        x, y = ((coords + 1) / 2).numpy(), target.numpy()  # the Demo's coordinates are in [0, 1]

        def loss(params, x, y, b=b, apply_fn=apply_fn):  # train_model's model_loss
            return 0.5 * jnp.mean((apply_fn(params, namespace["input_mapping"](x, b)) - y) ** 2)

        out_official = numpy.asarray(apply_fn(params, namespace["input_mapping"](x, b)))
        grads = [g for g in jax.grad(loss)(params, x, y) if g]
        out_ours = ours(coords)
        (0.5 * (out_ours - target).square().mean()).backward()
        gradient_gap = 0.0
        for linear, (gw, gb) in zip(linears, grads, strict=True):
            for mine, theirs in [
                (linear.weight.grad, numpy.asarray(gw).T),
                (linear.bias.grad, numpy.asarray(gb)),
            ]:
                theirs = torch.from_numpy(theirs.copy())
                gradient_gap = max(gradient_gap, float((mine - theirs).abs().max() / theirs.abs().max()))
        output_gap = float((out_ours.detach() - torch.from_numpy(out_official.copy())).abs().max())
        official_params = sum(numpy.asarray(p).size for layer in params for p in layer)
        rows.append({"family": "CoordinateMLP", "variant": f"ffn: whole network, {str(dtype)[6:]}",
                     "official": f"Demo.ipynb make_network(4, 256) on input_mapping (JAX {jax.__version__})",
                     "params_ours": count_parameters(ours)[0], "params_official": int(official_params),
                     "max_output_difference": output_gap, "max_relative_gradient_difference": gradient_gap,
                     "agree_1e-5": output_gap < 1e-5 and gradient_gap < 1e-5})  # fmt: skip
    return rows


# ------------------------------------------------------------------------------------------------
# FreSh (gmum/FreSh): the spectrum and the distance it selects by
# ------------------------------------------------------------------------------------------------


def check_fresh(checkout: Path) -> list[dict]:
    """``scripts/find_optimal_config.py``'s ``get_spectrum(resize_to_square(image))`` and ``get_wasserstein``.

    FreSh has no weights: it picks the frequency scale whose untrained outputs' spectrum is closest to
    the image's. Compared here: the spectrum (square and non-square images, the latter resized by
    torchvision there, by ``F.interpolate`` in mlplab) and the 1-Wasserstein distance between spectra.
    """
    from mlplab.models.fields.fresh import image_spectrum, spectrum_distance

    script = load_module(checkout / "scripts" / "find_optimal_config.py", "official_fresh")
    generator = torch.Generator().manual_seed(0)
    rows = []
    for name, shape in [("square 64x64, 3 channels", (3, 64, 64)), ("48x80, 3 channels", (3, 48, 80)),
                        ("1 channel 96x72", (1, 96, 72)), ("odd side 33x33", (3, 33, 33))]:  # fmt: skip
        smooth = torch.nn.functional.interpolate(torch.rand(1, shape[0], 8, 8, generator=generator),
                                                 size=shape[1:], mode="bicubic")[0]  # fmt: skip
        image = (smooth + 0.1 * torch.rand(shape, generator=generator)).clamp(0, 1)
        official = script.get_spectrum(script.resize_to_square(image)).float()
        ours = image_spectrum(image)
        spectrum_gap = float(((ours - official).abs() / official.abs().max()).max())
        other = torch.rand(shape, generator=generator)  # a white-noise image: another spectrum
        other_official = script.get_spectrum(script.resize_to_square(other)).numpy()
        d_official = float(script.get_wasserstein(official.numpy(), other_official))
        d_ours = spectrum_distance(ours, image_spectrum(other))
        agree = (
            len(ours) == len(official)
            and spectrum_gap < 1e-5
            and abs(d_ours - d_official) < 1e-5 * d_official
        )
        rows.append({"family": "FreSh", "variant": name, "official": "find_optimal_config.py get_spectrum",
                     "spectrum_length": [len(ours), len(official)],
                     "max_relative_spectrum_difference": spectrum_gap, "wasserstein_official": d_official,
                     "wasserstein_ours": d_ours, "agree_1e-5": agree})  # fmt: skip
    return rows


#: What each option's check reads in its checkout: (repository, files).
CHECKOUTS = {
    "siren": ("github.com/vsitzmann/siren", ("explore_siren.ipynb", "modules.py")),
    "cam": ("github.com/maincold2/CAM", ("CAM_image.py",)),
    "fourier": ("github.com/tancik/fourier-feature-networks", ("Demo.ipynb",)),
    "rbfnet": ("github.com/AbdelazizBouzidi/GNF", ("models/gnf_fields.py",)),
    "fresh": ("github.com/gmum/FreSh", ("scripts/find_optimal_config.py",)),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    official_code.add_checkout_options(parser, CHECKOUTS)
    parser.add_argument(
        "--jax-path",
        type=Path,
        help="a folder to put on sys.path for jax and jaxlib (e.g. pip install --target DIR jax jaxlib), "
        "for --fourier's JAX network; without JAX only the feature map is compared",
    )
    options = parser.parse_args()
    if all(getattr(options, name) is None for name in ("siren", "cam", "fourier", "rbfnet", "fresh")):
        parser.error("give at least one of --siren, --cam, --fourier, --rbfnet, --fresh")
    official_code.require_checkouts(options, CHECKOUTS)
    torch.set_grad_enabled(True)
    rows = []
    if options.siren is not None:
        rows += check_siren(options.siren)
    if options.cam is not None:
        rows += check_cam(options.cam)
    if options.fourier is not None:
        rows += check_fourier(options.fourier, options.jax_path)
    if options.rbfnet is not None:
        rows += check_rbfnet(options.rbfnet)
    if options.fresh is not None:
        rows += check_fresh(options.fresh)
    official_code.report(rows, "agree_1e-5")


if __name__ == "__main__":
    main()
