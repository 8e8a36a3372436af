import pytest
import torch

from mlplab.data.common import TensorBatchLoader, fetch_file, resolve_data_dir, verify_checksum
from mlplab.errors import CheckpointError, DataCorruptError, DataNotFoundError


def test_data_dir_resolution(monkeypatch):
    monkeypatch.setenv("MLPLAB_DATA", "/some/where")
    assert str(resolve_data_dir(None)) == "/some/where"
    assert str(resolve_data_dir("/explicit")) == "/explicit"
    monkeypatch.delenv("MLPLAB_DATA")
    assert str(resolve_data_dir(None)) == "data"


def test_loader_covers_every_sample_once_per_epoch_and_reshuffles():
    data = torch.arange(10)
    loader = TensorBatchLoader((data, data * 2), batch_size=3, shuffle=True, seed=1)
    first = torch.cat([x for x, _ in loader])
    second = torch.cat([x for x, _ in loader])
    assert sorted(first.tolist()) == list(range(10)) == sorted(second.tolist())
    assert first.tolist() != second.tolist()
    assert len(loader) == 4
    for x, doubled in loader:
        assert torch.equal(doubled, x * 2)


def test_loader_is_reproducible_and_shards_into_equal_disjoint_parts():
    data = torch.arange(11)
    ranks = [
        TensorBatchLoader((data,), batch_size=2, shuffle=True, seed=5, rank=r, world_size=2) for r in (0, 1)
    ]
    seen = [torch.cat([b[0] for b in loader]) for loader in ranks]
    assert set(seen[0].tolist()).isdisjoint(seen[1].tolist())
    assert len(seen[0]) == len(seen[1]) == 5 and len(ranks[0]) == len(ranks[1]) == 3  # 11 cut to 2 x 5
    again = torch.cat(
        [b[0] for b in TensorBatchLoader((data,), batch_size=2, shuffle=True, seed=5, world_size=2)]
    )
    assert torch.equal(again, seen[0])


def test_drop_last():
    loader = TensorBatchLoader((torch.arange(10),), batch_size=4, drop_last=True)
    assert [len(b[0]) for b in loader] == [4, 4] and len(loader) == 2


def test_missing_file_offline_is_one_clear_line(tmp_path):
    with pytest.raises(DataNotFoundError) as error:
        fetch_file(tmp_path, "x.csv", "https://unreachable.invalid/x.csv", None, "Example data")
    message = str(error.value)
    assert "\n" not in message
    assert "x.csv" in message and str(tmp_path) in message and "https://unreachable.invalid/x.csv" in message
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.csv.part").exists()


def test_a_download_lands_whole_and_checked_or_not_at_all(tmp_path):
    source = tmp_path / "served" / "x.csv"  # a file:// URL: urllib's download path without a network
    source.parent.mkdir()
    source.write_text("hello")
    good = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    path = fetch_file(tmp_path / "data", "x.csv", source.as_uri(), good, "Example data")
    assert path.read_text() == "hello" and not (tmp_path / "data" / "x.csv.part").exists()
    with pytest.raises(DataCorruptError, match="fails its sha256 check"):
        fetch_file(tmp_path / "other", "x.csv", source.as_uri(), "0" * 64, "Example data")
    assert not (tmp_path / "other" / "x.csv").exists() and not (tmp_path / "other" / "x.csv.part").exists()


def test_checksum_mismatch(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("hello")
    with pytest.raises(DataCorruptError, match="fails its sha256 check"):
        verify_checksum(path, "0" * 64)
    verify_checksum(path, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")


def remaining_after_resume(make_loader, epoch: int, delivered: int) -> tuple[list, list]:
    """The batches of ``epoch`` after the first ``delivered``: uninterrupted, and from a fresh loader
    given the interrupted one's state (as Lightning hands it back when a fit resumes)."""
    loader = make_loader()
    for _ in range(epoch):
        list(loader)
    iterator = iter(loader)
    for _ in range(delivered):
        next(iterator)
    state = loader.state_dict()
    uninterrupted = list(iterator)
    resumed = make_loader()
    resumed.load_state_dict(state)
    resumed.set_epoch(epoch)  # Lightning's call at the start of every epoch
    return uninterrupted, list(resumed)


def test_tensor_loader_resumes_mid_epoch_with_the_same_batches():
    data = torch.arange(50)
    uninterrupted, resumed = remaining_after_resume(
        lambda: TensorBatchLoader((data,), batch_size=4, shuffle=True, seed=3), epoch=2, delivered=5
    )
    assert len(uninterrupted) == 13 - 5 and len(resumed) == len(uninterrupted)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(uninterrupted, resumed))


def test_random_windows_resume_mid_epoch_with_the_same_windows():
    from mlplab.data import RandomWindowLoader

    tokens = torch.arange(1000)
    uninterrupted, resumed = remaining_after_resume(
        lambda: RandomWindowLoader(tokens, context_length=8, batch_size=3, batches=6, seed=1),
        epoch=1,
        delivered=4,
    )
    assert len(resumed) == 2
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(uninterrupted, resumed))


def test_set_epoch_chooses_the_permutation_and_a_resume_position_only_applies_to_its_epoch():
    loader = TensorBatchLoader((torch.arange(20),), batch_size=5, shuffle=True, seed=0)
    epochs = [torch.cat([b[0] for b in loader]) for _ in range(3)]  # epochs 0, 1, 2 in turn
    loader.set_epoch(1)
    assert torch.equal(torch.cat([b[0] for b in loader]), epochs[1])
    loader.load_state_dict({"epoch": 2, "position": 3})
    loader.set_epoch(0)  # the trainer moved on to another epoch: start it from its beginning
    assert torch.equal(torch.cat([b[0] for b in loader]), epochs[0])
    assert loader.state_dict() == {"epoch": 0, "position": 4, "batches": 4, "global_batch": 5}


def test_a_mid_epoch_state_of_steps_of_another_size_is_refused_in_one_line():
    # a fit resumed mid-epoch with another --data.batch_size skipped (or repeated) samples of that epoch
    data = torch.arange(50)
    loader = TensorBatchLoader((data,), batch_size=4, shuffle=True, seed=3)
    iterator = iter(loader)
    for _ in range(5):
        next(iterator)
    state = loader.state_dict()
    assert state == {"epoch": 0, "position": 5, "batches": 13, "global_batch": 4}
    expected = (
        r"^data.batch_size: the checkpoint was written 5 batches into epoch 0 with steps of 4 samples "
        r"\(batch_size x processes\), this fit takes 8: "
    )
    with pytest.raises(CheckpointError, match=expected):
        TensorBatchLoader((data,), batch_size=8, shuffle=True, seed=3).load_state_dict(state)
    two = TensorBatchLoader((data,), batch_size=2, shuffle=True, seed=3, rank=0, world_size=2)
    two.load_state_dict(state)  # 2 x 2 processes: the same samples per step
    ended = {**state, "position": 13}  # at the epoch's end: the next epoch starts afresh, any size
    TensorBatchLoader((data,), batch_size=8, shuffle=True, seed=3).load_state_dict(ended)
    TensorBatchLoader((data,), batch_size=8, shuffle=True, seed=3).load_state_dict(
        {"epoch": 0, "position": 5}
    )
