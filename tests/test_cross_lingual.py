"""The two synthetic languages of lesson 11 and the helpers that measure transfer between them."""
import math
import random
from collections import Counter

import pytest
import torch

from lmcourse import cross_lingual as xl
from lmcourse.data.tokenizers import BPETokenizer
from lmcourse.models import GPT, GPTConfig, NGramModel

INVERSE = {b: a for a, b in xl.LEXICON.items()}
A_PLURALS = {plural: noun for noun, plural in xl.A_IRREGULAR_PLURAL.items()}


def a_lemmas(sentence):
    """The content words of an A sentence, as LEXICON keys (endings taken off)."""
    out = []
    for w in sentence.split():
        if w in xl.LEXICON:
            out.append(w)
        elif w in A_PLURALS:
            out.append(A_PLURALS[w])
        elif w.endswith("s") and w[:-1] in xl.LEXICON:
            out.append(w[:-1])
        else:
            assert w == xl.A_THE or w == "." or w.isdigit(), w
    return out


def b_lemmas(sentence):
    """The content words of a B sentence, translated back to A through the inverse LEXICON."""
    out = []
    for w in sentence.split():
        for ending in ("", xl.B_PLURAL, xl.B_VERB_ONE, xl.B_VERB_MANY):
            stem = w[: len(w) - len(ending)]
            if w.endswith(ending) and stem in INVERSE:
                out.append(INVERSE[stem])
                break
        else:
            assert w in (xl.B_THE, xl.B_OBJECT, ".") or w.isdigit(), w
    return out


def test_the_word_mapping_is_a_bijection_and_shares_only_the_anchors():
    assert len(set(xl.LEXICON.values())) == len(xl.LEXICON)
    shared = {a for a, b in xl.LEXICON.items() if a == b}
    assert shared == set(xl.NAMES)
    assert not set(xl.NOUNS.values()) & set(xl.NOUNS)


def test_sentences_in_a_translate_to_their_b_sentences():
    for meaning, a, b in xl.parallel(300, seed=3):
        assert Counter(a_lemmas(a)) == Counter(b_lemmas(b))
        assert a == xl.render(meaning, "a") and b == xl.render(meaning, "b")
        # B's verb is last and agrees with a subject at the other end of the sentence.
        verb = b.split()[-2]
        assert verb.endswith(xl.B_VERB_MANY if meaning.subject.plural else xl.B_VERB_ONE)
        assert b.split()[-3] == xl.B_OBJECT
        a_verb = a.split()[len(xl._phrase_a(meaning.subject))]
        assert a_verb == (meaning.verb if meaning.subject.plural else meaning.verb + "s")


def test_a_known_sentence():
    m = xl.Meaning(xl.Phrase("fox", 3, "red"), "chase", xl.Phrase("Anna"))
    assert xl.render(m, "a") == "3 red foxes chase Anna ."
    assert xl.render(m, "b") == "3 vulpoen roso Anna ka kurun ."
    m = xl.Meaning(xl.Phrase("dog"), "see", xl.Phrase("cat", 1, "old"))
    assert xl.render(m, "a") == "the dog sees the old cat ."
    assert xl.render(m, "b") == "lo vesko lo mira veki ka vidat ."


def test_generator_is_deterministic_per_seed_and_parallel_within_one():
    assert xl.corpus("a", 50, seed=4) == xl.corpus("a", 50, seed=4)
    assert xl.corpus("b", 50, seed=4) != xl.corpus("b", 50, seed=5)
    a, b = xl.corpus("a", 20, seed=4).splitlines(), xl.corpus("b", 20, seed=4).splitlines()
    assert [(x, y) for _, x, y in xl.parallel(20, seed=4)] == list(zip(a, b))
    assert xl.random_meaning(random.Random(1)) == xl.random_meaning(random.Random(1))


def test_the_shared_bpe_tokenizes_both_languages_and_round_trips():
    text_a, text_b = xl.corpus("a", 200, seed=0), xl.corpus("b", 200, seed=1)
    tok = BPETokenizer.train(text_a + text_b, 300)
    for text in (text_a, text_b):
        assert tok.decode(tok.encode(text)) == text
    report = xl.shared_pieces(tok, text_a, text_b)
    assert " ." in report["shared"]  # the full stop is an anchor, written the same in both
    assert not set(report["shared"]) & set(report["only_a"] + report["only_b"])
    assert 0 < report["coverage_a"] <= 1 and 0 < report["coverage_b"] <= 1
    # Pieces of one language only exist: the word forms differ.
    assert report["only_a"] and report["only_b"]


class Uniform(torch.nn.Module):
    """Logits of zeros: ln V nats for every target, whatever its context."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab, self.dummy = vocab, torch.nn.Parameter(torch.zeros(1))

    def forward(self, idx):
        return torch.zeros(*idx.shape, self.vocab), None


@pytest.mark.parametrize("length", [9, 10, 37, 64])
def test_bits_per_char_scores_every_target_once(length):
    tokens = torch.randint(0, 7, (length,), generator=torch.Generator().manual_seed(0))
    got = xl.bits_per_char(Uniform(7), tokens, n_chars=50, block_size=8)
    assert got == pytest.approx((length - 1) * math.log2(7) / 50)


def test_bits_per_char_of_a_gpt_matches_one_full_window():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=16))
    tokens = torch.randint(0, 11, (17,))
    logits, _ = model(tokens[None, :-1])
    nats = torch.nn.functional.cross_entropy(logits[0], tokens[1:], reduction="sum").item()
    assert xl.bits_per_char(model, tokens, 20, 16) == pytest.approx(nats / (20 * math.log(2)), rel=1e-5)
    ngram = NGramModel(2, 11).fit(tokens)
    assert xl.ngram_bits_per_char(ngram, tokens, 20) == pytest.approx(
        -ngram.token_log_probs(tokens.numpy())[1:].sum() / (20 * math.log(2)))


def test_fresh_embeddings_redraws_only_the_new_ids():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8))
    before = model.tok_emb.weight.detach().clone()
    block = model.blocks[0].mlp.fc.weight.detach().clone()
    xl.fresh_embeddings(model, 6, seed=1)
    after = model.tok_emb.weight.detach()
    assert torch.equal(after[:6], before[:6]) and not torch.equal(after[6:], before[6:])
    assert torch.equal(model.blocks[0].mlp.fc.weight, block)
    assert model.head.weight is model.tok_emb.weight
    with pytest.raises(ValueError, match="below the vocabulary size 10"):
        xl.fresh_embeddings(model, 10)


def test_bad_input_is_named():
    m = xl.Meaning(xl.Phrase("dog"), "see", xl.Phrase("Anna"))
    with pytest.raises(ValueError, match=r"language must be one of \('a', 'b'\)"):
        xl.render(m, "c")
    with pytest.raises(ValueError, match="language must be one of"):
        xl.corpus("english", 3)
    with pytest.raises(ValueError, match="head must be a noun"):
        xl.Phrase("wolf")
    with pytest.raises(ValueError, match="takes no count"):
        xl.Phrase("Anna", 3)
    with pytest.raises(ValueError, match="count must be 1"):
        xl.Phrase("dog", 12)
    with pytest.raises(ValueError, match="verb must be one of"):
        xl.Meaning(xl.Phrase("dog"), "eat", xl.Phrase("Anna"))
    with pytest.raises(TypeError, match="Meaning.object must be a Phrase"):
        xl.Meaning(xl.Phrase("dog"), "see", "Anna")
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        xl.parallel(0)
    with pytest.raises(TypeError, match="rng must be a random.Random"):
        xl.random_meaning(3)
    with pytest.raises(ValueError, match="text_b must be a non-empty str"):
        xl.shared_pieces(BPETokenizer([]), "a", "")
    with pytest.raises(ValueError, match="one window of block_size 8 needs 9"):
        xl.bits_per_char(Uniform(3), [0, 1, 2], 3, 8)


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu"])
def test_every_budget_sizes_the_section_consistently(name):
    from lmcourse import runtime
    B = runtime.budget(name)
    batch, block, lr = B.xling_batch
    n_layer, n_head, n_embd = B.xling_model
    n_a, n_b = B.xling_sentences
    assert n_embd % n_head == 0 and 0 < lr < 0.1 and batch > 0 and n_layer > 0
    assert n_a > 10 * n_b, "A must be the high-resource language"
    # Every word is at least one token, so B's training stream holds several windows of `block`.
    assert len(xl.corpus("b", n_b, seed=1).split()) > 4 * (block + 1)
    assert B.eval_tokens // 30 * 5 > 2 * (block + 1), "the held-out sets must hold a few windows too"
