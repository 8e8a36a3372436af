import pytest
import torch

from mlplab.data import MQAR_PRESETS, MQARDataModule, multiquery_ar
from mlplab.data.mqar import power_law_gap_probabilities, rows_also_in
from mlplab.errors import ConfigError

VOCAB, LENGTH, PAIRS = 8192, 64, 4


@pytest.fixture(scope="module")
def examples():
    return multiquery_ar(VOCAB, 2000, LENGTH, PAIRS, seed=0)


def test_answers_are_recoverable_from_the_context(examples):
    inputs, labels = examples
    context = 2 * PAIRS
    keys, values = inputs[:, 0:context:2], inputs[:, 1:context:2]
    for row in range(len(inputs)):
        lookup = dict(zip(keys[row].tolist(), values[row].tolist()))
        answers = torch.nonzero(labels[row] != -100).flatten().tolist()
        assert len(answers) == PAIRS
        for position in answers:
            query = int(inputs[row, position])
            assert lookup[query] == int(labels[row, position])  # the value stored with the queried key


def test_labels_only_at_answer_slots(examples):
    inputs, labels = examples
    context = 2 * PAIRS
    answer = labels != -100
    assert not answer[:, :context].any()  # never inside the key-value context
    offsets = torch.nonzero(answer)[:, 1] - context
    assert (offsets % 2 == 0).all()  # queries sit at even offsets after the context (Zoology)
    assert ((inputs[answer] >= 1) & (inputs[answer] < VOCAB // 2)).all()  # a key is queried there
    assert ((labels[answer] >= VOCAB // 2) & (labels[answer] < VOCAB)).all()  # its value is the label
    filler = ~answer
    filler[:, :context] = False
    assert (inputs[filler] == 0).all()  # Zoology's figure 2: no random filler


def test_keys_and_values_are_distinct_halves(examples):
    inputs, _ = examples
    keys, values = inputs[:, 0 : 2 * PAIRS : 2], inputs[:, 1 : 2 * PAIRS : 2]
    assert ((keys >= 1) & (keys < VOCAB // 2)).all() and ((values >= VOCAB // 2) & (values < VOCAB)).all()
    assert all(len(set(row)) == PAIRS for row in keys.tolist())
    assert all(len(set(row)) == PAIRS for row in values.tolist())


def test_gaps_follow_the_power_law():
    inputs, labels = multiquery_ar(VOCAB, 20_000, LENGTH, 1, seed=3)  # one query: gap = (position - 2) / 2
    gaps = (torch.nonzero(labels != -100)[:, 1] - 2) // 2
    space = (LENGTH - 2) // 2
    observed = torch.bincount(gaps, minlength=space).double() / len(gaps)
    expected = power_law_gap_probabilities(space, 0.01)
    assert expected[0] > 0.1 and expected[0] > 10 * expected[-1]
    assert (observed - expected).abs().max() < 0.015


def test_seeded_and_random_filler():
    first = multiquery_ar(VOCAB, 50, LENGTH, PAIRS, seed=7)
    again = multiquery_ar(VOCAB, 50, LENGTH, PAIRS, seed=7)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    noisy, labels = multiquery_ar(VOCAB, 50, LENGTH, PAIRS, seed=7, random_non_queries=True)
    assert torch.equal(labels, first[1]) and (noisy == 0).float().mean() < 0.01


def test_train_and_test_sets_are_disjoint():
    # a tiny vocabulary makes repeats between the two sets common; they are removed from the test set
    data = MQARDataModule(preset=None, sequence_length=8, num_kv_pairs=2, vocab_size=10, batch_size=4,
                          num_train_examples=500, num_test_examples=300)  # fmt: skip
    raw_test = multiquery_ar(10, 300, 8, 2, seed=10)[0]
    splits = data.generate()
    assert rows_also_in(raw_test, splits["train"][0]).any()
    assert len(splits["test"][0]) < 300
    assert not rows_also_in(splits["test"][0], splits["train"][0]).any()


def test_presets_and_loaders():
    assert MQAR_PRESETS["256x16"] == (256, 16, 256)
    data = MQARDataModule(num_train_examples=64, num_test_examples=16)
    assert (data.context_length, data.num_kv_pairs, data.batch_size, data.vocab_size) == (256, 16, 256, 8192)
    small = MQARDataModule(preset="64x4", batch_size=8, num_train_examples=64, num_test_examples=16)
    inputs, labels = next(iter(small.train_dataloader()))
    assert inputs.shape == labels.shape == (8, 64)
    assert len(list(small.val_dataloader())) == 2
    assert "sequence_length=64" in str(small)


def test_bad_settings():
    with pytest.raises(ConfigError, match="sequence_length must be even"):
        MQARDataModule(preset=None, sequence_length=63, num_kv_pairs=4, batch_size=8)
    with pytest.raises(ConfigError, match="need sequence_length >= 128"):
        MQARDataModule(preset="64x4", num_kv_pairs=32)
    with pytest.raises(ConfigError, match="vocab_size must exceed sequence_length"):
        MQARDataModule(preset="256x16", vocab_size=200)
    with pytest.raises(ConfigError, match="without a preset, give"):
        MQARDataModule(preset=None)
