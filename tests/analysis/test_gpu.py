"""On a CUDA device the analysis gives what it gives on the CPU (``pytest -m gpu``; not run yet)."""

from __future__ import annotations

import pytest
import torch

from mlplab.analysis import pruning
from mlplab.analysis.density import ActivationDensity, DensityProbe
from mlplab.analysis.similarity import SimilarityRecorder
from mlplab.models import registry

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@needs_cuda
def test_similarity_density_and_pruning_on_cuda_match_the_cpu():
    torch.manual_seed(0)
    model = registry.build("Transformer", 23, 24, embed_dim=32, depth=3, num_heads=2).eval()
    tokens = torch.randint(0, 23, (4, 24))
    results = []
    for device in ("cpu", "cuda"):
        model.to(device)
        recorder = SimilarityRecorder(model, registry.get("Transformer").blocks)
        probe = DensityProbe(model, ActivationDensity(threshold=0.01))
        with torch.no_grad():
            model(tokens.to(device))
        similarities = [row["similarity"] for row in recorder.rows()]
        *_, (_, active, size) = probe.pop_counts()
        recorder.remove()
        probe.remove()
        results.append((similarities, float(active) / size))
    assert results[1][0] == pytest.approx(results[0][0], abs=1e-4)
    assert results[1][1] == pytest.approx(results[0][1], abs=1e-3)
    layers = pruning.prunable_weights(model)
    masked, total = pruning.global_magnitude_prune(layers, 0.8, min_weights_per_layer=16)
    assert masked == round(0.8 * total) and pruning.sparsity(layers)[0] == masked
    assert all(w.mask.is_cuda for w in layers)
