"""Differentially private training (DP-SGD), its privacy accountant, and memorisation canaries.

DP-SGD (Abadi et al. 2016), one step on a batch of examples:

    g_i   = grad of example i's loss                 per-sample gradients
    g_i  <- g_i * min(1, C / ||g_i||)                clip: no example moves the model by more than C
    g     = (sum_i g_i + N(0, sigma^2 C^2 I)) / L    noise hides whether any one example was there
    theta <- optimizer step with g

``L`` is the *expected* batch size ``q * N``: batches are drawn by Poisson
sampling (each of the N examples joins a batch independently with probability
``q``), which is what the accountant's analysis assumes. Dividing by the
realised batch size instead would leak the batch size, which depends on who is
in it. Everything after the noise (the optimizer, Adam's moments, momentum) is
post-processing and costs no privacy.

The accountant tracks Renyi differential privacy (RDP, Mironov 2017) of the
sampled Gaussian mechanism (Mironov, Talwar & Zhang 2019): RDP adds up over
steps, and is turned into an (epsilon, delta) guarantee at the end with the
conversion of Balle et al. (2020), the same one Opacus's RDP accountant uses.

Memorisation is measured with a canary (Carlini et al. 2019, "The Secret
Sharer"): plant a secret such as ``my PIN is 4 7 1 9`` in the training text,
then rank its likelihood under the model among every string of the same format.
Exposure = log2(#candidates) - log2(rank): about log2(e) = 1.4 bits for a model
that never saw it, log2(#candidates) when the secret is the model's first guess.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy.special import gammaln, logsumexp
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from lmcourse.validate import number, positive_int

__all__ = ["lm_loss", "per_sample_grads", "clip_per_sample", "dp_sgd_step", "poisson_sample",
           "StepStats", "train_private", "PrivateRun", "rdp_sampled_gaussian", "epsilon",
           "noise_for_epsilon", "DEFAULT_ORDERS", "WindowLM", "digit_candidates",
           "candidate_log_likelihoods", "Exposure", "exposure", "plant_canary"]

# Integer Renyi orders: the closed form below is exact for integers; larger orders
# matter only for tiny epsilons, small ones for large epsilons.
DEFAULT_ORDERS = tuple(range(2, 256))


# ---------------------------------------------------------------------------
# Per-sample gradients, clipping and the DP-SGD step


def lm_loss(outputs, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy for a classifier ``(B, K)`` or a language model ``(B, T, V)``.

    Models that return ``(logits, state)`` (the course's LM contract) are accepted as they are.
    """
    logits = outputs[0] if isinstance(outputs, tuple) else outputs
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def _trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def per_sample_grads(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                     loss_fn: Callable = lm_loss) -> dict[str, torch.Tensor]:
    """Each example's own gradient: ``{name: tensor of shape (B, *param.shape)}``.

    ``torch.func``: ``grad`` differentiates one example's loss, ``vmap`` runs it
    over the batch in one vectorised pass (no Python loop). The model is called
    on ``inputs[i][None]`` (a batch of one) so any ``nn.Module`` taking a batch
    works, provided its forward has no data-dependent Python (``.item()``,
    ``if tensor:``), which vmap cannot trace.
    """
    if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise TypeError("inputs and targets must be tensors with the batch on dimension 0")
    if inputs.shape[0] != targets.shape[0]:
        raise ValueError(f"inputs and targets must have the same batch size, got "
                         f"{inputs.shape[0]} and {targets.shape[0]}")
    params = {name: p.detach() for name, p in _trainable(model).items()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def one_loss(p, x, y):
        return loss_fn(functional_call(model, (p, buffers), (x[None],)), y[None])

    return vmap(grad(one_loss), in_dims=(None, 0, 0), randomness="different")(params, inputs, targets)


def clip_per_sample(grads: dict[str, torch.Tensor], max_norm: float
                    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Scale each example's whole gradient (all parameters together) to norm at most ``max_norm``.

    Returns the clipped gradients and each example's norm before clipping. The
    ``1e-6`` is Opacus's, so the two agree to rounding.
    """
    max_norm = number("max_norm", max_norm, low=0, low_open=True)
    flat = [g.reshape(g.shape[0], -1) for g in grads.values()]
    norms = torch.cat(flat, dim=1).norm(dim=1)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    clipped = {name: g * scale.view(-1, *([1] * (g.ndim - 1))) for name, g in grads.items()}
    return clipped, norms


@dataclass(frozen=True)
class StepStats:
    loss: float  # mean loss of the batch before the step (nan for an empty batch)
    batch_size: int
    clipped_fraction: float  # examples whose gradient norm exceeded the clip


def dp_sgd_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor,
                targets: torch.Tensor, *, max_grad_norm: float, noise_multiplier: float,
                expected_batch_size: float, loss_fn: Callable = lm_loss,
                generator: torch.Generator | None = None) -> StepStats:
    """One DP-SGD update: per-sample gradients, clip to C, sum, add N(0, (sigma C)^2), / L.

    An empty batch (Poisson sampling can draw one) still takes a step of pure
    noise: skipping it would tell an observer the batch was empty.
    """
    sigma = number("noise_multiplier", noise_multiplier, low=0)
    c = number("max_grad_norm", max_grad_norm, low=0, low_open=True)
    lot = number("expected_batch_size", expected_batch_size, low=0, low_open=True)
    params = _trainable(model)
    n = int(inputs.shape[0])
    if n:
        clipped, norms = clip_per_sample(per_sample_grads(model, inputs, targets, loss_fn), c)
        summed = {name: g.sum(0) for name, g in clipped.items()}
        with torch.no_grad():
            loss = float(loss_fn(model(inputs), targets))
        clipped_fraction = float((norms > c).float().mean())
    else:
        summed = {name: torch.zeros_like(p) for name, p in params.items()}
        loss, clipped_fraction = float("nan"), 0.0
    for name, p in params.items():
        # drawn where the generator lives (a CPU generator for a GPU model), then moved
        noise = torch.randn(p.shape, generator=generator, dtype=p.dtype,
                            device=generator.device if generator is not None else p.device).to(p.device)
        p.grad = (summed[name] + sigma * c * noise) / lot
    optimizer.step()
    return StepStats(loss, n, clipped_fraction)


def poisson_sample(n: int, sample_rate: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices of a Poisson-sampled batch: each of ``n`` examples joins with probability ``sample_rate``."""
    n = positive_int("n", n)
    q = number("sample_rate", sample_rate, low=0, high=1, low_open=True)
    return torch.nonzero(torch.rand(n, generator=generator) < q).flatten()


@dataclass
class PrivateRun:
    losses: list[float] = field(default_factory=list)  # batch loss per step
    steps: int = 0
    sample_rate: float = 0.0
    noise_multiplier: float = 0.0  # 0 for the non-private run
    private: bool = True

    def epsilon(self, delta: float) -> float:
        """The run's epsilon at ``delta``; infinite for the non-private run."""
        if not self.private:
            return math.inf
        return epsilon(self.noise_multiplier, self.sample_rate, self.steps, delta)[0]


def train_private(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, steps: int,
                  sample_rate: float, lr: float, max_grad_norm: float = 1.0,
                  noise_multiplier: float = 1.0, private: bool = True, seed: int = 0,
                  loss_fn: Callable = lm_loss) -> PrivateRun:
    """Train with DP-SGD on Poisson-sampled batches (Adam on the noisy gradient).

    ``private=False`` is the baseline: the same batches, optimizer and steps,
    with the ordinary mean-loss gradient (no clipping, no noise).
    """
    steps = positive_int("steps", steps)
    q = number("sample_rate", sample_rate, low=0, high=1, low_open=True)
    lr = number("lr", lr, low=0, low_open=True)
    n = int(inputs.shape[0])
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(_trainable(model).values(), lr=lr)
    run = PrivateRun(steps=steps, sample_rate=q, noise_multiplier=noise_multiplier if private else 0.0,
                     private=private)
    model.train()
    for _ in range(steps):
        idx = poisson_sample(n, q, gen)
        x, y = inputs[idx], targets[idx]
        if private:
            stats = dp_sgd_step(model, opt, x, y, max_grad_norm=max_grad_norm,
                                noise_multiplier=noise_multiplier, expected_batch_size=q * n,
                                loss_fn=loss_fn, generator=gen)
            run.losses.append(stats.loss)
        elif len(idx):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            run.losses.append(float(loss.detach()))
    model.eval()
    return run


# ---------------------------------------------------------------------------
# The accountant: RDP of the sampled Gaussian mechanism


def rdp_sampled_gaussian(sample_rate: float, noise_multiplier: float, order: int) -> float:
    """RDP of one step of the Poisson-sampled Gaussian mechanism at integer ``order`` (alpha).

    Mironov, Talwar & Zhang (2019), integer alpha:
        A = sum_k binom(alpha, k) (1-q)^(alpha-k) q^k exp((k^2 - k) / (2 sigma^2))
        RDP(alpha) = log(A) / (alpha - 1)
    summed in log space, since the terms overflow a float for small sigma.
    With q = 1 (every example in every batch) it is the Gaussian's alpha / (2 sigma^2).
    """
    q = number("sample_rate", sample_rate, low=0, high=1)
    sigma = number("noise_multiplier", noise_multiplier, low=0)
    alpha = positive_int("order", order)
    if alpha < 2:
        raise ValueError(f"order must be an integer >= 2, got {alpha}")
    if q == 0:
        return 0.0
    if sigma == 0:
        return math.inf
    if q == 1:
        return alpha / (2 * sigma ** 2)
    k = np.arange(alpha + 1, dtype=np.float64)
    log_binom = gammaln(alpha + 1) - gammaln(k + 1) - gammaln(alpha - k + 1)
    log_terms = log_binom + (alpha - k) * math.log1p(-q) + k * math.log(q) + (k * k - k) / (2 * sigma ** 2)
    return float(logsumexp(log_terms) / (alpha - 1))


def epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float,
            orders: Sequence[int] = DEFAULT_ORDERS) -> tuple[float, int]:
    """(epsilon, best order) after ``steps`` DP-SGD steps, at ``delta``.

    RDP composes by adding: ``steps * RDP(alpha)``. Each order gives an
    (epsilon, delta) bound (Balle et al. 2020, Theorem 21):
        eps = rdp - (log delta + log alpha) / (alpha - 1) + log((alpha - 1) / alpha)
    and all of them hold, so the smallest is reported.
    """
    steps = positive_int("steps", steps)
    delta = number("delta", delta, low=0, high=1, low_open=True, high_open=True)
    best = (math.inf, int(orders[0]))
    for alpha in orders:
        rdp = steps * rdp_sampled_gaussian(sample_rate, noise_multiplier, alpha)
        eps = rdp - (math.log(delta) + math.log(alpha)) / (alpha - 1) + math.log((alpha - 1) / alpha)
        if eps < best[0]:
            best = (max(0.0, eps), int(alpha))
    return best


def noise_for_epsilon(target_epsilon: float, sample_rate: float, steps: int, delta: float,
                      tolerance: float = 0.01) -> float:
    """The smallest noise multiplier whose epsilon is at most ``target_epsilon`` (bisection)."""
    target = number("target_epsilon", target_epsilon, low=0, low_open=True)
    low, high = 0.0, 1.0
    while epsilon(high, sample_rate, steps, delta)[0] > target:
        low, high = high, 2 * high
        if high > 1e4:
            raise ValueError(f"no noise multiplier up to 1e4 reaches epsilon {target}")
    while high - low > tolerance:
        mid = (low + high) / 2
        low, high = (low, mid) if epsilon(mid, sample_rate, steps, delta)[0] <= target else (mid, high)
    return high


# ---------------------------------------------------------------------------
# A small char LM that vmap can trace, and the canary


class WindowLM(nn.Module):
    """A neural n-gram char LM (Bengio et al. 2003): the next char from the previous ``context``.

    Follows the course's LM contract, ``logits, state = model(idx)`` with
    logits ``(B, T, vocab_size)`` (state is always None). Position t sees chars
    t-context+1..t; positions before the start read a padding id. It exists
    here because DP-SGD's vmap needs a forward without data-dependent Python:
    the course GPT checks its ids' range with ``.item()``, which vmap cannot trace.
    """

    def __init__(self, vocab_size: int, context: int, n_embd: int, hidden: int):
        super().__init__()
        self.vocab_size = positive_int("vocab_size", vocab_size)
        self.context = positive_int("context", context)
        self.emb = nn.Embedding(self.vocab_size + 1, positive_int("n_embd", n_embd))  # last row: padding
        self.hidden = nn.Linear(self.context * n_embd, positive_int("hidden", hidden))
        self.out = nn.Linear(hidden, self.vocab_size)

    def forward(self, idx: torch.Tensor, state=None):
        if idx.dtype != torch.long or idx.ndim != 2:
            raise ValueError(f"idx must be a (B, T) int64 tensor of ids, got {idx.dtype} {tuple(idx.shape)}")
        padded = F.pad(idx, (self.context - 1, 0), value=self.vocab_size)
        windows = padded.unfold(1, self.context, 1)  # (B, T, context)
        x = self.emb(windows).flatten(2)
        return self.out(torch.tanh(self.hidden(x))), None


def plant_canary(text: str, canary: str, copies: int, seed: int = 0) -> str:
    """``text`` with ``canary`` inserted at ``copies`` random line breaks (one per line)."""
    copies = positive_int("copies", copies)
    lines = text.split("\n")
    if len(lines) <= copies:
        raise ValueError(f"text has {len(lines)} lines; need more than copies={copies} to plant the canary")
    rng = np.random.default_rng(seed)
    where = set(rng.choice(np.arange(1, len(lines)), size=copies, replace=False).tolist())
    out = []
    for i, line in enumerate(lines):
        if i in where:
            out.append(canary)
        out.append(line)
    return "\n".join(out)


def digit_candidates(n_digits: int, sep: str = " ") -> list[str]:
    """Every secret of the format: ``digit_candidates(2)`` -> ['0 0', '0 1', ..., '9 9']."""
    n_digits = positive_int("n_digits", n_digits)
    if n_digits > 6:
        raise ValueError(f"n_digits={n_digits} gives 10**{n_digits} candidates; use at most 6")
    return [sep.join(d) for d in itertools.product("0123456789", repeat=n_digits)]


@torch.no_grad()
def candidate_log_likelihoods(model: nn.Module, encode: Callable[[str], list[int]], prefix: str,
                              candidates: Sequence[str], batch_size: int = 2048) -> torch.Tensor:
    """log p(candidate | prefix) in nats under ``model``, for each candidate (same length each)."""
    if not candidates:
        raise ValueError("candidates is empty")
    rows = [encode(prefix + c) for c in candidates]
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise ValueError("every candidate must encode to the same length (one secret format)")
    ids = torch.tensor(rows, dtype=torch.long)
    start = len(encode(prefix))
    if start == 0:
        raise ValueError("prefix must be non-empty: the model needs a context before the secret")
    was_training = model.training
    model.eval()
    out = []
    for chunk in ids.split(positive_int("batch_size", batch_size)):
        logits = model(chunk[:, :-1])
        logits = logits[0] if isinstance(logits, tuple) else logits
        logp = logits.float().log_softmax(-1).gather(-1, chunk[:, 1:, None]).squeeze(-1)
        out.append(logp[:, start - 1:].sum(1))  # only the secret's tokens
    model.train(was_training)
    return torch.cat(out)


@dataclass(frozen=True)
class Exposure:
    secret: str
    rank: int  # 1 = the most likely candidate; ties count against the secret
    n_candidates: int
    exposure: float  # log2(n_candidates) - log2(rank), in bits
    top_candidate: str  # the model's first guess

    @property
    def max_exposure(self) -> float:
        return math.log2(self.n_candidates)


def exposure(model: nn.Module, encode: Callable[[str], list[int]], prefix: str, secret: str,
             candidates: Sequence[str], batch_size: int = 2048) -> Exposure:
    """Carlini et al. (2019)'s exposure of ``secret`` after ``prefix`` among ``candidates``.

    The rank counts every candidate at least as likely as the secret, so a model
    that scores them all equal gets the worst rank, not the best.
    """
    candidates = list(candidates)
    if secret not in candidates:
        raise ValueError(f"secret {secret!r} is not among the candidates (wrong format?)")
    ll = candidate_log_likelihoods(model, encode, prefix, candidates, batch_size)
    mine = ll[candidates.index(secret)]
    rank = int((ll >= mine).sum())
    top = candidates[int(ll.argmax())]
    return Exposure(secret, rank, len(candidates), math.log2(len(candidates)) - math.log2(rank), top)
