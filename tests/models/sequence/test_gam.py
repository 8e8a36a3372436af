import torch

from mlplab.models import GatedAssociativeMemory, count_parameters


def test_block_follows_the_official_code():
    torch.manual_seed(0)
    model = GatedAssociativeMemory(11, 16, embed_dim=8, depth=1, memory_slots=5, channel_mlp=None)
    block = model.blocks[0]
    mixer = block.mixer
    x = torch.randn(2, 16, 8)
    n = block.norm1(x)
    padded = torch.nn.functional.pad(n.transpose(1, 2), (2, 0))  # causal: two zeros in front
    local = torch.nn.functional.conv1d(
        padded, mixer.conv.conv.weight, mixer.conv.conv.bias, groups=8
    ).transpose(1, 2)
    retrieved = torch.softmax(n @ mixer.memory.t(), -1) @ mixer.memory
    g_local, g_global = mixer.gate(n).chunk(2, -1)
    expected = x + torch.sigmoid(g_local) * local + torch.sigmoid(g_global) * retrieved
    torch.testing.assert_close(block(x), expected, atol=1e-6, rtol=1e-6)


def test_reach_is_the_kernel_only():
    # no long-range mixing: with kernel 3 and 2 layers, position t sees tokens t-4..t only
    torch.manual_seed(0)
    model = GatedAssociativeMemory(
        11, 16, embed_dim=8, depth=2, memory_slots=5, learned_positions=False
    ).eval()
    tokens = torch.randint(0, 11, (1, 16))
    changed = tokens.clone()
    changed[0, 3] = (changed[0, 3] + 1) % 11
    delta = (model(tokens) - model(changed)).abs().amax(-1)[0]
    assert (delta[3:8] > 0).all() and (delta[8:] == 0).all()


def test_parameter_count_from_the_official_code():
    # GAM_Model defaults (official code): vocab 10000, block 256, n_embed 512, 6 layers, 512 memory slots,
    # kernel 3; per block conv (3 + 1) d, memory 512 d, gate d x 2d + 2d, FFN d x 4d + 4d + 4d x d + d,
    # two LayerNorms; token and position embeddings, final LayerNorm, tied head.
    d, vocab, context, layers, slots = 512, 10_000, 256, 6, 512
    block = 4 * d + slots * d + (2 * d * d + 2 * d) + (8 * d * d + 5 * d) + 4 * d
    with torch.device("meta"):
        model = GatedAssociativeMemory(vocab, context, embed_dim=d, depth=layers, memory_slots=slots)
    assert count_parameters(model)[0] == layers * block + vocab * d + context * d + 2 * d == 22_599_680
