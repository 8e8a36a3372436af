"""Sequence families against their official code, weight for weight (pure-PyTorch references on CPU).

Builds each official model from a local checkout of its repository (not part of mlplab), copies its
weights into mlplab's family of the same configuration through an explicit key mapping, and compares
the logits in evaluation mode and the gradients of every weight under one loss, on random tokens, in
float32 on the CPU. Parameter counts are compared too.

* ``--mamba``: a checkout of github.com/state-spaces/mamba. ``MambaLMHeadModel``
  (``mamba_ssm/models/mixer_seq_simple.py``) with ``mamba_simple.Mamba`` (``use_fast_path=False``),
  ``fused_add_norm=False``; the CUDA selective scan is replaced by the repository's own
  ``selective_scan_ref``, ``causal_conv1d`` is absent (the module then uses ``nn.Conv1d``), and the
  Triton RMSNorm by the repository's ``rms_norm_ref``. Checked: mamba-130m, and a small model with each
  of mlplab's three PyTorch scans; then mlplab's scans (``chunked``, ``sequential``, ``parallel``)
  against ``selective_scan_ref`` directly on random inputs. Needs ``einops`` importable.

* ``--gla``: a checkout of github.com/fla-org/flash-linear-attention. The layer ``GatedLinearAttention``
  (``fla/layers/gla.py``) at the GLA paper's 340M width (hidden 1024, 4 heads), ``fuse_norm=False``
  (the fused norm-gate kernel computes the same ``RMSNorm(o) * swish(g)``), with the repository's
  ``naive_recurrent_gla`` in place of its Triton kernels, ``rms_norm_ref`` in place of its Triton
  RMSNorm and ``F.silu`` in place of its Triton swish; against mlplab's ``GLALayer`` in both modes, on
  100 random tokens (past fla's 64-token switch from its recurrent to its chunk kernel). Only the
  layer: fla's whole model differs from mlplab's by design (see ``mlplab.models.sequence.gla``).

* ``--nanogpt``: a checkout of github.com/karpathy/nanoGPT. ``model.py``'s ``GPT`` at the
  Shakespeare configuration (``train_shakespeare_char.py``) and at GPT-2 124M (``GPTConfig``'s
  defaults), against mlplab's ``Transformer`` (no attention gate, standard attention matrices).

* ``--hopfield``: a checkout of github.com/ml-jku/hopfield-layers. ``hflayers.Hopfield`` (self-association,
  d 384, 6 heads, the official defaults: pattern LayerNorms with affine parameters, here made random,
  input biases) with a causal ``association_mask``, against mlplab's ``HopfieldAssociation``, with 0
  and 2 update steps. Weights whose gradient is zero up to rounding (the key bias and the stored
  pattern norm's bias: softmax ignores a shift per query) are listed instead of compared. Then
  ``hflayers.HopfieldLayer`` (learned stored patterns, its defaults; d 384 with 32 patterns and d 64
  with 8) against mlplab's ``HopfieldLookup``.

* ``--zoology``: a checkout of github.com/HazyResearch/zoology (needs ``einops`` and ``pydantic``).
  ``zoology/mixers/hyena.py``'s ``Hyena`` (d 384, filter order 64, short filter 3) against mlplab's
  ``GatedLongConv`` (implicit filter). Zoology's filter MLP reuses one ``Sin`` module (one frequency
  vector) after its three hidden layers where mlplab has three: the official frequency is copied into
  all three and its gradient compared with the sum of theirs. Its positional features are a parameter
  (learning rate 1e-5) there and a buffer here, compared for equality only.

* ``--gam``: a checkout of github.com/rishiraj/gam (the author's code for arXiv 2509.00605).
  ``gam_model.py``'s ``GAM_Model`` at its published configuration (``ModelConfig``'s defaults: vocabulary
  10,000, block 256, width 512, 6 blocks, 512 memory slots, kernel 3, dropout 0.1, off in eval; 22.6M
  in its README) and a small one with kernel 4, against mlplab's ``GatedAssociativeMemory``. The
  official LayerNorms start at ones and zeros; they are made random first, so that a swapped norm shows.

    git clone https://github.com/state-spaces/mamba /tmp/mamba
    git clone https://github.com/fla-org/flash-linear-attention /tmp/fla
    git clone https://github.com/karpathy/nanoGPT /tmp/nanoGPT
    git clone https://github.com/ml-jku/hopfield-layers /tmp/hopfield-layers
    git clone https://github.com/HazyResearch/zoology /tmp/zoology
    git clone https://github.com/rishiraj/gam /tmp/gam
    python benchmarks/sequence_official_check.py --mamba /tmp/mamba --gla /tmp/fla --nanogpt /tmp/nanoGPT \
        --hopfield /tmp/hopfield-layers --zoology /tmp/zoology --gam /tmp/gam

Prints one JSON line per comparison: parameters (ours, official), the largest output difference, the
largest relative gradient difference, and whether they agree to 1e-5 (outputs) and 1e-4 (gradients,
relative to each weight's largest gradient: a scan's backward sums float32 rounding over the whole
sequence, and GLA's recurrent mode at the 340M width reaches 1.1e-5 where float64 agrees to 6e-15).
Exits with status 1 when a comparison disagrees.
``--float64`` runs the same comparisons in float64 (tolerance 1e-10), to tell float32 rounding from a
real difference.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import types
from collections.abc import Callable
from pathlib import Path

import official_code
import torch
from official_code import load_module
from torch import nn

from mlplab.models import Mamba, Transformer, count_parameters
from mlplab.models.sequence.gam import GatedAssociativeMemory
from mlplab.models.sequence.gated_conv import GatedLongConv
from mlplab.models.sequence.gla import GLALayer
from mlplab.models.sequence.hopfield import HopfieldAssociation, HopfieldLookup
from mlplab.models.sequence.mamba import selective_scan_parallel, selective_scan_reference
from mlplab.models.sequence.scans import selective_scan_chunked

#: Largest output difference counted as agreement (``--float64``: 1e-10).
TOLERANCE = 1e-5
#: Largest relative gradient difference counted as agreement (``--float64``: 1e-10).
GRADIENT_TOLERANCE = 1e-4


def stub_module(name: str, **attributes) -> types.ModuleType:
    """Register an empty module ``name`` (a package when it has ``__path__``) with ``attributes``."""
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


def compare(
    official: nn.Module,
    ours: nn.Module,
    rename: Callable[[str], str],
    tokens: torch.Tensor,
    run_official: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
) -> dict:
    """Copy the official weights into ours; compare logits (eval) and gradients (eval, one loss)."""
    own = ours.state_dict()
    state = {}
    for key, value in official.state_dict().items():
        target = rename(key)
        state[target] = value.reshape(own[target].shape)
    missing = sorted(set(own) - set(state))
    if missing:
        raise SystemExit(f"error: no official weight for {missing}")
    ours.load_state_dict(state, strict=True)
    official.to(torch.get_default_dtype())  # --float64: also the weights built with an explicit dtype
    official.eval(), ours.eval()
    out_official = run_official(official, tokens) if run_official else official(tokens)
    out_ours = ours(tokens)
    out_official.square().mean().backward()
    out_ours.square().mean().backward()
    named = dict(ours.named_parameters())
    gradient_gap = 0.0
    for key, parameter in official.named_parameters():
        theirs, mine = parameter.grad, named[rename(key)].grad
        scale = theirs.abs().max().clamp_min(1e-12)
        gradient_gap = max(gradient_gap, float((mine.reshape(theirs.shape) - theirs).abs().max() / scale))
    output_gap = float((out_ours - out_official).detach().abs().max())
    return {
        "params_ours": count_parameters(ours)[0],
        "params_official": sum(p.numel() for p in official.parameters()),
        "max_output_difference": output_gap,
        "max_relative_gradient_difference": gradient_gap,
        "tolerance": TOLERANCE,
        "gradient_tolerance": GRADIENT_TOLERANCE,
        "agree": output_gap < TOLERANCE and gradient_gap < GRADIENT_TOLERANCE,
    }


def random_tokens(vocab_size: int, batch: int, length: int) -> torch.Tensor:
    return torch.randint(vocab_size, (batch, length), generator=torch.Generator().manual_seed(0))


# ------------------------------------------------------------------------------------ Mamba


def load_mamba(checkout: Path) -> tuple[types.ModuleType, Callable]:
    """The official ``mixer_seq_simple`` module with the pure-PyTorch references swapped in."""
    root = checkout / "mamba_ssm"
    if not (root / "modules" / "mamba_simple.py").is_file():
        raise SystemExit(f"error: {checkout} has no mamba_ssm/modules/mamba_simple.py")
    # The package __init__ imports every model; the LM needs generation/hf helpers only for
    # generation and loading, which import transformers: stand-ins keep them out.
    stub_module("mamba_ssm", __path__=[str(root)])
    stub_module("mamba_ssm.utils.generation", GenerationMixin=object)
    stub_module("mamba_ssm.utils.hf", load_config_hf=None, load_state_dict_hf=None)
    import mamba_ssm.models.mixer_seq_simple as lm
    import mamba_ssm.modules.mamba_simple as simple
    import mamba_ssm.ops.triton.layer_norm as layer_norm
    from mamba_ssm.ops.selective_scan_interface import selective_scan_ref

    simple.selective_scan_fn = selective_scan_ref  # the CUDA kernel's reference
    simple.causal_conv1d_fn = None  # use nn.Conv1d

    def rms_norm(x, weight, bias, residual=None, eps=1e-6, prenorm=False, residual_in_fp32=False, **_):
        return layer_norm.rms_norm_ref(x, weight, bias, residual=residual, eps=eps, prenorm=prenorm)

    layer_norm.rms_norm_fn = rms_norm  # the Triton kernel's reference (RMSNorm.forward looks it up here)
    return lm, selective_scan_ref


def mamba_key(key: str) -> str:
    """mlplab's name of an official ``MambaLMHeadModel`` weight."""
    key = re.sub(r"^backbone\.embedding\.", "embedding.", key)
    key = re.sub(r"^backbone\.norm_f\.", "norm.", key)
    key = re.sub(r"^lm_head\.", "head.", key)
    if match := re.match(r"backbone\.layers\.(\d+)\.(.*)", key):
        rest = match.group(2).replace("mixer.conv1d.", "mixer.conv.conv.")
        rest = re.sub(r"^norm\.", "norm1.", rest)
        return f"blocks.{match.group(1)}.{rest}"
    return key


def check_mamba(checkout: Path, length: int) -> list[dict]:
    lm, selective_scan_ref = load_mamba(checkout)
    rows = []
    configs = [
        ("130m", 768, 24, 50_277, "chunked")
    ]  # published: d_model 768, n_layer 24, GPT-NeoX vocabulary
    configs += [("small", 64, 2, 96, scan) for scan in ("chunked", "sequential", "parallel")]
    for variant, width, depth, vocab, scan in configs:
        config = lm.MambaConfig(
            d_model=width, n_layer=depth, vocab_size=vocab, ssm_cfg={"use_fast_path": False},
            rms_norm=True, residual_in_fp32=True, fused_add_norm=False, pad_vocab_size_multiple=8,
        )  # fmt: skip
        torch.manual_seed(0)
        official = lm.MambaLMHeadModel(config)
        padded = official.lm_head.weight.shape[0]
        ours = Mamba(padded, length, embed_dim=width, depth=depth, channel_mlp=None, scan=scan,
                     chunk_size=16, backend="torch")  # fmt: skip
        row = compare(official, ours, mamba_key, random_tokens(padded, 2, length), lambda m, t: m(t).logits)
        rows.append({"family": "Mamba", "variant": variant, "scan": scan, **row})
    rows += check_mamba_scans(selective_scan_ref, length)
    return rows


def check_mamba_scans(selective_scan_ref: Callable, length: int) -> list[dict]:
    """mlplab's scans against ``selective_scan_ref`` on random inputs (official layout: time last)."""
    generator = torch.Generator().manual_seed(1)
    batch, channels, state = 2, 24, 8

    def rand(*shape):
        return torch.randn(*shape, generator=generator)

    u, dt, z = rand(batch, channels, length), rand(batch, channels, length), rand(batch, channels, length)
    B, C = rand(batch, state, length), rand(batch, state, length)
    A = -torch.rand(channels, state, generator=generator) * 2 - 0.1
    D, delta_bias = rand(channels), rand(channels) * 0.5
    inputs = [u, dt, A, B, C, D, z, delta_bias]

    def time_second(x):
        return x.transpose(1, 2)

    forms = {
        "chunked": lambda u, dt, A, B, C, D, z, bias: time_second(selective_scan_chunked(
            time_second(u), time_second(dt), A, time_second(B), time_second(C), D, time_second(z), bias,
            delta_softplus=True, chunk_size=16)),
        "sequential": lambda u, dt, A, B, C, D, z, bias: time_second(selective_scan_reference(
            time_second(u), time_second(nn.functional.softplus(dt + bias[:, None])), A, time_second(B),
            time_second(C), D) * nn.functional.silu(time_second(z))),
        "parallel": lambda u, dt, A, B, C, D, z, bias: time_second(selective_scan_parallel(
            time_second(u), time_second(nn.functional.softplus(dt + bias[:, None])), A, time_second(B),
            time_second(C), D, chunk_size=16) * nn.functional.silu(time_second(z))),
    }  # fmt: skip
    reference_inputs = [x.clone().requires_grad_() for x in inputs]
    reference = selective_scan_ref(*reference_inputs, delta_softplus=True)
    weights = torch.randn(reference.shape, generator=generator)
    (reference * weights).sum().backward()
    rows = []
    for name, form in forms.items():
        mine_inputs = [x.clone().requires_grad_() for x in inputs]
        mine = form(*mine_inputs)
        (mine * weights).sum().backward()
        gradient_gap = max(
            float((a.grad - b.grad).abs().max() / b.grad.abs().max().clamp_min(1e-12))
            for a, b in zip(mine_inputs, reference_inputs, strict=True)
        )
        output_gap = float((mine - reference).detach().abs().max())
        rows.append({
            "family": "Mamba", "variant": "selective_scan_ref", "scan": name,
            "max_output_difference": output_gap, "max_relative_gradient_difference": gradient_gap,
            "tolerance": TOLERANCE, "gradient_tolerance": GRADIENT_TOLERANCE,
        "agree": output_gap < TOLERANCE and gradient_gap < GRADIENT_TOLERANCE,
        })  # fmt: skip
    return rows


# ------------------------------------------------------------------------------------ GLA


def load_gla(checkout: Path) -> types.ModuleType:
    """The official ``fla/layers/gla.py`` with the repository's ``naive_recurrent_gla`` as its kernels."""
    root = checkout / "fla"
    if not (root / "layers" / "gla.py").is_file():
        raise SystemExit(f"error: {checkout} has no fla/layers/gla.py")
    # The package __init__ files import every layer and model (and transformers): empty packages instead.
    stub_module("fla", __path__=[str(root)], __version__="checkout")
    stub_module("fla.layers", __path__=[str(root / "layers")])
    stub_module("fla.ops", __path__=[str(root / "ops")])
    import fla.layers.gla as layer
    import fla.modules.layernorm as layernorm
    from fla.ops.gla.naive import naive_recurrent_gla

    def recurrent(q, k, v, gk=None, g=None, initial_state=None, output_final_state=False, **_):
        return naive_recurrent_gla(q, k, v, gk if gk is not None else g, initial_state, output_final_state)

    layer.chunk_gla = layer.fused_recurrent_gla = layer.fused_chunk_gla = (
        recurrent  # the Triton kernels' reference
    )

    def rms_norm(x, weight, bias, residual=None, eps=1e-5, prenorm=False, residual_in_fp32=False, **_):
        return layernorm.rms_norm_ref(x, weight, bias, residual=residual, eps=eps, prenorm=prenorm)

    layernorm.rms_norm = rms_norm  # the Triton RMSNorm's reference (RMSNorm.forward looks it up here)
    return layer


def gla_key(key: str) -> str:
    """mlplab's name of an official ``GatedLinearAttention`` layer weight."""
    key = key.replace("gk_proj.0.", "gk_down.").replace("gk_proj.1.", "gk_up.")
    return key.replace("o_proj.", "out_proj.")


def check_gla(checkout: Path, length: int = 100) -> list[dict]:
    layer = load_gla(checkout)
    rows = []
    # The GLA paper's 340M model: hidden 1024, 4 heads, expand_k 0.5, expand_v 1, gate rank 16, normaliser 16.
    for mode in ("chunk", "recurrent"):
        torch.manual_seed(0)
        official = layer.GatedLinearAttention(mode="chunk", hidden_size=1024, num_heads=4, fuse_norm=False)
        official.gate_fn = nn.functional.silu  # fla's swish x * sigmoid(x), a Triton kernel
        ours = GLALayer(1024, n_heads=4, mode=mode, chunk_size=16, backend="torch")
        x = torch.randn(2, length, 1024, generator=torch.Generator().manual_seed(0))
        row = compare(official, ours, gla_key, x, lambda m, x: m(x)[0])
        rows.append({"family": "GatedLinearAttention", "variant": "layer, 340M width", "mode": mode, **row})
    return rows


# ------------------------------------------------------------------------------------ Transformer


def transformer_key(key: str) -> str:
    """mlplab's name of an official nanoGPT ``GPT`` weight."""
    for old, new in [
        (r"^transformer\.wte\.", "embedding."),
        (r"^transformer\.wpe\.", "position."),
        (r"^transformer\.ln_f\.", "norm."),
        (r"^lm_head\.", "head."),
        (r"^transformer\.h\.(\d+)\.", r"blocks.\1."),
        (r"\.ln_1\.", ".norm1."),
        (r"\.ln_2\.", ".norm2."),
        (r"\.attn\.c_attn\.", ".mixer.qkv."),
        (r"\.attn\.c_proj\.", ".mixer.out_proj."),
        (r"\.mlp\.c_fc\.", ".mlp.fc1."),
        (r"\.mlp\.c_proj\.", ".mlp.fc2."),
    ]:
        key = re.sub(old, new, key)
    return key


def check_transformer(checkout: Path, length: int) -> list[dict]:
    if not (checkout / "model.py").is_file():
        raise SystemExit(f"error: {checkout} has no model.py; pass a karpathy/nanoGPT checkout")
    nanogpt = load_module(checkout / "model.py", "official_nanogpt", register=False)
    rows = []
    # train_shakespeare_char.py (bias False; dropout 0.2, off in eval) and GPT-2 124M (GPTConfig's defaults).
    configs = [
        (
            "nanogpt-shakespeare",
            dict(block_size=256, vocab_size=65, n_layer=6, n_head=6, n_embd=384, bias=False),
        ),
        ("gpt2-124m", dict(block_size=1024, vocab_size=50304, n_layer=12, n_head=12, n_embd=768, bias=True)),
    ]
    for variant, config in configs:
        torch.manual_seed(0)
        with contextlib.redirect_stdout(sys.stderr):  # GPT prints its parameter count
            official = nanogpt.GPT(nanogpt.GPTConfig(**config, dropout=0.2))
        ours = Transformer(config["vocab_size"], config["block_size"], embed_dim=config["n_embd"],
                           depth=config["n_layer"], num_heads=config["n_head"], bias=config["bias"],
                           dropout=0.2)  # fmt: skip
        tokens = random_tokens(config["vocab_size"], 2, length)
        row = compare(official, ours, transformer_key, tokens, lambda m, t: m(t, targets=t)[0])
        rows.append({"family": "Transformer", "variant": variant, **row})
    return rows


# ------------------------------------------------------------------------------------ Hopfield


def hopfield_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """mlplab's ``HopfieldAssociation`` state from the official ``Hopfield`` one (in-projection split)."""
    out = {}
    for key, value in state.items():
        if key.startswith("association_core.in_proj_"):
            kind = key.rsplit("_", 1)[-1]  # weight or bias
            for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3), strict=True):
                out[f"{name}.{kind}"] = part
            continue
        key = key.replace("association_core.out_proj.", "out_proj.")
        key = key.replace("norm_stored_pattern.", "norm_stored.").replace(
            "norm_state_pattern.", "norm_state."
        )
        out[key.replace("norm_pattern_projection.", "norm_projection.")] = value
    return out


def check_hopfield(checkout: Path, length: int) -> list[dict]:
    if not (checkout / "hflayers" / "__init__.py").is_file():
        raise SystemExit(
            f"error: {checkout} has no hflayers/__init__.py; pass a ml-jku/hopfield-layers checkout"
        )
    sys.path.insert(0, str(checkout))
    from hflayers import Hopfield, HopfieldLayer  # the official code, from the user's checkout

    sys.path.remove(str(checkout))
    mask = torch.triu(torch.ones(length, length, dtype=torch.bool), 1)  # causal: token t sees tokens <= t
    rows = []
    for steps in (0, 2):
        torch.manual_seed(0)
        official = Hopfield(input_size=384, num_heads=6, update_steps_max=steps)
        with torch.no_grad():  # non-trivial LayerNorm affines
            for name, parameter in official.named_parameters():
                if name.startswith("norm_"):
                    parameter.add_(0.3 * torch.randn(parameter.shape))
        ours = HopfieldAssociation(384, 6, update_steps=steps)

        def convert(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return hopfield_state(state)

        x = torch.randn(2, length, 384, generator=torch.Generator().manual_seed(0))
        row = compare_converted(official, ours, convert, x, lambda m, x: m(x, association_mask=mask))
        rows.append({"family": "HopfieldLM", "variant": f"Hopfield layer, update_steps {steps}", **row})
    rows += check_hopfield_layer(HopfieldLayer)
    return rows


def hopfield_layer_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """mlplab's ``HopfieldLookup`` state from the official ``HopfieldLayer`` one."""
    out = hopfield_state(
        {key.removeprefix("hopfield."): value for key, value in state.items() if key != "lookup_weights"}
    )
    out["patterns"] = state["lookup_weights"][0]  # (1, quantity, d) with batch_first
    return out


def check_hopfield_layer(HopfieldLayer: type, length: int = 40) -> list[dict]:
    """The official ``HopfieldLayer`` (learned stored patterns, its defaults) against ``HopfieldLookup``."""
    rows = []
    for d, quantity in ((384, 32), (64, 8)):
        torch.manual_seed(0)
        official = HopfieldLayer(input_size=d, quantity=quantity)
        with torch.no_grad():  # non-trivial LayerNorm affines and larger stored patterns than N(0, 0.02)
            for name, parameter in official.named_parameters():
                if name.startswith("hopfield.norm_"):
                    parameter.add_(0.3 * torch.randn(parameter.shape))
            official.lookup_weights.normal_()
        ours = HopfieldLookup(d, quantity)
        x = torch.randn(2, length, d, generator=torch.Generator().manual_seed(0))
        row = compare_converted(official, ours, hopfield_layer_state, x, lambda m, x: m(x))
        rows.append({"family": "HopfieldLM", "variant": f"HopfieldLayer, d {d}, {quantity} patterns", **row})
    return rows


def compare_converted(official, ours, convert, x, run_official) -> dict:
    """:func:`compare` for a state that is converted as a whole (split or fused tensors)."""
    ours.load_state_dict(convert(official.state_dict()), strict=True)
    official.to(torch.get_default_dtype())
    official.eval(), ours.eval()
    out_official, out_ours = run_official(official, x), ours(x)
    out_official.square().mean().backward()
    out_ours.square().mean().backward()
    theirs = convert({key: p.grad for key, p in official.named_parameters()})
    # zero up to rounding below 1e-6 of the largest: a key bias (softmax ignores a per-query shift)
    gradient_gap, zero = official_code.gradient_gap(ours, theirs, zero_below=1e-6)
    output_gap = float((out_ours - out_official).detach().abs().max())
    return {
        "params_ours": count_parameters(ours)[0],
        "params_official": sum(p.numel() for p in official.parameters()),
        "max_output_difference": output_gap,
        "max_relative_gradient_difference": gradient_gap,
        "zero_gradient_weights": zero,
        "tolerance": TOLERANCE,
        "gradient_tolerance": GRADIENT_TOLERANCE,
        "agree": output_gap < TOLERANCE and gradient_gap < GRADIENT_TOLERANCE,
    }


# ------------------------------------------------------------------------------------ GatedConv


def hyena_key(key: str) -> str:
    """mlplab's name of an official Zoology ``Hyena`` weight."""
    key = key.replace("short_filter.", "short_conv.conv.").replace("filter_fn.bias", "filter_bias")
    return key.replace("filter_fn.implicit_filter.", "filter.mlp.")


def check_gated_conv(checkout: Path, length: int) -> list[dict]:
    """Zoology's ``Hyena`` operator against mlplab's ``GatedLongConv`` (implicit filter).

    Zoology's filter MLP applies one ``Sin`` module (one learned frequency vector) after each of its
    three hidden layers; mlplab has three. The weights are copied into all three, and the gradient of
    the official shared frequency is compared with the sum of mlplab's three.
    """
    path = checkout / "zoology" / "mixers" / "hyena.py"
    if not path.is_file():
        raise SystemExit(f"error: {checkout} has no zoology/mixers/hyena.py")
    hyena = load_module(path, "official_hyena", register=False)
    torch.manual_seed(0)
    official = hyena.Hyena(d_model=384, l_max=length, filter_order=64)
    ours = GatedLongConv(384, length, filter_order=64)
    state = {}
    for key, value in official.state_dict().items():
        if key.startswith(("filter_fn.pos_emb.", "filter_fn.modulation.")):
            continue  # positions and decays: fixed buffers in mlplab, equal by construction
        state[hyena_key(key)] = value
    ours.load_state_dict(state, strict=True)
    torch.testing.assert_close(ours.filter.features, official.filter_fn.pos_emb.z[0].detach())
    official.eval(), ours.eval()
    x = torch.randn(2, length, 384, generator=torch.Generator().manual_seed(0))
    out_official, out_ours = official(x), ours(x)
    out_official.square().mean().backward()
    out_ours.square().mean().backward()
    named = dict(ours.named_parameters())
    gradient_gap = 0.0
    for key, parameter in official.named_parameters():
        if key.startswith("filter_fn.pos_emb."):
            continue  # trained with learning rate 1e-5 officially, a buffer in mlplab (documented)
        if key == "filter_fn.implicit_filter.1.freq":  # the shared frequency
            mine = sum(named[f"filter.mlp.{index}.freq"].grad for index in (1, 3, 5))
        else:
            mine = named[hyena_key(key)].grad
        scale = parameter.grad.abs().max().clamp_min(1e-12)
        gradient_gap = max(gradient_gap, float((mine - parameter.grad).abs().max() / scale))
    output_gap = float((out_ours - out_official).detach().abs().max())
    return [{
        "family": "GatedConv", "variant": "Hyena operator, d 384, order 64",
        "params_ours": count_parameters(ours)[0],
        "params_official": sum(p.numel() for p in official.parameters()),
        "max_output_difference": output_gap, "max_relative_gradient_difference": gradient_gap,
        "tolerance": TOLERANCE, "gradient_tolerance": GRADIENT_TOLERANCE,
        "agree": output_gap < TOLERANCE and gradient_gap < GRADIENT_TOLERANCE,
    }]  # fmt: skip


# ------------------------------------------------------------------------------------ GAM


def gam_key(key: str) -> str:
    """mlplab's name of an official ``GAM_Model`` weight."""
    for old, new in [
        (r"^token_embedding\.", "embedding."),
        (r"^pos_embedding\.", "position."),
        (r"^ln_f\.", "norm."),
        (r"\.ln1\.", ".norm1."),
        (r"\.ln2\.", ".norm2."),
        (r"\.causal_conv\.", ".mixer.conv.conv."),
        (r"\.memory_bank$", ".mixer.memory"),
        (r"\.gate\.", ".mixer.gate."),
        (r"\.ffn\.0\.", ".mlp.fc1."),
        (r"\.ffn\.2\.", ".mlp.fc2."),
    ]:
        key = re.sub(old, new, key)
    return key


def check_gam(checkout: Path, length: int) -> list[dict]:
    if not (checkout / "gam_model.py").is_file():
        raise SystemExit(f"error: {checkout} has no gam_model.py; pass a rishiraj/gam checkout")
    official_gam = load_module(checkout / "gam_model.py", "official_gam", register=False)
    rows = []
    configs = [
        ("official", {}),  # ModelConfig's defaults, the configuration of the paper's tables
        ("small, kernel 4", dict(VOCAB_SIZE=100, BLOCK_SIZE=64, N_EMBED=64, N_LAYER=2, NUM_MEMORY_SLOTS=32,
                                 CONV_KERNEL_SIZE=4)),
    ]  # fmt: skip
    for variant, overrides in configs:
        torch.manual_seed(0)
        config = official_gam.ModelConfig(**overrides)
        official = official_gam.GAM_Model(config)
        with torch.no_grad():  # random LayerNorm affines, so that a swapped or dropped norm shows
            for module in official.modules():
                if isinstance(module, nn.LayerNorm):
                    module.weight.add_(0.2 * torch.randn_like(module.weight))
                    module.bias.add_(0.2 * torch.randn_like(module.bias))
        ours = GatedAssociativeMemory(
            config.VOCAB_SIZE,
            config.BLOCK_SIZE,
            embed_dim=config.N_EMBED,
            depth=config.N_LAYER,
            memory_slots=config.NUM_MEMORY_SLOTS,
            kernel_size=config.CONV_KERNEL_SIZE,
            dropout=config.DROPOUT,
        )
        tokens = random_tokens(config.VOCAB_SIZE, 2, min(length, config.BLOCK_SIZE))
        row = compare(official, ours, gam_key, tokens, lambda m, t: m(t)[0])
        rows.append({"family": "GatedAssociativeMemory", "variant": variant, **row})
    return rows


#: What each option's check reads in its checkout: (repository, files).
CHECKOUTS = {
    "mamba": ("github.com/state-spaces/mamba", ("mamba_ssm/modules/mamba_simple.py",)),
    "gla": ("github.com/fla-org/flash-linear-attention", ("fla/layers/gla.py",)),
    "nanogpt": ("github.com/karpathy/nanoGPT", ("model.py",)),
    "hopfield": ("github.com/ml-jku/hopfield-layers", ("hflayers/__init__.py",)),
    "zoology": ("github.com/HazyResearch/zoology", ("zoology/mixers/hyena.py",)),
    "gam": ("github.com/rishiraj/gam", ("gam_model.py",)),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    official_code.add_checkout_options(parser, CHECKOUTS)
    parser.add_argument(
        "--float64",
        action="store_true",
        help="compare in float64 (to tell rounding from a real difference); both codes cast to float32 "
        "inside their scans, so this makes Tensor.float() return float64 in this process",
    )
    parser.add_argument(
        "--length",
        type=int,
        default=40,
        help="Mamba, Transformer, Hopfield, GatedConv, GAM: tokens per random sequence (batch of 2)",
    )
    options = parser.parse_args()
    checkouts = ("mamba", "gla", "nanogpt", "hopfield", "zoology", "gam")
    if all(getattr(options, name) is None for name in checkouts):
        parser.error("give at least one checkout (--mamba, --gla, --nanogpt, --hopfield, --zoology, --gam)")
    official_code.require_checkouts(options, CHECKOUTS)
    torch.set_grad_enabled(True)
    if options.float64:
        global TOLERANCE, GRADIENT_TOLERANCE
        TOLERANCE = GRADIENT_TOLERANCE = 1e-10
        torch.set_default_dtype(torch.float64)
        torch.Tensor.float = torch.Tensor.double
    rows = []
    if options.mamba is not None:
        rows += check_mamba(options.mamba, options.length)
    if options.gla is not None:
        rows += check_gla(options.gla)
    if options.nanogpt is not None:
        rows += check_transformer(options.nanogpt, options.length)
    if options.hopfield is not None:
        rows += check_hopfield(options.hopfield, options.length)
    if options.zoology is not None:
        rows += check_gated_conv(options.zoology, options.length)
    if options.gam is not None:
        rows += check_gam(options.gam, options.length)
    official_code.report(rows, "agree")


if __name__ == "__main__":
    main()
