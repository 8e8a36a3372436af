import pytest
import torch

from mlplab.data import CharTextDataModule, CharTokenizer, RandomWindowLoader
from mlplab.errors import ConfigError, DataCorruptError, DataNotFoundError


def test_tokenisation_round_trip():
    text = "First Citizen:\nBefore we proceed any further, hear me speak. — ünïcødé ✓\t"
    tokenizer = CharTokenizer.from_text(text)
    assert tokenizer.vocabulary == "".join(sorted(set(text)))
    ids = tokenizer.encode(text)
    assert ids.dtype == torch.int64 and ids.shape == (len(text),)
    assert int(ids.max()) == len(tokenizer) - 1
    assert tokenizer.decode(ids) == text
    assert CharTokenizer(tokenizer.vocabulary).decode(ids.tolist()) == text  # the string alone suffices
    with pytest.raises(ConfigError, match="outside the vocabulary"):
        tokenizer.encode("Zebra!")


def test_tiny_shakespeare_is_nanogpts_split(data_dir):
    data = CharTextDataModule(data_dir=str(data_dir), download=False)
    # nanoGPT's prepare.py: 1,115,394 characters, vocabulary 65, train 1,003,854, val 111,540
    assert len(data.train_tokens) == 1_003_854 and len(data.val_tokens) == 111_540
    assert data.vocab_size == 65 and data.vocabulary.startswith("\n !$&")
    assert data.context_length == 256
    inputs, targets = data.eval_windows()
    assert inputs.shape == (111_539 // 256, 256)
    torch.testing.assert_close(inputs[1:, 0], targets[:-1, -1])  # consecutive, non-overlapping windows
    assert "split_characters=(1003854, 111540)" in str(data)


def test_offline_corpus_batches():
    data = CharTextDataModule(corpus="pydoc_topics", context_length=32, batch_size=4, batches_per_epoch=3)
    assert data.vocab_size > 50 and len(data.train_tokens) > 300_000
    loader = data.train_dataloader()
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    inputs, targets = batches[0]
    assert inputs.shape == targets.shape == (4, 32) and inputs.dtype == torch.int64
    torch.testing.assert_close(inputs[:, 1:], targets[:, :-1])  # targets are the next characters
    again = list(data.train_dataloader())[0][0]
    torch.testing.assert_close(again, inputs)  # reproducible from the seed
    assert not torch.equal(list(loader)[0][0], inputs)  # the next epoch draws other windows
    val_inputs, _ = next(iter(data.val_dataloader()))
    assert val_inputs.shape == (4, 32)


def test_fit_validates_on_a_fixed_evenly_spaced_subset_and_test_on_every_window():
    data = CharTextDataModule(corpus="pydoc_topics", context_length=64, batch_size=8, val_windows=100)
    inputs, _ = data.eval_windows()
    assert len(inputs) > 700  # pydoc's help topics: about 0.5 MB, a tenth of it validation
    val = torch.cat([batch[0] for batch in data.val_dataloader()])
    test = torch.cat([batch[0] for batch in data.test_dataloader()])
    assert len(val) == 100 and torch.equal(test, inputs)
    chosen = data.validation_subset(len(inputs))
    assert chosen[0] == 0 and chosen[-1] == len(inputs) - 1 and torch.equal(val, inputs[chosen])
    gaps = chosen.diff()
    assert gaps.max() - gaps.min() <= 1  # evenly spaced
    assert torch.equal(torch.cat([b[0] for b in data.val_dataloader()]), val)  # the same at every validation
    everything = CharTextDataModule(corpus="pydoc_topics", context_length=64, val_windows=None)
    assert len(torch.cat([batch[0] for batch in everything.val_dataloader()])) == len(inputs)
    with pytest.raises(ConfigError, match="val_windows must be a positive integer"):
        CharTextDataModule(corpus="pydoc_topics", val_windows=0)


def test_random_windows_cover_the_stream():
    tokens = torch.arange(40)
    loader = RandomWindowLoader(tokens, context_length=8, batch_size=64, batches=20)
    starts = torch.cat([inputs[:, 0] for inputs, _ in loader])
    assert starts.min() == 0 and starts.max() == 40 - 8 - 1  # every full window can be drawn
    for inputs, targets in loader:
        torch.testing.assert_close(targets, inputs + 1)


def test_a_text_file_and_characters_missing_from_training(tmp_path):
    path = tmp_path / "story.txt"
    path.write_text("abcab" * 40 + "abcXY", encoding="utf-8")  # X and Y appear in the validation part only
    with pytest.warns(UserWarning, match="2 validation characters"):
        data = CharTextDataModule(text_file=str(path), context_length=8, val_fraction=0.1)
    assert data.vocabulary == "abc" and "X" not in data.tokenizer.decode(data.val_tokens)


def test_one_line_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(DataCorruptError, match="empty.txt is empty: give a file with text"):
        CharTextDataModule(text_file=str(empty))
    short = tmp_path / "short.txt"
    short.write_text("to be or not to be")
    with pytest.raises(
        ConfigError, match="fewer than context_length \\+ 1 = 257: lower data.init_args.context"
    ):
        CharTextDataModule(text_file=str(short))
    with pytest.raises(DataNotFoundError, match="text_file not found"):
        CharTextDataModule(text_file=str(tmp_path / "nowhere.txt"))
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("café ".encode("latin-1") * 100)
    with pytest.raises(DataCorruptError, match="is not UTF-8"):
        CharTextDataModule(text_file=str(latin), context_length=8)
    with pytest.raises(
        DataNotFoundError, match="Tiny Shakespeare not found.*raw.githubusercontent.com/karpathy"
    ):
        CharTextDataModule(data_dir=str(tmp_path), download=False)
    with pytest.raises(ConfigError, match="val_fraction must be between 0 and 1"):
        CharTextDataModule(corpus="pydoc_topics", val_fraction=1.0)
