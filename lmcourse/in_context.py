"""In-context learning on a toy: a fresh random mapping in every prompt (lesson 11).

Each sequence is a new random function ``f`` from a few input symbols to a few
output symbols, written as pairs ``x1 f(x1) x2 f(x2) ...`` with the inputs drawn
at random, so input symbols repeat. Nothing about ``f`` can be stored in the
weights: every sequence has its own. The exact way to predict ``f(x_i)`` is to
find an earlier pair with the same ``x`` and copy its output (``lookup_logits``),
a shortcut is to answer the most frequent earlier output (``prompt_majority_logits``,
which small models learn first). The lookup is the
induction-head mechanism (Olsson et al. 2022: a head that attends to the token
after an earlier copy of the current one; it needs two layers, one to mark each
output with the input before it, one to look that mark up). So accuracy on
mappings never seen in training, counted by ``k``, the number of earlier
examples of the query's own symbol, is a direct measure of learning from the
prompt: at ``k = 0`` nothing can beat chance, ``1 / n_outputs``.

The same idea at scale: GPT-3 answers new tasks from a few examples in its
prompt (Brown et al. 2020); Transformers trained on random linear functions
learn new ones in context about as well as least squares (Garg et al. 2022);
and in-context learning emerges when training data is "bursty" and has many
rare classes, as here, where every sequence is its own task (Chan et al. 2022).

Token layout for a task with ``I`` inputs and ``O`` outputs: ids ``0 .. I-1``
are the inputs, ``I .. I+O-1`` the outputs, ``I+O`` the HIDDEN token that
:func:`blind` puts in place of every output a blind model would have seen.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lmcourse.validate import integer, positive_int

__all__ = ["MappingTask", "Episodes", "blind", "examples_seen", "accuracy_by_k",
           "model_accuracy_by_k", "lookup_logits", "prompt_majority_logits", "IGNORE"]

IGNORE = -100  # the target at positions with nothing to predict: F.cross_entropy skips it


@dataclass(frozen=True)
class Episodes:
    """A batch of sequences: ``tokens`` (B, 2 * n_pairs) and the ``mappings`` (B, n_inputs)
    behind them, ``mappings[b, x]`` being the output index (0 .. n_outputs-1) of input ``x``."""

    tokens: torch.Tensor
    mappings: torch.Tensor


@dataclass(frozen=True)
class MappingTask:
    """Sequences of ``n_pairs`` (input, output) pairs of a fresh random mapping each.

    ``n_inputs`` query symbols, ``n_outputs`` answer symbols; each input's output
    is drawn uniformly and independently, so no output says anything about
    another input's, and the best guess without an example is chance.
    ``held_out`` mappings are kept for evaluation: training draws never use one.
    """

    n_inputs: int = 6
    n_outputs: int = 6
    n_pairs: int = 12
    held_out: int = 256
    seed: int = 0

    def __post_init__(self):
        for name in ("n_inputs", "n_outputs", "n_pairs", "held_out"):
            object.__setattr__(self, name, positive_int(f"MappingTask.{name}", getattr(self, name)))
        object.__setattr__(self, "seed", integer("MappingTask.seed", self.seed, minimum=0))
        if self.n_outputs < 2:
            raise ValueError(f"MappingTask.n_outputs must be at least 2 (one output leaves nothing "
                             f"to learn), got {self.n_outputs}")
        if self.n_pairs < 2:
            raise ValueError(f"MappingTask.n_pairs must be at least 2, so that a query can follow "
                             f"an example, got {self.n_pairs}")
        if self.n_outputs ** self.n_inputs < 4 * self.held_out:
            raise ValueError(
                f"only {self.n_outputs ** self.n_inputs} mappings exist for n_inputs={self.n_inputs}, "
                f"n_outputs={self.n_outputs}: too few to hold out {self.held_out} and still train on "
                "fresh ones (at least 4x held_out are needed); raise n_inputs or n_outputs")
        if self.n_outputs ** self.n_inputs >= 2 ** 62:
            raise ValueError(f"n_outputs ** n_inputs must stay below 2**62 (mappings are numbered), "
                             f"got {self.n_outputs}**{self.n_inputs}")
        # The held-out mappings, distinct, drawn once from the task's seed.
        g = torch.Generator().manual_seed(self.seed)
        found: dict[int, torch.Tensor] = {}
        while len(found) < self.held_out:
            for row in torch.randint(self.n_outputs, (self.held_out, self.n_inputs), generator=g):
                if len(found) < self.held_out:
                    found.setdefault(int(self.codes(row[None])[0]), row)
        object.__setattr__(self, "test_mappings", torch.stack(list(found.values())))
        object.__setattr__(self, "test_codes", torch.tensor(sorted(found)))

    @property
    def hidden(self) -> int:
        """The id of the HIDDEN token."""
        return self.n_inputs + self.n_outputs

    @property
    def vocab_size(self) -> int:
        return self.n_inputs + self.n_outputs + 1

    @property
    def seq_len(self) -> int:
        return 2 * self.n_pairs

    def codes(self, mappings: torch.Tensor) -> torch.Tensor:
        """Each mapping (row of output indices) as one integer in base ``n_outputs``."""
        powers = self.n_outputs ** torch.arange(self.n_inputs, dtype=torch.long)
        return (mappings.long() * powers).sum(-1)

    def is_held_out(self, mappings: torch.Tensor) -> torch.Tensor:
        """A bool per row: is this one of the held-out mappings?"""
        return torch.isin(self.codes(mappings), self.test_codes)

    def sample(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Episodes:
        """``batch_size`` sequences: fresh mappings (never a held-out one) for ``split="train"``,
        held-out mappings (drawn with replacement) for ``"test"``; inputs uniform."""
        batch_size = positive_int("batch_size", batch_size)
        if split == "train":
            mappings = torch.randint(self.n_outputs, (batch_size, self.n_inputs), generator=generator)
            clash = self.is_held_out(mappings)
            while clash.any():  # rare: redraw the rows that hit a held-out mapping
                mappings[clash] = torch.randint(self.n_outputs, (int(clash.sum()), self.n_inputs),
                                                generator=generator)
                clash = self.is_held_out(mappings)
        elif split == "test":
            pick = torch.randint(self.held_out, (batch_size,), generator=generator)
            mappings = self.test_mappings[pick]
        else:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        xs = torch.randint(self.n_inputs, (batch_size, self.n_pairs), generator=generator)
        ys = self.n_inputs + mappings.gather(1, xs)
        tokens = torch.stack([xs, ys], dim=2).reshape(batch_size, self.seq_len)  # x1 y1 x2 y2 ...
        return Episodes(tokens, mappings)

    def targets(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token targets that score the outputs only: at each input position the output
        after it, ``IGNORE`` at output positions (the next input is random: nothing to learn)."""
        tokens = self.check_tokens(tokens)
        y = torch.full_like(tokens, IGNORE)
        y[:, 0::2] = tokens[:, 1::2]
        return y

    def get_batch(self, batch_size: int, *, blinded: bool = False):
        """A ``get_batch(split, generator)`` for ``lmcourse.train.train``: ``(x, y)`` with ``y``
        from :meth:`targets`, so the default next-token loss applies. "train" draws fresh
        mappings, "val" held-out ones. ``blinded=True`` hides the outputs in ``x``."""
        batch_size = positive_int("batch_size", batch_size)

        def get_batch(split: str, generator: torch.Generator):
            if split not in ("train", "val"):
                raise ValueError(f"split must be 'train' or 'val', got {split!r}")
            tokens = self.sample(batch_size, generator, "train" if split == "train" else "test").tokens
            return (blind(tokens, self) if blinded else tokens), self.targets(tokens)

        return get_batch

    def check_tokens(self, tokens) -> torch.Tensor:
        """``tokens`` as a LongTensor (B, 2 * n_pairs) of this task's ids, or a clear error."""
        if not isinstance(tokens, torch.Tensor) or tokens.is_floating_point() or tokens.ndim != 2:
            shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise ValueError(f"tokens must be an integer tensor of shape (B, {self.seq_len}) "
                             f"(x1 y1 x2 y2 ...), got {shape}")
        if tokens.shape[1] != self.seq_len:
            raise ValueError(f"tokens must have {self.seq_len} positions (2 * n_pairs), "
                             f"got shape {tuple(tokens.shape)}")
        xs, ys = tokens[:, 0::2], tokens[:, 1::2]
        if ((xs < 0) | (xs >= self.n_inputs)).any() or ((ys < self.n_inputs) | (ys >= self.hidden)).any():
            raise ValueError(f"tokens must alternate inputs (ids 0..{self.n_inputs - 1}) and outputs "
                             f"(ids {self.n_inputs}..{self.hidden - 1})")
        return tokens.long()


def blind(tokens: torch.Tensor, task: MappingTask) -> torch.Tensor:
    """The same sequences with every output replaced by HIDDEN: the queries stay, the answers go.

    A model trained on these sees which inputs came and when, but never what they
    map to; on a mapping it has not seen, no model can then do better than chance.
    """
    tokens = task.check_tokens(tokens).clone()
    tokens[:, 1::2] = task.hidden
    return tokens


def examples_seen(tokens: torch.Tensor, task: MappingTask) -> torch.Tensor:
    """``k[b, i]``: how many pairs before pair ``i`` of sequence ``b`` have the same input. (B, n_pairs)"""
    xs = task.check_tokens(tokens)[:, 0::2]
    same = xs[:, :, None] == xs[:, None, :]  # (B, query i, earlier j)
    return (same & torch.ones_like(same[0]).tril(-1)).sum(-1)


def lookup_logits(tokens: torch.Tensor, task: MappingTask) -> torch.Tensor:
    """The hand-written rule a trained model should find: answer with the output of the latest
    earlier pair with the same input; with no such pair, all scores 0 (the first output wins).
    Next-token scores (B, T, vocab_size), one-hot at each input position that has an example."""
    tokens = task.check_tokens(tokens)
    xs, ys = tokens[:, 0::2], tokens[:, 1::2]
    same = (xs[:, :, None] == xs[:, None, :]) & torch.ones_like(xs[0, :, None], dtype=torch.bool).expand(
        -1, xs.shape[1]).tril(-1)
    latest = (same * torch.arange(1, xs.shape[1] + 1)).argmax(-1)  # the largest earlier j with x_j = x_i
    logits = torch.zeros(*tokens.shape, task.vocab_size)
    answers = torch.nn.functional.one_hot(ys.gather(1, latest), task.vocab_size).float()
    logits[:, 0::2] = answers * same.any(-1, keepdim=True)
    return logits


def prompt_majority_logits(tokens: torch.Tensor, task: MappingTask) -> torch.Tensor:
    """The counting rule: answer with the output seen most often so far in the prompt, ignoring
    the query (ties go to the lowest output). It uses the context but not which input is asked:
    a query seen k times before has its output k times among the earlier ones, so counting
    already beats chance, more so as k grows. A model must beat it to show it uses the query."""
    tokens = task.check_tokens(tokens)
    outputs = torch.nn.functional.one_hot(tokens[:, 1::2] - task.n_inputs, task.n_outputs).float()
    before = outputs.cumsum(1) - outputs  # (B, n_pairs, n_outputs): counts of earlier outputs
    # Ties to the lowest output: a strictly decreasing tiny bonus never outweighs a count of 1.
    tie_break = torch.linspace(0.5, 0.0, task.n_outputs)
    logits = torch.zeros(*tokens.shape, task.vocab_size)
    logits[:, 0::2, task.n_inputs:task.hidden] = before + tie_break
    return logits


def accuracy_by_k(logits: torch.Tensor, tokens: torch.Tensor, task: MappingTask, max_k: int) -> dict:
    """Accuracy of the answers by number of earlier examples of the query's symbol.

    ``logits`` (B, 2 * n_pairs, V >= n_inputs + n_outputs) are next-token scores, as a
    GPT returns; the answer at input position ``2i`` is the highest-scoring *output*
    symbol (inputs and HIDDEN are not answers). Returns ``{"k": 0..max_k,
    "accuracy": ..., "count": ...}`` as numpy arrays, the last bin holding every
    query with ``max_k`` or more examples; a bin with no queries has accuracy nan.
    """
    tokens = task.check_tokens(tokens)
    max_k = integer("max_k", max_k, minimum=0)
    B, T = tokens.shape
    if (not isinstance(logits, torch.Tensor) or logits.ndim != 3 or logits.shape[:2] != (B, T)
            or logits.shape[2] < task.hidden):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must have shape (B, T, V) = ({B}, {T}, >= {task.hidden}) for tokens "
                         f"of shape {tuple(tokens.shape)}, got {shape}")
    answer = logits[:, 0::2, task.n_inputs:task.hidden].argmax(-1).cpu()  # output index
    correct = (answer == tokens[:, 1::2] - task.n_inputs).flatten()
    k = examples_seen(tokens, task).clamp(max=max_k).flatten()
    count = torch.bincount(k, minlength=max_k + 1)
    hits = torch.bincount(k, weights=correct.double(), minlength=max_k + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = hits.numpy() / count.numpy()
    return {"k": np.arange(max_k + 1), "accuracy": accuracy, "count": count.numpy()}


@torch.no_grad()
def model_accuracy_by_k(model: torch.nn.Module, tokens: torch.Tensor, task: MappingTask, max_k: int,
                        *, blinded: bool = False, batch_size: int = 256) -> dict:
    """:func:`accuracy_by_k` of ``model`` (eval mode, on its device) on ``tokens``;
    ``blinded=True`` shows it the :func:`blind` version, as it was trained."""
    tokens = task.check_tokens(tokens)
    seen = blind(tokens, task) if blinded else tokens
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        parts = []
        for chunk in seen.split(positive_int("batch_size", batch_size)):
            out = model(chunk.to(dev))
            parts.append((out[0] if isinstance(out, tuple) else out).float().cpu())
    finally:
        model.train(was_training)
    return accuracy_by_k(torch.cat(parts), tokens, task, max_k)
