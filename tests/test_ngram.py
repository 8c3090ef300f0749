"""The n-gram model against brute-force counting, and the laws a language model must obey."""
import itertools
import math
from collections import Counter

import numpy as np
import pytest
import torch

from lmcourse.data.synthetic import MarkovSource
from lmcourse.models.ngram import NGramModel


def random_tokens(n, V, seed=0):
    return np.random.default_rng(seed).integers(0, V, n)


# -- brute-force references, written from the definitions with dicts --------

def add_k_reference(x, order, V, k):
    grams = Counter(tuple(x[i:i + order]) for i in range(len(x) - order + 1))

    def p(w, h):
        h = tuple(h)
        c_h = sum(c for g, c in grams.items() if g[:-1] == h)
        return (grams[h + (w,)] + k) / (c_h + k * V)
    return p


def kneser_ney_reference(x, order, V, discount):
    x = [int(t) for t in x]
    raw = {m: Counter(tuple(x[i:i + m]) for i in range(len(x) - m + 1)) for m in range(1, order + 1)}
    # top order: raw counts; lower orders: number of distinct tokens seen to the left
    counts = {order: raw[order]}
    for m in range(1, order):
        counts[m] = Counter(g[1:] for g in raw[m + 1])

    def p_m(m, w, h):
        if m == 0:
            return 1.0 / V
        followers = {g[-1]: c for g, c in counts[m].items() if g[:-1] == h}
        c_h = sum(followers.values())
        lower = p_m(m - 1, w, h[1:])
        if c_h == 0:
            return lower
        return (max(followers.get(w, 0) - discount, 0) + discount * len(followers) * lower) / c_h

    def p(w, h):
        h = tuple(int(t) for t in h)[-(order - 1):] if order > 1 else ()
        return p_m(len(h) + 1, w, h)
    return p


# -- agreement with the references ------------------------------------------

@pytest.mark.parametrize("order, k", [(1, 1.0), (2, 1.0), (3, 0.1)])
def test_add_k_matches_brute_force_counting(order, k):
    V = 4
    x = random_tokens(60, V, seed=1)
    model = NGramModel(order, V, smoothing="add-k", k=k).fit(x)
    ref = add_k_reference(list(x), order, V, k)
    for h in itertools.product(range(V), repeat=order - 1):
        assert np.allclose(model.prob(h), [ref(w, h) for w in range(V)], rtol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_kneser_ney_matches_brute_force(order):
    V = 4
    x = random_tokens(80, V, seed=order)
    model = NGramModel(order, V, smoothing="kneser-ney", discount=0.6).fit(x)
    ref = kneser_ney_reference(x, order, V, 0.6)
    for length in range(order):  # full contexts and the shorter ones at a text's start
        for h in itertools.product(range(V), repeat=length):
            assert np.allclose(model.prob(h), [ref(w, h) for w in range(V)], rtol=1e-12), h


def test_kneser_ney_uses_continuation_counts_in_lower_orders():
    # token 3 is frequent but only ever follows token 2 ("San Francisco");
    # token 1 is rarer but follows three different tokens.
    x = [2, 3, 2, 3, 2, 3, 2, 3, 0, 1, 2, 1, 3, 1, 0]
    model = NGramModel(2, 4, discount=0.75).fit(x)
    counts = np.bincount(x, minlength=4)
    assert counts[3] > counts[1]
    unigram = model.prob([])  # the lower order, as seen from the start of a text
    assert unigram[1] > unigram[3]


def test_discount_is_estimated_from_counts_of_counts():
    x = [0, 1, 0, 1, 0, 2, 1, 2, 2, 0]  # (0,1) and (1,0) twice, 5 others once
    model = NGramModel(2, 3).fit(x)
    n1, n2 = 5, 2
    assert model.discounts[1] == pytest.approx(n1 / (n1 + 2 * n2))
    assert NGramModel(2, 3, discount=0.3).fit(x).discounts == (0.3, 0.3)


# -- the laws of a language model -------------------------------------------

@pytest.mark.parametrize("smoothing", ["add-k", "kneser-ney"])
def test_every_context_gives_a_proper_distribution(smoothing):
    V, order = 5, 3
    model = NGramModel(order, V, smoothing=smoothing).fit(random_tokens(200, V))
    for length in range(order + 1):  # includes contexts longer than needed
        for h in itertools.product(range(V), repeat=length):
            p = model.prob(h)
            assert p.shape == (V,) and np.all(p > 0)
            assert math.isclose(p.sum(), 1.0, rel_tol=1e-12)


@pytest.mark.parametrize("smoothing", ["add-k", "kneser-ney"])
def test_chain_rule_gives_a_distribution_over_sequences(smoothing):
    # p(x1..x4) = prod_t p(x_t | x_<t) must sum to 1 over all V**4 sequences
    V = 3
    model = NGramModel(3, V, smoothing=smoothing).fit(random_tokens(40, V, seed=2))
    total = sum(math.exp(model.log_prob(s)) for s in itertools.product(range(V), repeat=4))
    assert total == pytest.approx(1.0, rel=1e-12)


def test_vectorised_scores_match_one_context_at_a_time():
    V, order = 6, 4
    model = NGramModel(order, V).fit(random_tokens(300, V))
    x = random_tokens(50, V, seed=9)
    slow = [math.log(model.prob(x[:t])[x[t]]) for t in range(len(x))]
    assert np.allclose(model.token_log_probs(x), slow, rtol=1e-12)
    assert model.cross_entropy(x) == pytest.approx(-np.mean(slow))
    assert model.nll(x) == model.cross_entropy(x)
    assert model.perplexity(x) == pytest.approx(math.exp(-np.mean(slow)))
    assert model.log_prob(x) == pytest.approx(sum(slow))


def test_right_order_reaches_the_entropy_rate_of_a_markov_source():
    source = MarkovSource(vocab_size=8, order=2, branching=2, seed=0)
    train, test = source.sample(60_000, seed=1), source.sample(10_000, seed=2)
    ce = {n: NGramModel(n, 8).fit(train).cross_entropy(test) for n in (1, 3)}
    floor = source.nll(test)  # the true model on the same text
    assert ce[3] - floor < 0.02
    assert ce[1] > floor + 0.5


def test_counts_scale_to_half_a_million_tokens():
    x = random_tokens(500_000, 65, seed=3)
    model = NGramModel(5, 65).fit(x)
    assert len(model.num_ngrams) == 5 and model.num_ngrams[0] == 65
    assert model.cross_entropy(x[:200_000]) < math.log(65)  # scored, and it saw this text


# -- generation -------------------------------------------------------------

def test_greedy_sampling_follows_the_most_probable_path():
    model = NGramModel(2, 4).fit([0, 1, 2, 3] * 20)
    assert model.sample(8, context=[0], temperature=0).tolist() == [1, 2, 3, 0, 1, 2, 3, 0]
    assert model.sample(8, context=[0], top_k=1, seed=5).tolist() == [1, 2, 3, 0, 1, 2, 3, 0]


def test_sampling_is_reproducible_and_matches_the_probabilities():
    model = NGramModel(1, 4, smoothing="add-k", k=1.0).fit([0] * 5 + [1] * 3 + [2] * 1 + [3] * 1)
    a = model.sample(3000, seed=0)
    assert np.array_equal(a[:200], model.sample(200, seed=0))
    assert not np.array_equal(a[:200], model.sample(200, seed=1))
    freq = np.bincount(a, minlength=4) / len(a)
    # (5+1, 3+1, 1+1, 1+1) / 14; the standard error is at most 0.009
    assert np.allclose(freq, model.prob([]), atol=0.035)


def test_sampling_options_pass_through_to_generate():
    model = NGramModel(1, 4, smoothing="add-k", k=1.0).fit([0] * 5 + [1] * 3 + [2] * 1 + [3] * 1)
    assert set(model.sample(300, seed=0, top_k=2).tolist()) == {0, 1}
    assert set(model.sample(300, seed=0, top_p=0.5).tolist()) == {0, 1}  # 6/14 < 0.5 <= 10/14
    assert model.sample(0, seed=0).shape == (0,)


# -- errors -----------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, message", [
    ({"order": 2.5, "vocab_size": 4}, TypeError, "order must be an integer >= 1"),
    ({"order": 2.0, "vocab_size": 4}, TypeError, "order"),
    ({"order": True, "vocab_size": 4}, TypeError, "order"),
    ({"order": 2, "vocab_size": 4.0}, TypeError, "vocab_size must be an integer >= 1"),
    ({"order": 2, "vocab_size": False}, TypeError, "vocab_size"),
])
def test_settings_of_the_wrong_type_get_clear_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        NGramModel(**kwargs)


def test_integer_settings_of_any_integer_type_are_accepted():
    model = NGramModel(np.int64(2), np.int32(4)).fit([0, 1, 2, 3])
    assert type(model.order) is int and type(model.vocab_size) is int
    assert model.sample(np.int64(3), seed=0).shape == (3,)


@pytest.mark.parametrize("kwargs, message", [
    ({"order": 0, "vocab_size": 4}, "order must be an integer >= 1, got 0"),
    ({"order": 2, "vocab_size": 0}, "vocab_size must be an integer >= 1, got 0"),
    ({"order": 20, "vocab_size": 100}, "too large"),
    ({"order": 2, "vocab_size": 4, "smoothing": "good-turing"}, "smoothing"),
    ({"order": 2, "vocab_size": 4, "smoothing": "add-k", "k": 0}, "k must be"),
    ({"order": 2, "vocab_size": 4, "discount": 1.5}, "discount"),
])
def test_bad_settings_get_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NGramModel(**kwargs)


def test_bad_tokens_get_clear_errors():
    model = NGramModel(2, 4)
    with pytest.raises(RuntimeError, match="fit"):
        model.prob([1])
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        model.fit([0, 1, 4])
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        model.fit(torch.tensor([0, -1]))
    with pytest.raises(ValueError, match="integer"):
        model.fit([0.0, 1.0])
    with pytest.raises(ValueError, match="1-D"):
        model.fit([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="empty"):
        model.fit([])
    model.fit(torch.tensor([0, 1, 2, 3]))  # tensors are fine
    with pytest.raises(ValueError, match="context"):
        model.prob([7])
    with pytest.raises(ValueError, match="at least one"):
        model.cross_entropy([])
    with pytest.raises(ValueError, match="n must be an integer >= 0, got -1"):
        model.sample(-1)
    with pytest.raises(TypeError, match="n must be an integer >= 0"):
        model.sample(2.0)
    with pytest.raises(TypeError, match="n must be an integer >= 0"):
        model.sample(True)
