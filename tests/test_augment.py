"""Text augmentation (lmcourse.data.augment) and the GPT translator it feeds (lmcourse.models.translator)."""
import random

import pytest
import torch

from lmcourse.data import augment as aug
from lmcourse.data import toy_translation as tt
from lmcourse.models.translator import EOS, IGNORE, MASK, SEP, Translator

VOCAB = [f"w{i}" for i in range(50)]
SENTENCES = [" ".join(random.Random(i).choices(VOCAB, k=random.Random(-i).randint(3, 12))) for i in range(400)]


def changed_fraction(edit, **kwargs):
    rng = random.Random(0)
    changed = total = 0
    for s in SENTENCES:
        out = edit(s, rng=rng, **kwargs).split()
        assert len(out) == len(s.split())  # replacement and masking keep the length
        changed += sum(a != b for a, b in zip(s.split(), out))
        total += len(out)
    return changed / total


@pytest.mark.parametrize("p", [0.0, 0.1, 0.3, 1.0])
def test_replacement_rate_matches_p(p):
    rate = changed_fraction(aug.replace_tokens, p=p, vocabulary=VOCAB)
    assert abs(rate - p) < 0.02, (rate, p)  # about 3,000 words: the binomial s.d. is under 0.01


@pytest.mark.parametrize("p", [0.0, 0.15, 0.5, 1.0])
def test_masking_rate_matches_p(p):
    assert abs(changed_fraction(aug.mask_tokens, p=p) - p) < 0.02
    masked = aug.mask_tokens("a b c d", 1.0, rng=0).split()
    assert masked == [MASK] * 4 and MASK == "<mask>"


def test_replacement_draws_from_the_vocabulary():
    out = aug.replace_tokens("x y z", 1.0, ["a", "b"], rng=1).split()
    assert len(out) == 3 and set(out) <= {"a", "b"}
    out = aug.replace_tokens("a a a a", 1.0, ["a", "b"], rng=1)
    assert out == "b b b b"  # replaced by a *different* word, so p is the rate of change


def test_seeds_reproduce_and_differ():
    s = SENTENCES[3] + " " + SENTENCES[4]
    for edit, kwargs in ((aug.replace_tokens, {"p": 0.3, "vocabulary": VOCAB}), (aug.mask_tokens, {"p": 0.3}),
                         (aug.delete_tokens, {"p": 0.3}), (aug.swap_tokens, {"n_swaps": 3})):
        assert edit(s, rng=7, **kwargs) == edit(s, rng=7, **kwargs)
        assert edit(s, rng=random.Random(7), **kwargs) == edit(s, rng=7, **kwargs)
        assert len({edit(s, rng=seed, **kwargs) for seed in range(10)}) > 1, edit.__name__
    pairs = [(s, "t") for s in SENTENCES[:20]]
    a = aug.noisy_copies(pairs, aug.mask_tokens, copies=2, seed=3, p=0.2)
    assert a == aug.noisy_copies(pairs, aug.mask_tokens, copies=2, seed=3, p=0.2)
    assert a != aug.noisy_copies(pairs, aug.mask_tokens, copies=2, seed=4, p=0.2)


def test_eda_swap_and_deletion():
    s = "a b c d e f"
    swapped = aug.swap_tokens(s, 2, rng=0)
    assert sorted(swapped.split()) == sorted(s.split()) and swapped != s  # the same words, moved
    assert aug.swap_tokens("solo", 5, rng=0) == "solo"
    assert aug.delete_tokens(s, 0.0, rng=0) == s
    kept = aug.delete_tokens(s, 1.0, rng=0).split()
    assert len(kept) == 1 and kept[0] in s.split()  # never an empty sentence
    rng = random.Random(0)
    lengths = [len(aug.delete_tokens(x, 0.25, rng=rng).split()) / len(x.split()) for x in SENTENCES]
    assert 0.70 < sum(lengths) / len(lengths) < 0.80


def test_noisy_copies_edit_sources_only():
    pairs = [(p.source, p.target) for p in tt.parallel_corpus(30, seed=1)]
    copies = aug.noisy_copies(pairs, aug.mask_tokens, copies=3, seed=0, p=0.5)
    assert len(copies) == 90
    assert [t for _, t in copies] == [t for _, t in pairs] * 3  # targets untouched, in order
    assert any(s != src for (s, _), (src, _) in zip(copies, pairs * 3))
    assert aug.noisy_copies(pairs, aug.mask_tokens, copies=0, p=0.5) == []


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="p"):
        aug.mask_tokens("a b", 1.5)
    with pytest.raises(ValueError, match="at least 2"):
        aug.replace_tokens("a b", 0.5, ["a"])
    with pytest.raises(TypeError, match="string"):
        aug.mask_tokens(["a", "b"], 0.5)
    with pytest.raises(TypeError, match="rng"):
        aug.mask_tokens("a b", 0.5, rng="seed")
    with pytest.raises(ValueError, match="one word"):
        aug.mask_tokens("a b", 0.5, mask="two words")
    with pytest.raises(TypeError, match="edit"):
        aug.noisy_copies([("a", "b")], "mask")
    with pytest.raises(TypeError, match="one string"):
        aug.back_translate("lo vesko", lambda ts: ts)
    with pytest.raises(ValueError, match="one sentence per target"):
        aug.back_translate(["la mira", "lo vesko"], lambda ts: ts[:1])


def test_back_translation_pairs_have_the_right_form():
    corpus = tt.parallel_corpus(40, seed=2)
    targets = [p.target for p in corpus]
    # a "reverse model" that knows the answer, and one that fails on every other sentence
    oracle = {p.target: p.source for p in corpus}
    pairs = aug.back_translate(targets, lambda ts: [oracle[t] for t in ts])
    assert pairs == [(p.source, p.target) for p in corpus]  # (synthetic source, real target)
    flaky = aug.back_translate(targets, lambda ts: [oracle[t] if i % 2 else "" for i, t in enumerate(ts)])
    assert [t for _, t in flaky] == targets[1::2]  # empty back-translations are dropped


def small_translator(pairs, seed=0):
    seq_len = max(len(s.split()) + len(t.split()) + 2 for s, t in pairs)
    return Translator(tt.vocabulary(), seq_len, n_layer=1, n_head=2, n_embd=32, device="cpu")


def test_translator_encodes_only_targets_as_labels():
    p = tt.parallel_corpus(1, seed=0)[0]
    tr = small_translator([(p.source, p.target)])
    x, y = tr.tensors([(p.source, p.target)])
    assert x.shape == y.shape == (1, tr.seq_len - 1)
    n_src = len(p.source.split())
    assert [tr.itos[i] for i in x[0, :n_src + 1].tolist()] == p.source.split() + [SEP]
    assert (y[0, :n_src] == IGNORE).all()  # the source is read, not predicted
    assert [tr.itos[i] for i in y[0].tolist() if i != IGNORE] == p.target.split() + [EOS]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tr.encode("the unicorn sees a cat")
    with pytest.raises(ValueError, match="special tokens"):
        Translator(["a", SEP], 8)
    with pytest.raises(ValueError, match="needs val_pairs"):
        tr.fit([(p.source, p.target)], steps=1, batch_size=1, lr=1e-3, eval_batches=1)
    with pytest.raises(ValueError, match="non-empty strings"):
        tr.fit([(p.source, "")], steps=1, batch_size=1, lr=1e-3)


def test_translator_learns_and_back_translation_round_trip():
    """One model trained both ways (English -> Kelvan and back) feeds back_translate its reverse outputs."""
    torch.manual_seed(0)
    corpus = tt.parallel_corpus(6, seed=3)
    pairs = [(p.source, p.target) for p in corpus]
    both_ways = pairs + [(t, s) for s, t in pairs]  # the two directions never share an input sentence
    model = small_translator(both_ways)
    history = model.fit(both_ways, steps=150, batch_size=12, lr=1e-2, seed=0)
    assert history.train[-1]["loss"] < 0.3 * history.train[0]["loss"]
    outputs = model.translate([s for s, _ in pairs])
    assert sum(o == t for o, (_, t) in zip(outputs, pairs)) >= 4  # memorises most of six pairs
    synthetic = aug.back_translate([t for _, t in pairs], model.translate)
    assert [t for _, t in synthetic] == [t for _, t in pairs]  # real targets, each with a non-empty source
    assert sum(s == src for (s, _), (src, _) in zip(synthetic, pairs)) >= 4  # the sources are mostly right
    assert all(len(s.split()) <= 3 for s in model.translate([t for _, t in pairs], max_words=3))
    with pytest.raises(TypeError, match="list of sentences"):
        model.translate("the dog sees a cat")
