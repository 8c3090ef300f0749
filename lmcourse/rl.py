"""Reinforcement learning with a verifiable reward: GRPO on two-digit addition.

The task: prompts such as ``37+48=`` and a three-digit answer, ``085``. A
program checks an answer exactly, so the reward needs no human and no learned
reward model. That is RLVR, reinforcement learning from verifiable rewards
(the name from Lambert et al. 2024, Tulu 3), as opposed to RLHF (Ouyang et al.
2022), whose reward is a model trained on human preferences and can be fooled.

GRPO, group relative policy optimisation (Shao et al. 2024, DeepSeekMath; used
at scale for DeepSeek-R1, DeepSeek-AI 2025), is PPO (Schulman et al. 2017)
without the value network. For each prompt it samples a group of G answers
from the model itself, scores them, and uses the group as its own baseline:

    advantage_i = (r_i - mean(r_group)) / (std(r_group) + eps)
    loss = -mean_i,t( advantage_i * log p(token_t of answer i) ) + beta * KL(policy || reference)

A better-than-its-group answer is made more likely, a worse one less likely.
Subtracting the group's mean does not change the expected gradient (a baseline
that does not depend on the action has zero expected score-function gradient,
Williams 1992) but it removes most of its variance: without it every sampled
answer to an easy prompt would be pushed up, and mostly the noise would move
the weights. PPO learns a value network to give that baseline; GRPO gets it
for the price of sampling G answers per prompt.

Two consequences to know. A group whose answers all got the same reward (all
right, or all wrong) has zero advantages: it gives no signal at all, so RL
needs a start that is right sometimes, which is why it comes after supervised
training. And the model maximises what the checker rewards, not what was
meant: a loose checker gets gamed (reward hacking), so :func:`check` accepts
the exact answer only.

Here each sampled batch is used for one gradient step, so the policy that
sampled is the policy being updated: PPO's probability ratio is exactly 1 and
its clipping never acts, and the objective above is the whole of it. What
keeps the model near its supervised start is the KL penalty, estimated per
token as in DeepSeekMath: ``exp(q - p) - (q - p) - 1`` with ``p``, ``q`` the
policy's and the reference's log-probabilities (never negative, zero when the
two agree).

The training step runs in the course's one loop, :func:`lmcourse.train.train`:
:class:`GRPOLoss` is its ``loss_fn``, and sampling happens inside it.
"""
from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lmcourse.generate import generate
from lmcourse.train import TrainConfig, train
from lmcourse.validate import non_negative_int, number, positive_int

__all__ = ["VOCAB", "PROMPT_LEN", "ANSWER_LEN", "split_problems", "encode_prompts", "encode_answers",
           "answer_text", "decode", "check", "rewards", "sft_batches", "sample_group", "completion_log_probs",
           "group_advantages", "grpo_loss", "GRPOLoss", "grpo_train", "accuracy", "supervised_start"]

VOCAB = "0123456789+="
PROMPT_LEN = 6  # "37+48=": both numbers written with two digits, 07 for 7
ANSWER_LEN = 3  # "085": the sum, 0 .. 198, written with three digits
_ID = {ch: i for i, ch in enumerate(VOCAB)}
N_PROBLEMS = 100 * 100

Problem = tuple  # (a, b), two ints in 0 .. 99


def _check_problems(problems) -> list[tuple[int, int]]:
    if isinstance(problems, (str, bytes)) or not hasattr(problems, "__len__") or len(problems) == 0:
        raise ValueError(f"problems must be a non-empty list of (a, b) pairs of ints in 0..99, got {problems!r}")
    out = []
    for p in problems:
        if (not isinstance(p, (tuple, list)) or len(p) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= 99 for x in p)):
            raise ValueError(f"each problem must be a pair (a, b) of ints in 0..99, got {p!r}")
        out.append((int(p[0]), int(p[1])))
    return out


def split_problems(n_test: int, seed: int = 0) -> tuple[list[Problem], list[Problem]]:
    """All 10,000 problems a+b (a, b in 0..99), shuffled and split into (train, test).

    The ``n_test`` test problems are held out from supervised training and RL
    alike: accuracy on them measures addition learned, not answers memorised.
    """
    n_test = positive_int("n_test", n_test)
    if n_test >= N_PROBLEMS:
        raise ValueError(f"n_test must leave training problems: at most {N_PROBLEMS - 1}, got {n_test}")
    problems = [(a, b) for a in range(100) for b in range(100)]
    random.Random(seed).shuffle(problems)
    return problems[n_test:], problems[:n_test]


def _answer(a: int, b: int) -> str:
    return f"{a + b:03d}"


def answer_text(problem: Problem) -> str:
    """The one answer the checker accepts: the sum in three digits, ``(37, 48)`` -> ``"085"``."""
    a, b = _check_problems([problem])[0]
    return _answer(a, b)


def encode_prompts(problems) -> torch.Tensor:
    """Token ids (N, PROMPT_LEN) of the prompts ``"37+48="``."""
    return torch.tensor([[_ID[c] for c in f"{a:02d}+{b:02d}="] for a, b in _check_problems(problems)])


def encode_answers(problems) -> torch.Tensor:
    """Token ids (N, ANSWER_LEN) of the correct answers."""
    return torch.tensor([[_ID[c] for c in _answer(a, b)] for a, b in _check_problems(problems)])


def decode(ids) -> str:
    """Token ids (1-D) back to text."""
    ids = torch.as_tensor(ids)
    if ids.ndim != 1:
        raise ValueError(f"decode takes a 1-D sequence of token ids, got shape {tuple(ids.shape)}")
    return "".join(VOCAB[i] for i in ids.tolist())


def check(problem: Problem, completion: str) -> bool:
    """The verifier: is ``completion`` exactly the three-digit sum? ``"85"``, ``"085 "``, ``"+85"`` are not."""
    if not isinstance(completion, str):
        raise TypeError(f"completion must be a str, got {type(completion).__name__}")
    return completion == answer_text(problem)


def rewards(problems, completions: torch.Tensor) -> torch.Tensor:
    """Reward 1.0 for each exactly right completion (N, ANSWER_LEN), 0.0 otherwise: shape (N,)."""
    problems = _check_problems(problems)
    if completions.ndim != 2 or completions.shape[0] != len(problems):
        raise ValueError(f"completions must have shape (N, answer length) with N = {len(problems)} problems, "
                         f"got {tuple(completions.shape)}")
    return torch.tensor([float(check(p, decode(c))) for p, c in zip(problems, completions.cpu())])


def sft_batches(problems, batch_size: int):
    """``get_batch(split, generator)`` for supervised training on ``problems``, for :func:`lmcourse.train.train`.

    A batch is (x, y): x the prompt and answer but the last token (N, 8), y the
    next tokens with the prompt positions set to -100, which cross-entropy
    ignores. The numbers in a prompt are random, so predicting them is noise;
    only the answer is learnt. Both splits draw from the same ``problems``.
    """
    prompts, answers = encode_prompts(problems), encode_answers(problems)
    batch_size = positive_int("batch_size", batch_size)
    full = torch.cat([prompts, answers], dim=1)

    def get_batch(split: str, generator: torch.Generator):
        rows = torch.randint(len(full), (batch_size,), generator=generator)
        x, y = full[rows, :-1], full[rows, 1:].clone()
        y[:, :PROMPT_LEN - 1] = -100  # the targets that are prompt tokens
        return x, y

    return get_batch


def sample_group(model, prompts: torch.Tensor, group_size: int, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """G sampled answers per prompt: (P * G, ANSWER_LEN), the G answers to prompt i in rows i*G .. i*G+G-1."""
    group_size = positive_int("group_size", group_size)
    if prompts.ndim != 2 or prompts.shape[1] != PROMPT_LEN:
        raise ValueError(f"prompts must have shape (P, {PROMPT_LEN}), got {tuple(prompts.shape)}")
    repeated = prompts.repeat_interleave(group_size, dim=0)
    out = generate(model, repeated, ANSWER_LEN, temperature=temperature, generator=generator)
    return out[:, PROMPT_LEN:]


def completion_log_probs(model, prompts: torch.Tensor, completions: torch.Tensor,
                         temperature: float = 1.0) -> torch.Tensor:
    """log p(answer token t | prompt, earlier answer tokens) for each row: shape (N, ANSWER_LEN).

    ``prompts`` (N, PROMPT_LEN) and ``completions`` (N, ANSWER_LEN); gradients
    flow. ``p`` is the distribution sampled from at ``temperature``,
    softmax(logits / temperature), so that RL trains the policy it samples.
    """
    if prompts.shape[0] != completions.shape[0]:
        raise ValueError(f"prompts and completions must have the same rows, got {tuple(prompts.shape)} "
                         f"and {tuple(completions.shape)}")
    full = torch.cat([prompts, completions], dim=1)
    logits, _ = model(full[:, :-1])
    logits = logits[:, PROMPT_LEN - 1:].float() / temperature  # the positions that predict answer tokens
    return torch.log_softmax(logits, dim=-1).gather(-1, completions[..., None]).squeeze(-1)


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-6) -> torch.Tensor:
    """GRPO's advantages: each reward minus its group's mean, over the group's std (+ eps).

    ``rewards`` (P * G,), groups of ``group_size`` consecutive entries. Each
    group's advantages sum to zero; a group whose rewards are all equal gets
    zeros (no signal). The std is the population one (divide by G).
    """
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    group_size = positive_int("group_size", group_size)
    if rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards must be 1-D with a length divisible by group_size={group_size}, "
                         f"got shape {tuple(rewards.shape)}")
    groups = rewards.view(-1, group_size)
    mean = groups.mean(dim=1, keepdim=True)
    std = groups.std(dim=1, keepdim=True, unbiased=False)
    return ((groups - mean) / (std + eps)).view(-1)


def grpo_loss(logp: torch.Tensor, ref_logp: torch.Tensor, advantages: torch.Tensor,
              kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GRPO's loss and the mean KL estimate, from per-token log-probabilities (N, L) and advantages (N,).

    ``-mean(advantage * logp) + kl_coef * mean(exp(ref - logp) - (ref - logp) - 1)``,
    means over every token of every answer.
    """
    if logp.ndim != 2 or ref_logp.shape != logp.shape or advantages.shape != logp.shape[:1]:
        raise ValueError(f"expected logp and ref_logp of shape (N, L) and advantages (N,), got "
                         f"{tuple(logp.shape)}, {tuple(ref_logp.shape)}, {tuple(advantages.shape)}")
    delta = ref_logp.detach() - logp
    kl = (torch.exp(delta) - delta - 1).mean()  # per token >= 0, zero where the two models agree
    return -(advantages.detach()[:, None] * logp).mean() + kl_coef * kl, kl.detach()


@dataclass
class GRPOLoss:
    """``loss_fn(model, prompts)`` for :func:`lmcourse.train.train`: sample, score, and the GRPO loss.

    ``batch`` is a (P, 2) LongTensor of problems (a, b). The loss samples
    ``group_size`` answers per problem at ``temperature`` from the model being
    trained, rewards them with :func:`rewards`, and returns
    ``-mean(advantage * log p) + kl_coef * mean(KL to reference)``, averaged over
    every answer token. ``log`` gets one record per step: mean reward, the
    fraction of groups with zero variance (no signal), the mean KL.
    """

    reference: torch.nn.Module
    group_size: int = 8
    kl_coef: float = 0.02
    temperature: float = 1.0
    log: list = field(default_factory=list)

    def __post_init__(self):
        self.group_size = positive_int("GRPOLoss.group_size", self.group_size)
        if self.group_size < 2:
            raise ValueError("GRPOLoss.group_size must be at least 2: a group of one is its own mean, "
                             "so its advantage is always 0")
        self.kl_coef = number("GRPOLoss.kl_coef", self.kl_coef, low=0)
        self.temperature = number("GRPOLoss.temperature", self.temperature, low=0, low_open=True)
        self.reference.eval()
        for p in self.reference.parameters():
            p.requires_grad_(False)

    def __call__(self, model, batch: torch.Tensor) -> torch.Tensor:
        problems = [tuple(p) for p in batch.tolist()]
        prompts = encode_prompts(problems).to(batch.device)
        completions = sample_group(model, prompts, self.group_size, self.temperature)
        prompts = prompts.repeat_interleave(self.group_size, dim=0)
        reward = rewards([p for p in problems for _ in range(self.group_size)], completions)
        advantage = group_advantages(reward, self.group_size).to(batch.device)
        logp = completion_log_probs(model, prompts, completions, self.temperature)
        with torch.no_grad():
            ref_logp = completion_log_probs(self.reference, prompts, completions, self.temperature)
        loss, kl = grpo_loss(logp, ref_logp, advantage, self.kl_coef)
        groups = reward.view(-1, self.group_size)
        self.log.append({"reward": reward.mean().item(),
                         "zero_variance": (groups.std(dim=1) == 0).float().mean().item(),
                         "kl": kl.item()})
        return loss


def grpo_train(model, problems, *, steps: int, prompts_per_step: int, group_size: int = 8, lr: float = 1e-3,
               kl_coef: float = 0.02, temperature: float = 1.0, warmup_steps: int = 0, seed: int = 0,
               device=None) -> tuple[GRPOLoss, object]:
    """Improve ``model`` in place with GRPO on ``problems``; the reference is a frozen copy of its start.

    Runs :func:`lmcourse.train.train` with :class:`GRPOLoss` (linear warm-up over
    ``warmup_steps``, then a constant learning rate, no weight decay, gradient
    clipping at 1) on ``device``, by default the model's own. Returns ``(loss_fn, history)``:
    ``loss_fn.log`` holds the reward curve.
    """
    problems = _check_problems(problems)
    steps, prompts_per_step = positive_int("steps", steps), positive_int("prompts_per_step", prompts_per_step)
    seed = non_negative_int("seed", seed)
    loss_fn = GRPOLoss(copy.deepcopy(model), group_size, kl_coef, temperature)
    table = torch.tensor(problems)

    def get_batch(split, generator):
        return table[torch.randint(len(table), (prompts_per_step,), generator=generator)]

    config = TrainConfig(steps=steps, lr=lr, weight_decay=0.0, min_lr_ratio=1.0, eval_batches=0,
                         warmup_steps=warmup_steps,
                         seed=seed, progress=False)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    loss_fn.reference.to(device)
    history = train(model, get_batch, config, loss_fn=loss_fn, device=device)
    return loss_fn, history


@torch.no_grad()
def accuracy(model, problems, batch_size: int = 1024) -> float:
    """The fraction of ``problems`` the model answers exactly right with greedy decoding."""
    problems = _check_problems(problems)
    batch_size = positive_int("batch_size", batch_size)
    device = next(model.parameters()).device
    right = 0.0
    for i in range(0, len(problems), batch_size):
        chunk = problems[i:i + batch_size]
        out = generate(model, encode_prompts(chunk).to(device), ANSWER_LEN, temperature=0.0)
        right += rewards(chunk, out[:, PROMPT_LEN:]).sum().item()
    return right / len(problems)


class _TargetReached(Exception):
    """Raised from ``train``'s ``on_eval`` callback to end supervised training early."""


def supervised_start(model, problems, val_problems, *, target: float, max_steps: int, check_every: int,
                     batch_size: int, lr: float, warmup_steps: int = 0, seed: int = 0,
                     device=None) -> list[tuple[int, float]]:
    """Supervised training on ``problems`` until greedy accuracy on ``val_problems`` reaches ``target``.

    RL needs a start that is right sometimes, and how many steps that takes
    varies a lot with the initialisation (a small model learns addition in a
    sudden jump, at a step that moves by hundreds between seeds). So instead
    of a fixed step count, accuracy on ``val_problems`` (training-side problems,
    never the test set) is measured every ``check_every`` steps and training
    stops at the first measurement at or above ``target``, or at ``max_steps``.
    Constant learning rate after a linear warm-up. Returns the measurements,
    ``[(step, accuracy), ...]``, the first at step 0.
    """
    problems, val_problems = _check_problems(problems), _check_problems(val_problems)
    target = number("target", target, low=0, high=1)
    max_steps, check_every = positive_int("max_steps", max_steps), positive_int("check_every", check_every)
    curve = []

    def measure(step, val_loss):
        curve.append((step, accuracy(model, val_problems)))
        if curve[-1][1] >= target:
            raise _TargetReached  # train() has no stopping rule of its own: end it from the callback

    config = TrainConfig(steps=max_steps, lr=lr, warmup_steps=warmup_steps, min_lr_ratio=1.0, eval_batches=1,
                         eval_interval=check_every, seed=seed, progress=False)
    try:
        train(model, sft_batches(problems, batch_size), config, device=device, on_eval=measure)
    except _TargetReached:
        pass
    model.train()
    return curve
