import numpy as np
import pytest
import torch

from lmcourse.data.batching import (
    LMBatches,
    Splits,
    as_tokens,
    random_windows,
    sequential_windows,
    split,
)


def test_as_tokens_accepts_lists_arrays_and_tensors():
    expected = torch.tensor([3, 1, 4], dtype=torch.long)
    for tokens in ([3, 1, 4], np.array([3, 1, 4], dtype=np.int32), torch.tensor([3, 1, 4]),
                   torch.tensor([3, 1, 4], dtype=torch.uint8)):
        t = as_tokens(tokens)
        assert t.dtype == torch.long and torch.equal(t, expected)


@pytest.mark.parametrize("bad, message", [
    ([0.5, 1.0], "integer ids"),
    (torch.tensor([1.0, 2.0]), "integer ids"),
    (torch.tensor([True, False]), "integer ids"),
    (torch.zeros(2, 3, dtype=torch.long), "1-D"),
    ([1, -2, 3], ">= 0"),
])
def test_as_tokens_rejects_what_is_not_a_token_sequence(bad, message):
    with pytest.raises((TypeError, ValueError), match=message):
        as_tokens(bad)


def test_split_is_contiguous_non_overlapping_and_complete():
    tokens = torch.arange(1000)
    s = split(tokens, (0.8, 0.1, 0.1))
    assert s.sizes() == {"train": 800, "val": 100, "test": 100}
    assert torch.equal(torch.cat([s.train, s.val, s.test]), tokens)  # in order, nothing lost
    assert s.train.max() < s.val.min() and s.val.max() < s.test.min()  # no overlap
    assert torch.equal(s["val"], s.val)


def test_split_sizes_add_up_for_awkward_lengths():
    for n in (101, 997, 1234):
        s = split(list(range(n)), (0.9, 0.05, 0.05))
        assert sum(s.sizes().values()) == n
        assert abs(len(s.train) - 0.9 * n) <= 1


def test_split_default_fractions_and_numpy_input():
    s = split(np.arange(2000, dtype=np.int64))
    assert isinstance(s, Splits) and s.train.dtype == torch.long
    assert s.sizes() == {"train": 1800, "val": 100, "test": 100}


@pytest.mark.parametrize("fractions, message", [
    ((0.9, 0.1), "three numbers"),
    ((0.9, 0.1, 0.0), "positive"),
    ((1.1, -0.05, -0.05), "positive"),
    ((0.5, 0.2, 0.2), "sum to 1"),
])
def test_split_rejects_bad_fractions(fractions, message):
    with pytest.raises(ValueError, match=message):
        split(torch.arange(100), fractions)


def test_split_needs_room_for_a_window_in_every_split():
    tokens = torch.arange(200)  # val and test get 10 tokens each
    split(tokens, block_size=9)
    with pytest.raises(ValueError, match=r"val split has 10 tokens but needs at least 11"):
        split(tokens, block_size=10)
    with pytest.raises(ValueError, match="block_size must be an integer >= 1, got 0"):
        split(tokens, block_size=0)


def test_unknown_split_name_is_a_clear_error():
    with pytest.raises(KeyError, match="choose one of train, val, test"):
        split(torch.arange(100))["valid"]


def test_random_windows_are_slices_of_the_data_with_next_token_targets():
    data = torch.randint(0, 50, (500,), generator=torch.Generator().manual_seed(1))
    x, y = random_windows(data, batch_size=8, block_size=16,
                          generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 16)
    assert x.dtype == y.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one
    # With distinct values each window has exactly one place it came from.
    data = torch.arange(500)
    x, y = random_windows(data, 8, 16, generator=torch.Generator().manual_seed(0))
    for row_x, row_y in zip(x, y):
        start = int(row_x[0])
        assert torch.equal(row_x, data[start:start + 16])
        assert torch.equal(row_y, data[start + 1:start + 17])


def test_random_windows_reach_both_ends_of_the_data():
    data = torch.arange(12)
    x, y = random_windows(data, 2000, 4, generator=torch.Generator().manual_seed(0))
    assert int(x[:, 0].min()) == 0  # the first window
    assert int(y[:, -1].max()) == 11  # the last token is a target


def test_random_windows_are_reproducible_from_the_generator():
    data = torch.arange(10_000)
    a = random_windows(data, 4, 8, generator=torch.Generator().manual_seed(42))
    b = random_windows(data, 4, 8, generator=torch.Generator().manual_seed(42))
    c = random_windows(data, 4, 8, generator=torch.Generator().manual_seed(43))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_random_windows_errors():
    with pytest.raises(ValueError, match="needs at least 9"):
        random_windows(torch.arange(8), 2, 8)
    random_windows(torch.arange(9), 2, 8)  # exactly one window fits
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        random_windows(torch.arange(100), 0, 8)
    with pytest.raises(TypeError, match="block_size must be an integer >= 1, got 2.5"):
        random_windows(torch.arange(100), 2, 2.5)
    x, _ = random_windows(torch.arange(100), np.int64(2), np.int32(8))  # NumPy integers are integers
    assert x.shape == (2, 8)


def test_random_windows_go_to_the_requested_device():
    x, y = random_windows(torch.arange(100), 2, 4, device="cpu")
    assert x.device.type == y.device.type == "cpu"
    if torch.cuda.is_available():
        x, y = random_windows(torch.arange(100), 2, 4, device="cuda")
        assert x.is_cuda and y.is_cuda


def test_sequential_windows_cover_every_target_once():
    data = torch.arange(23)
    x, y = sequential_windows(data, 5)
    assert x.shape == y.shape == (4, 5)  # (23 - 1) // 5 windows
    assert torch.equal(x.flatten(), data[:20])
    assert torch.equal(y.flatten(), data[1:21])
    with pytest.raises(ValueError, match="needs 6"):
        sequential_windows(torch.arange(5), 5)


def test_lm_batches_is_a_get_batch_callable():
    tokens = torch.arange(5000)
    batches = LMBatches.from_tokens(tokens, batch_size=4, block_size=8, device="cpu")
    assert (batches.batch_size, batches.block_size, batches.device) == (4, 8, torch.device("cpu"))
    s = split(tokens)
    for name, lo, hi in (("train", 0, 4500), ("val", 4500, 4750), ("test", 4750, 5000)):
        x, y = batches(name, torch.Generator().manual_seed(0))
        assert x.shape == (4, 8) and torch.equal(x + 1, y)
        assert lo <= int(x.min()) and int(y.max()) < hi  # every window stays inside its split
        assert torch.equal(batches.splits[name], s[name])
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(batches.get("train", g1)[0], batches("train", g2)[0])
    with pytest.raises(KeyError, match="unknown split"):
        batches("dev", g1)
    assert "train=4,500" in repr(batches)


def test_lm_batches_windows_and_validation():
    batches = LMBatches(split(torch.arange(1000)), batch_size=2, block_size=7, device="cpu")
    x, y = batches.windows("val")
    assert x.shape == (7, 7) and int(x[0, 0]) == 900
    with pytest.raises(ValueError, match="fewer than block_size"):
        LMBatches(split(torch.arange(1000)), batch_size=2, block_size=60, device="cpu")
    with pytest.raises(TypeError, match="Splits"):
        LMBatches({"train": torch.arange(10)}, 2, 4, device="cpu")


def test_lm_batches_default_device_comes_from_runtime(monkeypatch):
    monkeypatch.setenv("LMCOURSE_DEVICE", "cpu")
    batches = LMBatches(split(torch.arange(1000)), batch_size=2, block_size=4)
    assert batches.device == torch.device("cpu")
