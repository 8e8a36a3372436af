"""Cosine similarity of the input and output of every residual block and sub-layer (He et al. 2024)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mlplab.analysis import similarity
from mlplab.analysis.similarity import SimilarityRecorder
from mlplab.models import registry
from tests.models.domains import HARNESSES
from tests.models.test_registry import LAYOUTS, tiny


@pytest.mark.parametrize("name", LAYOUTS)
def test_every_residual_family_gets_a_similarity_per_block_and_branch(name):
    spec = registry.get(name)
    domain = spec.domains[0]
    model, shapes, data_args = tiny(name, domain)
    model.eval()
    batch = HARNESSES[domain].batch(shapes, data_args)
    with torch.no_grad():
        plain = model(*batch.args, **batch.kwargs)
        recorder = SimilarityRecorder(model, spec.blocks)
        recorded = model(*batch.args, **batch.kwargs)
        recorder.remove()
    torch.testing.assert_close(recorded, plain)  # measuring changes nothing
    rows = recorder.rows()
    blocks = spec.blocks.blocks(model)
    assert [row["block"] for row in rows if row["part"] == "block"] == [block for block, _ in blocks]
    branches = sum(len(spec.blocks.branches(b, "mixer") + spec.blocks.branches(b, "mlp")) for _, b in blocks)
    assert sum(row["part"] != "block" for row in rows) == branches
    for row in rows:
        assert -1.0 - 1e-5 <= row["similarity"] <= 1.0 + 1e-5
        assert row["importance"] == pytest.approx(1.0 - row["similarity"])
    assert not recorder._handles and not any(m._forward_hooks for m in model.modules())


def cosine(before: torch.Tensor, after: torch.Tensor) -> float:
    return F.cosine_similarity(before.flatten(1), after.flatten(1), dim=1).mean().item()


def test_transformer_values_are_the_papers_quantities():
    """Attention: cos(X, X + attn(LN1 X)); MLP: cos(Y, Y + mlp(LN2 Y)); block: cos(X, block output)."""
    torch.manual_seed(0)
    model = registry.build("Transformer", 23, 24, embed_dim=16, depth=3, num_heads=2).eval()
    tokens = torch.randint(0, 23, (4, 24))
    recorder = SimilarityRecorder(model, registry.get("Transformer").blocks)
    with torch.no_grad():
        model(tokens)
        expected = []
        x = model.embed(tokens)
        for index, block in enumerate(model.blocks):
            mid = x + block.mixer(block.norm1(x))
            out = mid + block.mlp(block.norm2(mid))
            expected += [
                (index, "block", cosine(x, out)),
                (index, "attention", cosine(x, mid)),
                (index, "mlp", cosine(mid, out)),
            ]
            x = out
    recorder.remove()
    got = [(row["index"], row["part"], row["similarity"]) for row in recorder.rows()]
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    for (_, _, value), (_, _, want) in zip(got, expected):
        assert value == pytest.approx(want, abs=1e-5)


def test_similarities_average_over_batches():
    torch.manual_seed(0)
    model = registry.build("HourglassMLP").eval()
    recorder = SimilarityRecorder(model, registry.get("HourglassMLP").blocks)
    first, second = torch.rand(5, 1, 8, 8), torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        model(first)
        one = recorder.rows()[0]["similarity"]
        model(second)
        both = recorder.rows()[0]["similarity"]
        recorder.remove()
        alone = SimilarityRecorder(model, registry.get("HourglassMLP").blocks)
        model(second)
        two = alone.rows()[0]["similarity"]
        alone.remove()
    assert both == pytest.approx((5 * one + 3 * two) / 8, abs=1e-6)  # a mean over samples


def test_outputs_table_figure_and_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def row(index: int, part: str, sublayer: str, value: float) -> dict:
        block = f"blocks.{index}"
        return {"index": index, "block": block, "part": part, "sublayer": sublayer, "similarity": value,
                "importance": 1 - value}  # fmt: skip

    rows = [
        row(0, "block", "blocks.0", 0.5),
        row(0, "attention", "blocks.0.mixer", 0.9),
        row(1, "block", "blocks.1", 0.7),
    ]
    similarity.write_csv(rows, tmp_path / "s.csv")
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == ",".join(similarity.COLUMNS)
    table = similarity.markdown(rows)
    assert "| blocks.0 | 0.5000 | 0.9000 |" in table and "| blocks.1 | 0.7000 | — |" in table
    fig = similarity.figure(rows, "title")
    similarity.write_tensorboard(rows, fig, tmp_path)
    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    events.Reload()
    assert [e.value for e in events.Scalars("similarity/block")] == pytest.approx([0.5, 0.7])
    assert events.Tags()["images"] == ["similarity"]


def test_a_rerun_replaces_its_tensorboard_events(tmp_path):
    # each run added another events file to the folder, and TensorBoard showed every earlier
    # measurement's curves beside the new one's
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path)) as other:  # events that are not the similarity's stay
        other.add_scalar("other/value", 1.0, global_step=0)
    rows = [{"index": i, "block": f"blocks.{i}", "part": "block", "sublayer": f"blocks.{i}",
             "similarity": 0.5 + i / 10, "importance": 0.5 - i / 10} for i in range(2)]  # fmt: skip
    fig = similarity.figure(rows, "title")
    similarity.write_tensorboard(rows, fig, tmp_path)
    rows = [{**row, "similarity": 0.9} for row in rows]
    similarity.write_tensorboard(rows, fig, tmp_path)
    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    events.Reload()
    scalars = events.Scalars("similarity/block")
    assert [e.step for e in scalars] == [0, 1] and [e.value for e in scalars] == pytest.approx([0.9, 0.9])
    assert len(events.Images("similarity")) == 1
    assert [e.value for e in events.Scalars("other/value")] == [1.0]


def test_rows_keep_the_blocks_indices_after_a_block_was_dropped():
    # the rows were numbered over the remaining blocks: without blocks.1, blocks.2 was block 1
    from mlplab.analysis.layers import drop_layers, sublayers

    torch.manual_seed(0)
    model = registry.build("Transformer", 23, 24, embed_dim=16, depth=3, num_heads=2).eval()
    layout = registry.get("Transformer").blocks
    drop_layers(model, ["blocks.1"])
    recorder = SimilarityRecorder(model, layout)
    with torch.no_grad():
        model(torch.randint(0, 23, (2, 24)))
    recorder.remove()
    assert {(row["index"], row["block"]) for row in recorder.rows()} == {(0, "blocks.0"), (2, "blocks.2")}
    assert [(s.index, s.block) for s in sublayers(model, layout, "attention")] == [
        (0, "blocks.0"),
        (2, "blocks.2"),
    ]
