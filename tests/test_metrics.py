"""Cross-entropy, perplexity and units, against PyTorch and against hand computation."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmcourse.metrics import (
    bits_per_char,
    bits_to_nats,
    cross_entropy,
    nats_to_bits,
    perplexity,
    perplexity_from_nll,
)


def test_cross_entropy_matches_torch_on_batched_sequences():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 9, 30, generator=gen) * 3
    targets = torch.randint(0, 30, (4, 9), generator=gen)
    ref = F.cross_entropy(logits.reshape(-1, 30), targets.reshape(-1))
    assert math.isclose(cross_entropy(logits, targets), float(ref), rel_tol=1e-6)
    assert math.isclose(perplexity(logits, targets), math.exp(float(ref)), rel_tol=1e-6)


def test_cross_entropy_by_hand():
    # softmax([0, ln 3]) = [1/4, 3/4]; targets 1 then 0: -(ln 3/4 + ln 1/4) / 2
    logits = np.array([[0.0, math.log(3)], [0.0, math.log(3)]])
    expected = -(math.log(0.75) + math.log(0.25)) / 2
    assert math.isclose(cross_entropy(logits, np.array([1, 0])), expected, rel_tol=1e-12)


def test_uniform_model_has_perplexity_equal_to_vocab_size():
    V = 37
    logits = torch.zeros(100, V)
    targets = torch.randint(0, V, (100,))
    assert math.isclose(cross_entropy(logits, targets), math.log(V), rel_tol=1e-12)
    assert math.isclose(perplexity(logits, targets), V, rel_tol=1e-9)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = torch.tensor([[1000.0, 0.0], [0.0, 1000.0]])
    assert cross_entropy(logits, torch.tensor([0, 1])) == pytest.approx(0.0, abs=1e-12)
    assert cross_entropy(logits, torch.tensor([1, 0])) == pytest.approx(1000.0)


def test_perplexity_from_nll_and_unit_conversions():
    assert perplexity_from_nll(math.log(5)) == pytest.approx(5.0)
    assert perplexity_from_nll(0.0) == 1.0
    assert perplexity_from_nll(800.0) == math.inf
    assert nats_to_bits(math.log(2)) == pytest.approx(1.0)
    assert bits_to_nats(nats_to_bits(1.234)) == pytest.approx(1.234)
    # perplexity is the same number whichever unit the cross-entropy was in
    assert 2 ** nats_to_bits(1.7) == pytest.approx(perplexity_from_nll(1.7))


def test_bits_per_char():
    assert bits_per_char(math.log(2)) == pytest.approx(1.0)  # char tokens: just nats -> bits
    # 100 tokens at 1 nat each cover 400 characters: 100 nats / 400 chars
    assert bits_per_char(1.0, n_tokens=100, n_chars=400) == pytest.approx(0.25 / math.log(2))
    with pytest.raises(ValueError, match="both"):
        bits_per_char(1.0, n_tokens=100)
    with pytest.raises(ValueError, match="> 0"):
        bits_per_char(1.0, n_tokens=0, n_chars=10)


@pytest.mark.parametrize("logits, targets, message", [
    (torch.zeros(3, 5), torch.zeros(4, dtype=torch.long), "shape"),
    (torch.zeros(3, 5), torch.tensor([0, 5, 1]), r"\[0, 5\)"),
    (torch.zeros(3, 5), torch.tensor([0, -1, 1]), r"\[0, 5\)"),
    (torch.zeros(3, 5), torch.zeros(3), "integer"),
    (torch.zeros(0, 5), torch.zeros(0, dtype=torch.long), "at least one"),
])
def test_bad_inputs_get_clear_errors(logits, targets, message):
    with pytest.raises(ValueError, match=message):
        cross_entropy(logits, targets)


def test_perplexity_from_nll_rejects_negative_or_nan():
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match=">= 0"):
            perplexity_from_nll(bad)
