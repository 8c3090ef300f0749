import math

import numpy as np
import pytest

from lmcourse.data.synthetic import ALPHABET, MarkovSource


def contexts(source: MarkovSource, x: np.ndarray) -> np.ndarray:
    """The context (base-V number of the previous ``order`` symbols) before each of x[order:]."""
    V, k = source.vocab_size, source.order
    ctx = np.zeros(len(x) - k, dtype=np.int64)
    for j in range(k):
        ctx = ctx * V + x[j : len(x) - k + j]
    return ctx


def context_matrix(source: MarkovSource) -> np.ndarray:
    """Transition matrix between contexts: appending symbol s to context c gives context c'."""
    V, n = source.vocab_size, source.vocab_size**source.order
    P = np.zeros((n, n))
    c, s = np.nonzero(source.transition)
    np.add.at(P, (c, (c * V) % n + s), source.transition[c, s])
    return P


def batch_means_se(values: np.ndarray, batches: int = 50) -> float:
    """Standard error of the mean of a correlated sequence.

    Neighbouring symbols of a Markov chain are correlated, so std/sqrt(n)
    understates the error; means of long consecutive batches are nearly
    independent, and their spread gives an honest one.
    """
    means = values[: len(values) // batches * batches].reshape(batches, -1).mean(axis=1)
    return float(means.std(ddof=1) / math.sqrt(batches))


@pytest.fixture(scope="module")
def default_sample():
    source = MarkovSource()
    return source, source.sample(200_000)


@pytest.mark.parametrize("config, n", [
    ({}, 200_000),
    ({"vocab_size": 8, "order": 1, "branching": 4, "concentration": 2.0, "seed": 5}, 100_000),
])
def test_true_model_nll_matches_the_entropy_rate(config, n, default_sample):
    source, x = default_sample if not config else (MarkovSource(**config), None)
    if x is None:
        x = source.sample(n)
    nll = -np.log(source.transition[contexts(source, x), x[source.order:]])
    assert source.nll(x) == pytest.approx(nll.mean(), rel=1e-12)  # nll() is this mean
    H, se = source.entropy_rate, batch_means_se(nll)
    assert abs(nll.mean() - H) < 4 * se, (nll.mean(), H, se)
    assert abs(nll.mean() - H) < 0.01 * H
    assert 0 < H <= math.log(source.branching)  # at most uniform over the allowed symbols


def test_wrong_models_score_above_the_entropy_rate(default_sample):
    source, x = default_sample
    ctx, nxt = contexts(source, x), x[source.order:]
    true_nll = source.nll(x)
    # Uniform over the vocabulary.
    assert math.log(source.vocab_size) > source.entropy_rate + 0.5
    # The true chain blurred with 10 % uniform noise: close, but wrong.
    blurred = 0.9 * source.transition + 0.1 / source.vocab_size
    blurred_nll = -np.log(blurred[ctx, nxt]).mean()
    assert blurred_nll > true_nll + 0.01
    # Symbol frequencies alone (an order-0 model fitted on the very same text).
    freq = np.bincount(x, minlength=source.vocab_size) / len(x)
    unigram_nll = -np.log(freq[nxt]).mean()
    assert unigram_nll > source.entropy_rate + 0.5


def test_impossible_text_has_infinite_nll():
    source = MarkovSource()
    x = source.sample(100)
    ctx = contexts(source, x)[0]
    impossible = int(np.flatnonzero(source.transition[ctx] == 0)[0])
    x[source.order] = impossible
    assert source.nll(x) == math.inf


@pytest.mark.parametrize("config", [
    {},
    {"vocab_size": 5, "order": 3, "branching": 2, "concentration": 0.5},
    {"vocab_size": 3, "order": 2, "branching": 3, "concentration": 0.05},
    {"vocab_size": 30, "order": 2, "branching": 2, "concentration": 0.1},
])
def test_stationary_distribution_is_stationary(config):
    source = MarkovSource(**config)
    pi = source.stationary
    assert pi.shape == (source.vocab_size**source.order,)
    assert np.all(pi >= 0) and pi.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(pi @ context_matrix(source), pi, atol=1e-10)
    assert np.allclose(source.transition.sum(axis=1), 1.0)


def test_sample_visits_contexts_as_often_as_the_stationary_distribution_says(default_sample):
    source, x = default_sample
    counts = np.bincount(contexts(source, x), minlength=len(source.stationary))
    assert np.abs(counts / counts.sum() - source.stationary).max() < 0.01
    assert np.all(counts[source.stationary == 0] == 0)  # transient contexts never come up


@pytest.mark.parametrize("vocab_size, order, seed", [(2, 1, 0), (4, 2, 3), (16, 2, 0), (3, 3, 1)])
def test_branching_one_is_a_deterministic_cycle_with_zero_entropy(vocab_size, order, seed):
    """With one allowed next symbol per context the text is fully predictable.

    The chain is a map from contexts to contexts; it may have several cycles
    (closed classes), so the constructor resamples until exactly one cycle
    remains that every context runs into. Then pi is uniform on that cycle
    and the text repeats with the cycle's length.
    """
    source = MarkovSource(vocab_size=vocab_size, order=order, branching=1, seed=seed)
    assert abs(source.entropy_rate) < 1e-12
    on_cycle = np.flatnonzero(source.stationary)
    np.testing.assert_allclose(source.stationary[on_cycle], 1 / len(on_cycle))
    P = context_matrix(source)
    assert np.all(P[on_cycle][:, on_cycle].sum(axis=1) == pytest.approx(1.0))  # closed
    L = len(on_cycle)
    assert np.allclose(np.linalg.matrix_power(P, L)[np.ix_(on_cycle, on_cycle)], np.eye(L))
    reach = np.linalg.matrix_power(P, len(P))  # after len(P) steps every context is on it
    assert np.allclose(reach[:, on_cycle].sum(axis=1), 1.0)
    x = source.sample(5 * L + 10)
    assert abs(source.nll(x)) < 1e-12
    assert np.array_equal(x[L:], x[:-L])  # periodic


@pytest.mark.parametrize("kwargs, message", [
    ({"vocab_size": 1}, "vocab_size must be between 2 and 62"),
    ({"vocab_size": len(ALPHABET) + 1}, "vocab_size must be between 2 and 62"),
    ({"order": 0}, "order must be >= 1"),
    ({"vocab_size": 16, "order": 5}, "vocab_size\\*\\*order <= 200000"),
    ({"branching": 0}, "branching must be between 1 and vocab_size=16"),
    ({"branching": 17}, "branching must be between 1 and vocab_size=16"),
])
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MarkovSource(**kwargs)


def test_nll_rejects_what_it_cannot_score():
    source = MarkovSource(order=2)
    with pytest.raises(ValueError, match="longer than order=2"):
        source.nll([1, 2])
    with pytest.raises(ValueError, match="1-D"):
        source.nll(np.zeros((3, 4), dtype=np.int64))


def test_same_seed_same_chain_and_text():
    a, b, c = MarkovSource(seed=3), MarkovSource(seed=3), MarkovSource(seed=4)
    assert np.array_equal(a.transition, b.transition) and a.entropy_rate == b.entropy_rate
    assert not np.array_equal(a.transition, c.transition)
    assert np.array_equal(a.sample(500), b.sample(500))  # default sample seed: seed + 1
    assert np.array_equal(a.sample(500, seed=9), b.sample(500, seed=9))
    assert not np.array_equal(a.sample(500, seed=9), a.sample(500, seed=10))


def test_sample_text_spells_the_sample_in_the_alphabet():
    source = MarkovSource(vocab_size=5)
    assert source.alphabet == "abcde"
    x, text = source.sample(300, seed=1), source.sample_text(300, seed=1)
    assert text == "".join("abcde"[i] for i in x)
    assert len(source.sample(0)) == 0
