import pytest
import torch

from mlplab.errors import ConfigError
from mlplab.models import Mamba, count_parameters
from mlplab.models.sequence.mamba import selective_scan_parallel, selective_scan_reference


def test_mamba_130m_parameter_count():
    # state-spaces/mamba-130m (Gu & Dao 2023): d_model 768, 24 layers, d_state 16, expand 2, d_conv 4,
    # dt_rank 48, vocabulary padded to 50,280, tied embeddings -- 129,135,360 parameters (the count of
    # the published checkpoint, as transformers' MambaForCausalLM loads it).
    with torch.device("meta"):
        model = Mamba(50_280, 2048, embed_dim=768, depth=24)
    assert count_parameters(model) == (129_135_360, 129_135_360)
    mixer = model.blocks[0].mixer
    assert (mixer.d_inner, mixer.dt_rank, mixer.d_state) == (1536, 48, 16)


def scan_inputs(batch=2, length=37, channels=6, state=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, length, channels, generator=generator)
    delta = torch.rand(batch, length, channels, generator=generator) * 2  # steps up to 2: strong decays too
    A = -torch.rand(channels, state, generator=generator) * 8
    B = torch.randn(batch, length, state, generator=generator)
    C = torch.randn(batch, length, state, generator=generator)
    D = torch.randn(channels, generator=generator)
    return u, delta, A, B, C, D


@pytest.mark.parametrize("chunk_size", [1, 4, 7, 16, 64])
def test_parallel_scan_equals_the_sequential_reference(chunk_size):
    inputs = [t.requires_grad_() for t in scan_inputs()]
    reference = selective_scan_reference(*inputs)
    parallel = selective_scan_parallel(*inputs, chunk_size=chunk_size)
    torch.testing.assert_close(parallel, reference, atol=1e-4, rtol=1e-4)
    grads_ref = torch.autograd.grad(reference.square().sum(), inputs)
    grads_par = torch.autograd.grad(parallel.square().sum(), inputs)
    for ours, theirs in zip(grads_par, grads_ref):
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("scan", ["chunked", "parallel"])
def test_scans_agree_inside_the_model(scan):
    # chunked: softplus, D and the gate inside the custom autograd function; parallel: recomputed.
    torch.manual_seed(0)
    model = Mamba(17, 40, embed_dim=16, depth=2, d_state=4, chunk_size=8, scan=scan, recompute_scan=True)
    tokens = torch.randint(0, 17, (2, 40))
    fast = model(tokens)
    fast.square().sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    for block in model.blocks:
        block.mixer.scan = "sequential"
    model.zero_grad()
    sequential = model(tokens)
    sequential.square().sum().backward()
    torch.testing.assert_close(fast, sequential, atol=1e-4, rtol=1e-4)
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, atol=1e-4, rtol=1e-4, msg=name)


def test_official_initialisation():
    model = Mamba(17, 40, embed_dim=32, depth=2, dt_min=1e-3, dt_max=1e-1)
    mixer = model.blocks[0].mixer
    torch.testing.assert_close(-torch.exp(mixer.A_log[0]), -torch.arange(1.0, 17.0))  # S4D-real
    assert torch.equal(mixer.D, torch.ones(64))
    delta = torch.nn.functional.softplus(mixer.dt_proj.bias)
    assert delta.min() >= 1e-3 * 0.999 and delta.max() <= 1e-1 * 1.001  # log-uniform in [dt_min, dt_max]
    assert mixer.in_proj.bias is None and mixer.out_proj.bias is None and mixer.conv.conv.bias is not None


def test_bad_settings():
    with pytest.raises(ConfigError, match="scan must be chunked, parallel or sequential"):
        Mamba(17, 40, embed_dim=16, depth=1, scan="fast")
    with pytest.raises(ConfigError, match="need 0 < dt_min <= dt_max"):
        Mamba(17, 40, embed_dim=16, depth=1, dt_min=0.5, dt_max=0.1)


def fake_causal_conv1d_fn(x, weight, bias, activation=None):
    """causal-conv1d's ``causal_conv1d_fn`` in PyTorch: ``(B, D, T)``, weight ``(D, k)``, SiLU."""
    width = weight.shape[1]
    y = torch.nn.functional.conv1d(x, weight[:, None], bias, padding=width - 1, groups=weight.shape[0])
    return torch.nn.functional.silu(y[..., : x.shape[-1]])


@pytest.mark.parametrize("pruned", ["dt_proj", "conv.conv"])
@pytest.mark.parametrize("path", ["chunked", "sequential", "kernels"])
def test_a_pruned_layer_of_the_mixer_is_recomputed_at_every_step(path, pruned, monkeypatch):
    # torch.nn.utils.prune recomputes a masked weight (weight_orig * weight_mask) in a forward
    # pre-hook of the layer that owns it; the chunked scan read dt_proj.weight and the fused path
    # conv.conv.weight without calling the layer, so a fine-tune after pruning kept the tensor of the
    # pruning step and its second step failed ("Trying to backward through the graph a second time").
    # "kernels" runs the mamba_ssm path with causal-conv1d and the selective scan replaced by PyTorch.
    from torch.nn.utils import prune

    from mlplab.models.sequence import mamba
    from mlplab.models.sequence.scans import selective_scan_chunked

    torch.manual_seed(0)
    scan = "chunked" if path == "kernels" else path
    model = Mamba(17, 12, embed_dim=16, depth=1, d_state=4, chunk_size=5, scan=scan)
    if path == "kernels":
        monkeypatch.setattr(mamba, "causal_conv1d_kernel", lambda: fake_causal_conv1d_fn)
        monkeypatch.setattr(
            mamba, "mamba_ssm_scan", lambda *args, **kwargs: selective_scan_chunked(*args, **kwargs)
        )
        monkeypatch.setattr(model.blocks[0].mixer.backend, "resolve", lambda device: "mamba_ssm")
    layer = model.blocks[0].mixer.get_submodule(pruned)
    prune.l1_unstructured(layer, "weight", amount=0.5)
    zeros = layer.weight == 0
    tokens = torch.randint(0, 17, (2, 12))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        model(tokens).square().mean().backward()
        assert layer.weight_orig.grad is not None and layer.weight_orig.grad.abs().sum() > 0
        optimizer.step()
    with torch.no_grad():
        logits = model(tokens)
        assert (
            torch.equal(layer.weight, layer.weight_orig * layer.weight_mask)
            and (layer.weight[zeros] == 0).all()
        )
        prune.remove(layer, "weight")  # the current masked weight as a plain parameter: same logits
        torch.testing.assert_close(model(tokens), logits)


@pytest.mark.parametrize("kind", ["moe", "moe_plus_plus"])
def test_the_experts_follow_the_official_rule_for_linear_layers(kind):
    # the official _init_weights keeps PyTorch's default for linear weights (reset_experts' uniform
    # +-1/sqrt(fan_in) is the same) and zeroes their biases: a dense channel MLP's biases were zero,
    # the experts' kept uniform ones
    from mlplab.nn import ChannelMLP

    torch.manual_seed(0)
    model = Mamba(17, 12, embed_dim=32, depth=2, d_state=4, bias=True, channel_mlp=ChannelMLP(kind=kind))
    dense = Mamba(
        17, 12, embed_dim=32, depth=2, d_state=4, bias=True, channel_mlp=ChannelMLP(kind="conventional")
    )
    assert dense.blocks[0].mlp.fc1.bias is not None and not dense.blocks[0].mlp.fc1.bias.any()
    for block in model.blocks:
        experts = block.mlp
        assert not experts.b1.any() and not experts.b2.any()
        bound = 1 / 32**0.5  # PyTorch's default for the first layers, as the dense fc1
        assert experts.w1.abs().max() <= bound and experts.w1.abs().max() > 0.9 * bound
        hidden = experts.w2.shape[1]
        bound = 1 / hidden**0.5 / (2 * 2) ** 0.5  # the output stack rescaled as a dense fc2
        assert experts.w2.abs().max() <= bound and experts.w2.abs().max() > 0.9 * bound


def test_a_channel_mlps_output_layer_is_rescaled_as_the_official_rule_says():
    # mixer_seq_simple._init_weights rescales every "out_proj.weight" and "fc2.weight" by
    # 1/sqrt(n_residuals_per_layer * n_layer): two residual branches per layer with an MLP
    from mlplab.nn import ChannelMLP

    torch.manual_seed(0)
    model = Mamba(17, 12, embed_dim=32, depth=3, d_state=4, channel_mlp=ChannelMLP(kind="conventional"))
    for block in model.blocks:
        fc2 = block.mlp.fc2.weight
        bound = 1 / fc2.shape[1] ** 0.5 / (2 * 3) ** 0.5  # PyTorch's default bound, rescaled
        assert fc2.abs().max() <= bound and fc2.abs().max() > 0.9 * bound
        out = block.mixer.out_proj.weight
        bound = 1 / out.shape[1] ** 0.5 / (2 * 3) ** 0.5
        assert out.abs().max() <= bound and out.abs().max() > 0.9 * bound
