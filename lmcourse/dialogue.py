"""Dialogue: a chat template with role tokens, generated conversations, and a loss on the assistant's turns.

A chat model is still a next-token model. What makes it an assistant is the
text it is trained on: conversations written in a fixed **template**, where
special tokens mark who speaks and where each turn ends, and a loss that
counts only the tokens the assistant should learn to write.

The template here gives each role one token and closes every message with an
end-of-turn token::

    <|system|>be brief<|end|><|user|>reverse kat<|end|><|assistant|>tak<|end|>

Real templates do the same job with more ceremony: ChatML (OpenAI) opens each
message with a start marker followed by the role's name as plain text and closes
it with an end marker; Llama 3 puts the role's name between a header-start and a
header-end token and closes each turn with an end-of-turn token. In all of them
the role markers are single reserved tokens that no user text can produce, so a
user cannot type their way into the assistant's turn.

At inference the conversation so far is formatted and the assistant's role
token appended (the "generation prompt"); the model writes the reply and then
the end-of-turn token, where :func:`reply` stops. So the end-of-turn token is a
token the assistant must learn to produce: it is part of the assistant's mask,
and the assistant's role token (which the template supplies) is not.

:func:`assistant_loss` is the supervised fine-tuning (SFT) loss: position ``t``
predicts ``tokens[t + 1]``, and only the targets in the assistant's turns count.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lmcourse.validate import positive_int

__all__ = [
    "SPECIALS", "PAD", "SYSTEM", "USER", "ASSISTANT", "END", "ROLES", "ALPHABET", "VOCAB_SIZE",
    "BLOCK", "TASKS", "encode", "decode", "render", "format_chat", "assistant_loss", "chat_loss",
    "Example", "make_dialogue", "make_dialogues", "test_prompts", "batch_fn", "Reply", "reply",
    "rule_based_reply", "score_replies",
]

# ---------------------------------------------------------------------------
# Vocabulary: five reserved tokens, then one token per character.

SPECIALS = ("<pad>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
PAD, SYSTEM, USER, ASSISTANT, END = range(len(SPECIALS))
ROLES = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT}
ALPHABET = " abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,?!:'+=-"
_CHAR_ID = {c: len(SPECIALS) + i for i, c in enumerate(ALPHABET)}
VOCAB_SIZE = len(SPECIALS) + len(ALPHABET)
BLOCK = 96  # the longest formatted dialogue make_dialogue writes fits (a test checks)


def encode(text: str) -> list[int]:
    """Character ids of plain ``text``. The alphabet has no ``<``, ``|`` or ``>``: a user cannot type a role token."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    bad = sorted({c for c in text if c not in _CHAR_ID})
    if bad:
        raise ValueError(f"characters {bad} are not in the chat alphabet {ALPHABET!r}")
    return [_CHAR_ID[c] for c in text]


def decode(ids) -> str:
    """Text of character ids; the reserved tokens are shown by name, padding is dropped."""
    out = []
    for i in torch.as_tensor(ids).reshape(-1).tolist():
        if not 0 <= i < VOCAB_SIZE:
            raise ValueError(f"token id {i} is outside the vocabulary 0..{VOCAB_SIZE - 1}")
        if i != PAD:
            out.append(SPECIALS[i] if i < len(SPECIALS) else ALPHABET[i - len(SPECIALS)])
    return "".join(out)


render = decode  # a formatted chat, readable


def _messages(messages) -> list[tuple[str, str]]:
    if isinstance(messages, (str, bytes)) or not hasattr(messages, "__iter__"):
        raise TypeError("messages must be a list of {'role': ..., 'content': ...} dicts")
    out = []
    for i, m in enumerate(messages):
        if not (isinstance(m, dict) and set(m) == {"role", "content"}):
            raise TypeError(f"message {i} must be a dict with keys 'role' and 'content', got {m!r}")
        if m["role"] not in ROLES:
            raise ValueError(f"message {i} has role {m['role']!r}; expected one of {sorted(ROLES)}")
        out.append((m["role"], m["content"]))
    return out


def format_chat(messages, *, add_generation_prompt: bool = False,
                train_on: str = "assistant") -> tuple[list[int], list[bool]]:
    """The token ids of a conversation and, for each token, whether it is a training target.

    ``messages`` is a list of ``{"role": "system" | "user" | "assistant", "content": str}``.
    Each message becomes its role token, its characters and ``<|end|>``.
    ``add_generation_prompt=True`` appends ``<|assistant|>`` for the model to continue.
    ``train_on`` picks the mask: ``"assistant"`` marks the assistant's characters and
    its ``<|end|>`` (what it must learn to write), ``"user"`` the user's characters and
    ``<|end|>`` (to measure how well a model predicts its user), ``"all"`` every token
    (ordinary language modelling on the whole transcript).
    """
    if train_on not in ("assistant", "user", "all"):
        raise ValueError(f"train_on must be 'assistant', 'user' or 'all', got {train_on!r}")
    ids, mask = [], []
    for role, content in _messages(messages):
        body = encode(content) + [END]
        ids += [ROLES[role]] + body
        marked = train_on == "all" or train_on == role
        mask += [train_on == "all"] + [marked] * len(body)
    if add_generation_prompt:
        ids.append(ASSISTANT)
        mask.append(train_on == "all")
    return ids, mask


# ---------------------------------------------------------------------------
# The loss


def assistant_loss(logits: torch.Tensor, tokens: torch.Tensor, assistant_mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the next token over the targets in the assistant's turns.

    ``logits`` (B, T, V): position ``t``'s scores for token ``t + 1``; ``tokens`` (B, T)
    integer ids; ``assistant_mask`` (B, T) bool, True where ``tokens`` is a token the
    assistant writes. The targets are ``tokens[:, 1:]`` and they count where
    ``assistant_mask[:, 1:]`` is True; the result is the mean over all of those in the
    batch (each target weighs the same, so a long reply counts more than a short one).
    A batch with no assistant target raises ``ValueError``: there is nothing to learn
    from it, and a mean over nothing (NaN) or a silent 0 would hide the bug that made
    it (usually a reply cut off by truncation).
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.ndim != 3:
        got = f"{tuple(logits.shape)} {logits.dtype}" if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a float tensor of shape (B, T, V), got {got}")
    B, T, V = logits.shape
    for name, t in (("tokens", tokens), ("assistant_mask", assistant_mask)):
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != (B, T):
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must have shape (B, T) = ({B}, {T}) like logits' first two, got {got}")
    if tokens.is_floating_point() or tokens.dtype == torch.bool:
        raise TypeError(f"tokens must be integer token ids, got {tokens.dtype}")
    if assistant_mask.dtype != torch.bool:
        raise TypeError(f"assistant_mask must be a bool tensor, got {assistant_mask.dtype}")
    if T < 2:
        raise ValueError(f"T must be at least 2 (the first token is never a target), got T={T}")
    keep = assistant_mask[:, 1:]  # which targets count: a mask on the targets, shifted with them
    if not bool(keep.any()):
        raise ValueError("the batch has no assistant target (assistant_mask[:, 1:] is all False): "
                         "nothing to train on; was a reply truncated away?")
    return F.cross_entropy(logits[:, :-1][keep], tokens[:, 1:][keep])


def chat_loss(model, batch) -> torch.Tensor:
    """``loss_fn`` for ``lmcourse.train.train``: the batch is ``(tokens, mask)``, both (B, T)."""
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise TypeError(f"chat_loss expects a batch (tokens, mask) from batch_fn, got {type(batch).__name__}")
    tokens, mask = batch
    out = model(tokens)
    logits = out[0] if isinstance(out, tuple) else out
    return assistant_loss(logits, tokens, mask)


# ---------------------------------------------------------------------------
# Generated dialogues with checkable answers

_CONSONANTS, _VOWELS = "bdfgklmnprst", "aeiou"
_WORDS = [a + b + c for a in _CONSONANTS for b in _VOWELS for c in _CONSONANTS]  # 720 made-up words
random.Random(0).shuffle(_WORDS)
_HELD_OUT_WORDS = set(_WORDS[: len(_WORDS) // 5])  # a fifth of the words never appear in training
_PAIRS = [(a, b) for a in range(10) for b in range(10)]
random.Random(1).shuffle(_PAIRS)
_HELD_OUT_PAIRS = set(_PAIRS[:20])
_FACTS = {"banana": "yellow", "lime": "green", "plum": "purple", "cherry": "red",
          "orange": "orange", "lemon": "yellow", "kiwi": "brown", "grape": "green"}

# Each task: phrasings seen in training, and one held out for the test prompts.
TASKS = {
    "reverse": (["reverse {w}", "spell {w} backwards", "what is {w} reversed?"], "{w} back to front?"),
    "upper": (["uppercase {w}", "write {w} in capitals", "shout {w}!"], "{w} in upper case?"),
    "add": (["what is {a} plus {b}?", "add {a} and {b}", "{a}+{b}=?"], "sum of {a} and {b}?"),
    "fact": (["what colour is a {f}?", "colour of {f}?", "{f}: what colour?"], "a {f} is what colour?"),
}
SYSTEM_PROMPTS = ("be brief.", "answer in one word.")


@dataclass(frozen=True)
class Example:
    """One request: the user's text and the reply that answers it."""

    task: str
    request: str
    answer: str
    phrasing: str = "seen"  # "seen" in training, or "held-out"


def _example(rng: random.Random, held_out: bool, phrasing: str) -> Example:
    """A request drawn from the training (``held_out=False``) or the held-out words and numbers."""
    task = rng.choice(sorted(TASKS))
    seen, unseen = TASKS[task]
    template = unseen if phrasing == "held-out" else rng.choice(seen)
    if task in ("reverse", "upper"):
        while True:
            w = rng.choice(_WORDS)
            if (w in _HELD_OUT_WORDS) == held_out:
                break
        answer = w[::-1] if task == "reverse" else w.upper()
        return Example(task, template.format(w=w), answer, phrasing)
    if task == "add":
        while True:
            a, b = rng.choice(_PAIRS)
            if ((a, b) in _HELD_OUT_PAIRS) == held_out:
                break
        return Example(task, template.format(a=a, b=b), str(a + b), phrasing)
    f = rng.choice(sorted(_FACTS))  # facts cannot be held out: a model can only know what it read
    return Example(task, template.format(f=f), _FACTS[f], phrasing)


def make_dialogue(rng: random.Random, split: str = "train") -> list[dict]:
    """One conversation: an optional system prompt, then one or two user requests, each answered.

    ``split="train"`` uses the training words, number pairs and phrasings;
    ``"val"`` the held-out words and pairs with the training phrasings.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    messages = []
    if rng.random() < 0.5:
        messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    for _ in range(1 if rng.random() < 2 / 3 else 2):  # a third of the conversations have a second turn
        ex = _example(rng, split == "val", "seen")
        messages += [{"role": "user", "content": ex.request}, {"role": "assistant", "content": ex.answer}]
    return messages


def make_dialogues(n: int, seed: int = 0, split: str = "train") -> list[list[dict]]:
    """``n`` conversations from ``make_dialogue``, reproducible from ``seed``."""
    rng = random.Random(seed)
    return [make_dialogue(rng, split) for _ in range(positive_int("n", n))]


def test_prompts(n: int, seed: int = 0) -> list[tuple[list[dict], Example]]:
    """``n`` held-out prompts: new words and number pairs, half of them in the held-out phrasing.

    Each is ``(messages, example)``: the conversation to reply to (no system prompt, one
    user turn) and the request with its expected answer.
    """
    rng = random.Random(10_000 + seed)
    out = []
    for i in range(positive_int("n", n)):
        ex = _example(rng, True, "held-out" if i % 2 else "seen")
        out.append(([{"role": "user", "content": ex.request}], ex))
    return out


test_prompts.__test__ = False  # not a pytest test, despite its name


def batch_fn(batch_size: int, train_on: str = "assistant", block: int = BLOCK):
    """``get_batch(split, generator) -> (tokens, mask)`` for ``lmcourse.train.train``.

    Each row is one fresh conversation, padded on the right with ``<pad>`` (masked
    out) to the batch's longest, at most ``block`` tokens; ``train_on`` is :func:`format_chat`'s.
    """
    batch_size, block = positive_int("batch_size", batch_size), positive_int("block", block)

    def get_batch(split: str, generator: torch.Generator):
        rng = random.Random(int(torch.randint(2**62, (1,), generator=generator)))
        rows = [format_chat(make_dialogue(rng, split), train_on=train_on) for _ in range(batch_size)]
        longest = max(len(ids) for ids, _ in rows)
        if longest > block:
            raise ValueError(f"a dialogue of {longest} tokens does not fit block={block}")
        # Pad to this batch's longest dialogue only: padding is masked out, but it still costs compute.
        tokens = torch.full((batch_size, longest), PAD, dtype=torch.long)
        mask = torch.zeros((batch_size, longest), dtype=torch.bool)
        for row, (ids, m) in enumerate(rows):
            tokens[row, :len(ids)] = torch.tensor(ids)
            mask[row, :len(ids)] = torch.tensor(m)
        return tokens, mask

    return get_batch


# ---------------------------------------------------------------------------
# Replying, and scoring the replies


@dataclass(frozen=True)
class Reply:
    """What the model wrote after ``<|assistant|>``: its text, and how it stopped.

    ``ended`` is True if it closed its turn with ``<|end|>``; ``role_token`` is True if
    it wrote a role token instead (started a user turn, say); neither means it ran out
    of ``max_new_tokens``.
    """

    text: str
    ended: bool
    role_token: bool

    @property
    def well_formed(self) -> bool:
        return self.ended and not self.role_token


def reply(model, messages, max_new_tokens: int = 16) -> Reply:
    """The model's greedy reply to ``messages``, generated until ``<|end|>`` (or a role token)."""
    from lmcourse.generate import stream

    ids, _ = format_chat(messages, add_generation_prompt=True)
    out = []
    for token in stream(model, torch.tensor(ids), max_new_tokens, temperature=0.0):
        t = int(token[0])
        if t == END:
            return Reply(decode(out), True, False)
        if t in (SYSTEM, USER, ASSISTANT, PAD):
            return Reply(decode(out), False, True)
        out.append(t)
    return Reply(decode(out), False, False)


def rule_based_reply(messages) -> Reply:
    """The baseline a programmer writes from the training phrasings: match one exactly, answer.

    It is perfect on the phrasings it knows and says nothing to any other.
    """
    import re

    text = messages[-1]["content"]
    for task, (seen, _) in TASKS.items():
        for template in seen:
            pattern = re.escape(template).replace(r"\{w\}", "([a-z]+)").replace(r"\{f\}", "([a-z]+)")
            pattern = pattern.replace(r"\{a\}", "([0-9])").replace(r"\{b\}", "([0-9])")
            m = re.fullmatch(pattern, text)
            if m is None:
                continue
            g = m.groups()
            if task == "reverse":
                return Reply(g[0][::-1], True, False)
            if task == "upper":
                return Reply(g[0].upper(), True, False)
            if task == "add":
                return Reply(str(int(g[0]) + int(g[1])), True, False)
            return Reply(_FACTS.get(g[0], ""), True, False)
    return Reply("", True, False)


def score_replies(replies: list[Reply], examples: list[Example]) -> dict:
    """Share of replies well formed, and of replies well formed and exactly right, overall and per task."""
    if len(replies) != len(examples) or not replies:
        raise ValueError(f"need as many replies as examples (at least one), got {len(replies)} and {len(examples)}")
    right = [r.well_formed and r.text == e.answer for r, e in zip(replies, examples)]
    out = {"format": sum(r.well_formed for r in replies) / len(replies), "accuracy": sum(right) / len(right)}
    for task in sorted(TASKS):
        hits = [ok for ok, e in zip(right, examples) if e.task == task]
        out[task] = sum(hits) / len(hits) if hits else float("nan")
    return out
