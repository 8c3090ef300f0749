"""Diversity metrics (distinct-n, self-BLEU) and the temperature / top-p sweep of lesson 11."""
import random

import numpy as np
import pytest
import torch

from lmcourse.diversity import (
    corpus_words,
    diversity_sweep,
    measure,
    model_nll,
    real_continuations,
    sample_many,
)
from lmcourse.metrics import bleu, distinct_n, self_bleu
from lmcourse.models import GPT, GPTConfig, NGramModel

ALPHABET = "ab cd\n"


def decode(ids):
    return "".join(ALPHABET[i] for i in ids)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(ALPHABET), block_size=16, n_layer=1, n_head=2, n_embd=16))
    ids = np.random.default_rng(0).integers(0, len(ALPHABET), 2000)
    judge = NGramModel(3, len(ALPHABET)).fit(ids)
    return model, judge


# -- distinct-n ---------------------------------------------------------------


def test_distinct_n_by_hand():
    assert distinct_n(["a b a b"], 1) == 2 / 4
    assert distinct_n(["a b a b"], 2) == 2 / 3  # (a b), (b a), (a b)
    assert distinct_n(["x y z"] * 4, 1) == 3 / 12  # copies: 1 / number of texts
    assert distinct_n(["the cat", "a dog"], 1) == 1.0
    assert distinct_n(["aab"], 1, unit="chars") == 2 / 3
    assert distinct_n(["Stop.", "stop ."], 1) == 3 / 4  # 13a splits off the period; case counts


def test_distinct_n_never_joins_two_texts():
    assert distinct_n(["a", "a"], 2) == 0.0  # a bigram across the texts would make it 1.0
    assert distinct_n(["", " \n"], 1) == 0.0  # no words at all: nothing varies


# -- self-BLEU ----------------------------------------------------------------


def test_self_bleu_of_copies_is_100_and_of_disjoint_texts_0():
    assert self_bleu(["to be or not to be"] * 3) == pytest.approx(100.0)
    assert self_bleu(["to be or not", "that is the question", "whether tis nobler"]) == 0.0


def test_self_bleu_equals_bleu_of_each_text_against_the_others():
    rng = random.Random(0)
    words = "the king is dead long live , . my lord".split()
    for _ in range(30):
        texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 10)))
                 for _ in range(rng.randint(2, 6))]
        expected = np.mean([bleu([t], [[u for j, u in enumerate(texts) if j != i]])
                            for i, t in enumerate(texts)])
        assert self_bleu(texts) == pytest.approx(expected, abs=1e-9)


# -- sampling and measuring ---------------------------------------------------


def test_real_continuations_follow_the_prompt_without_overlap():
    ids = torch.tensor([0, 1, 2, 0, 1, 3, 3, 0, 4, 0, 5, 5])
    got = real_continuations(ids, [0], n=10, length=2)
    # 0 occurs at 0, 3, 7 and 9: windows 1-2, 4-5, 8-9; the one at 9 lies inside window 8-9, skipped
    assert got.tolist() == [[1, 2], [1, 3], [4, 0]]
    assert real_continuations(ids, [0], n=1, length=2).tolist() == [[1, 2]]


def test_model_nll_is_the_cross_entropy_of_the_continuation(tiny):
    model, _ = tiny
    prompt, cont = torch.tensor([1, 2]), torch.tensor([[3, 4, 0], [5, 5, 1]])
    with torch.no_grad():
        logits, _ = model(torch.cat([prompt.expand(2, -1), cont], dim=1))
    logp = torch.log_softmax(logits.double(), -1)
    by_hand = -np.mean([logp[b, 1 + t, cont[b, t]].item() for b in range(2) for t in range(3)])
    assert model_nll(model, prompt, cont) == pytest.approx(by_hand, rel=1e-6)


def test_sample_many_shapes_and_greedy_rows_are_identical(tiny):
    model, _ = tiny
    out = sample_many(model, [1, 2], n=5, length=7, temperature=0)
    assert out.shape == (5, 7) and (out == out[0]).all()
    a, b = (sample_many(model, [1], n=4, length=6, temperature=1.0, seed=3) for _ in range(2))
    assert torch.equal(a, b)  # same seed, same draws


def test_sweep_returns_one_row_per_setting_and_greedy_is_least_diverse(tiny):
    model, judge = tiny
    settings = [{"temperature": 0}, {"temperature": 1.0}, {"temperature": 1.0, "top_p": 0.5}]
    rows = diversity_sweep(model, [2], settings, n=6, length=12, decode=decode, judge=judge,
                           vocabulary=corpus_words("ab cd"))
    assert [r["label"] for r in rows] == ["greedy", "T=1", "T=1, p=0.5"]
    for r in rows:
        assert 0 <= r["distinct_2"] <= 1 and 0 <= r["self_bleu"] <= 100 and 0 <= r["real_words"] <= 1
        assert r["model_ppl"] >= 1 and r["judge_ppl"] >= 1
    assert rows[0]["distinct_1"] <= min(r["distinct_1"] for r in rows[1:])


def test_measure_counts_real_words_and_drops_a_cut_last_word(tiny):
    model, judge = tiny
    # "ab aa cc" and "cd ab  a": a last word that touches the end may be cut, so it is not counted
    cont = torch.tensor([[0, 1, 2, 0, 0, 2, 3, 3], [3, 4, 2, 0, 1, 2, 2, 0]])
    m = measure(model, [2], cont, decode, judge, vocabulary={"ab"})
    assert m["example"] == "ab aa cc" and m["real_words"] == 2 / 4  # ab, aa, cd, ab
    assert corpus_words("O'er the king's HEAD, 'tis") == {"o'er", "the", "king's", "head", "tis"}


# -- bad input ------------------------------------------------------------------


def test_bad_input_is_named(tiny):
    model, judge = tiny
    with pytest.raises(ValueError, match="list of strings"):
        distinct_n("a single string", 1)
    with pytest.raises(ValueError, match="n must be"):
        distinct_n(["a b"], 0)
    with pytest.raises(ValueError, match="unit"):
        distinct_n(["a b"], 1, unit="bytes")
    with pytest.raises(ValueError, match="at least 2"):
        self_bleu(["only one"])
    with pytest.raises(ValueError, match="text 1 must be a string"):
        self_bleu(["a", 3])
    with pytest.raises(ValueError, match="block_size 16"):
        sample_many(model, [1, 2], n=2, length=15)
    with pytest.raises(ValueError, match="1-D sequence of token ids"):
        sample_many(model, [[1, 2]], n=2, length=3)
    with pytest.raises(ValueError, match="'temperature'"):
        diversity_sweep(model, [1], [{"top_p": 0.9}], n=2, length=3, decode=decode, judge=judge,
                        vocabulary=set())
    with pytest.raises(ValueError, match=r"top_p'\] must be"):
        diversity_sweep(model, [1], [{"temperature": 1, "top_p": 0}], n=2, length=3, decode=decode,
                        judge=judge, vocabulary=set())
    with pytest.raises(ValueError, match="never occurs"):
        real_continuations(torch.tensor([1, 2, 3, 4]), [5], n=2, length=2)
    with pytest.raises(ValueError, match=r"shape \(n, L\)"):
        model_nll(model, [1], torch.tensor([2, 3]))
