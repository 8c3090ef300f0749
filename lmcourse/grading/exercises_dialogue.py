"""Checks for lesson 11's exercise: the supervised fine-tuning loss on the assistant's turns.

- ``assistant_loss(logits, tokens, assistant_mask)`` takes logits (B, T, V), integer
  tokens (B, T) and a bool mask (B, T), True where the token is one the assistant
  writes, and returns a 0-d tensor: the mean cross-entropy of ``tokens[:, t + 1]``
  under ``logits[:, t]`` over the targets whose mask is True, all rows together.
  The reference is ``lmcourse.dialogue.assistant_loss``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lmcourse.dialogue import assistant_loss as _assistant_loss
from lmcourse.grading.checks import Case, Exercise, Mistake, register


def _ce(logits, tokens):
    """Cross-entropy of each target, (B, T - 1): position t scored on token t + 1."""
    B, T, V = logits.shape
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1),
                           reduction="none").view(B, T - 1)


def _wrong_no_shift(logits, tokens, mask):
    return F.cross_entropy(logits[mask], tokens[mask])


def _wrong_mask_on_inputs(logits, tokens, mask):
    keep = mask[:, :-1]
    return _ce(logits, tokens)[keep].mean()


def _wrong_every_position(logits, tokens, mask):
    keep = mask[:, 1:]
    return (_ce(logits, tokens) * keep).sum() / keep.numel()


def _wrong_no_mask(logits, tokens, mask):
    return _ce(logits, tokens).mean()


def _wrong_row_means(logits, tokens, mask):
    keep = mask[:, 1:].to(logits.dtype)
    return ((_ce(logits, tokens) * keep).sum(1) / keep.sum(1)).mean()


def _wrong_inverted(logits, tokens, mask):
    return _ce(logits, tokens)[~mask[:, 1:]].mean()


def _spans(B, T, gen, min_len=1):
    """Masks like a chat's: each row has one or two assistant spans, at least one target in [1, T)."""
    mask = torch.zeros(B, T, dtype=torch.bool)
    for row in range(B):
        for _ in range(int(torch.randint(1, 3, (1,), generator=gen))):
            start = int(torch.randint(1, T, (1,), generator=gen))
            length = int(torch.randint(min_len, max(min_len, T // 3) + 1, (1,), generator=gen))
            mask[row, start:start + length] = True
    return mask


def _case(gen, name, B, T, V, mask=None, dtype=torch.float32, scale=2.0):
    logits = (torch.randn(B, T, V, generator=gen, dtype=torch.float64) * scale).to(dtype)
    tokens = torch.randint(V, (B, T), generator=gen)
    return Case(name, (logits, tokens, _spans(B, T, gen) if mask is None else mask))


def _cases(gen: torch.Generator) -> list[Case]:
    one = torch.zeros(3, 7, dtype=torch.bool)
    one[1, 4] = True  # a single target in the whole batch
    uneven = torch.zeros(3, 12, dtype=torch.bool)
    uneven[0, 2:11] = True  # 9 targets
    uneven[1, 9:11] = True  # 2 targets
    uneven[2, 5] = True  # 1 target
    first = torch.zeros(2, 6, dtype=torch.bool)
    first[:, 0:3] = True  # position 0 is marked but is never a target: nothing predicts it
    return [
        _case(gen, "a batch of 4 chats, 10 tokens, 12-token vocabulary", 4, 10, 12),
        _case(gen, "one chat (B=1)", 1, 9, 8),
        _case(gen, "two tokens per row (T=2): one target each", 3, 2, 5, mask=torch.ones(3, 2, dtype=torch.bool)),
        _case(gen, "one true target in the whole batch", 3, 7, 6, mask=one),
        _case(gen, "rows with 9, 2 and 1 assistant targets", 3, 12, 7, mask=uneven),
        _case(gen, "the mask starts at position 0", 2, 6, 5, mask=first),
        _case(gen, "float64 logits", 3, 8, 6, dtype=torch.float64),
        _case(gen, "huge logits (about ±1000)", 2, 8, 6, scale=1000.0),
        _case(gen, "a longer batch: 6 chats of 24 tokens, vocabulary 30", 6, 24, 30),
    ]


register(Exercise(
    id="assistant_loss",
    title="The supervised fine-tuning loss on the assistant's turns",
    reference=_assistant_loss,
    cases=_cases,
    mistakes=[
        Mistake("the logits are not shifted against the tokens",
                "a causal model's position t has read tokens 0..t, so its logits score the token "
                "that comes next; pair each position with the token one step later", _wrong_no_shift),
        Mistake("the mask selects the positions whose input is the assistant's, not whose target is",
                "the mask says which tokens the assistant writes, and a token is learnt where it is "
                "the target: shift the mask together with the tokens it describes", _wrong_mask_on_inputs),
        Mistake("the masked losses are divided by the number of all positions",
                "zeroing the other positions is right, but then the mean must be over the targets "
                "that count, not over every position of the batch", _wrong_every_position),
        Mistake("the mask is not used: every target counts",
                "only the assistant's tokens are training targets; the user's text and the "
                "template's own tokens should not add to the loss", _wrong_no_mask),
        Mistake("each row's mean is computed first and the rows' means averaged",
                "that weighs a one-token reply as much as a nine-token one; every assistant target "
                "in the batch should weigh the same", _wrong_row_means),
        Mistake("the mask is inverted: the loss counts the targets that are not the assistant's",
                "True in assistant_mask marks the tokens to learn", _wrong_inverted),
    ],
    unstable=("Hint: softmax then log overflows for large logits; log_softmax (or "
              "F.cross_entropy, which uses it) subtracts the maximum first and stays finite"),
    error_hints={
        "Expected floating point type for target": "the targets are token ids (integers) for the "
                                                     "cross-entropy, not probabilities",
        "Expected input batch_size": "flatten the logits to (N, V) and the targets to (N,) with the "
                                     "same N before the cross-entropy",
        "The shape of the mask": "a bool mask must have the shape of the tensor it indexes "
                                             "(its first dimensions): shift it as you shift the tokens",
    },
    passed_message="All cases pass: next-token cross-entropy, averaged over every assistant target in the batch.",
))
