"""Scaling laws: count the compute, sweep model size and data, fit the power laws.

How much better does a language model get with more parameters N or more
training tokens D, and how should a fixed compute budget be split between them?

    C = training_flops(N, D)                      # 6 N D: forward 2 N D, backward 4 N D
    a, alpha = fit_power_law(N, L)                # L ~ a * N^-alpha (Kaplan et al. 2020)
    fit = fit_loss_surface(N, D, L)               # L ~ E + A/N^alpha + B/D^beta (Hoffmann et al. 2022)
    N_opt, D_opt = compute_optimal(fit, C)        # the best split of C under that fit

    result = sweep(budget)                        # train small GPTs over a grid of N and D

The sweep trains one run per (N, D), each with its own cosine schedule decayed
over exactly its D tokens, as Hoffmann et al. (2022, §3.1) did: reading the
loss of a long run at an earlier step would score a model whose learning rate
had not yet decayed, and overstate the loss at small D. Each run's result is
kept in ``$LMCOURSE_HOME/results/scaling/`` (written atomically), keyed by
every setting that changes it, so a rerun reads it back instead of training;
the results of the ``cpu`` sweep ship in ``lmcourse/results/scaling_cpu.json``
(``benchmarks/bench_scaling.py --budget cpu --write`` remakes it).

N is the non-embedding parameter count, as Kaplan et al. (2020) count it: every
parameter except the token and position embeddings (the course's GPT ties the
output head to the token embedding, so the head is left out too).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from dataclasses import asdict, dataclass, field
from importlib import resources

import numpy as np
import torch
from scipy import optimize

from lmcourse import atomic, runtime
from lmcourse.validate import number, positive_int

__all__ = ["LossFit", "Run", "Sweep", "compute_optimal", "fit_loss_surface", "fit_power_law",
           "non_embedding_params", "shipped_path", "sweep", "training_flops", "write_shipped"]

HUBER_DELTA = 1e-3  # Hoffmann et al. (2022): Huber loss on log-loss residuals, delta = 1e-3


# ---------------------------------------------------------------------------
# Counting


def _positive(name: str, values) -> np.ndarray:
    """``values`` as a 1-D float array of positive finite numbers, or a clear error."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of positive numbers, got {values!r}") from None
    arr = np.atleast_1d(arr)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one 1-D array of numbers, got shape {arr.shape}")
    bad = ~(np.isfinite(arr) & (arr > 0))
    if bad.any():
        raise ValueError(f"{name} must hold positive finite numbers; entry {int(np.argmax(bad))} "
                         f"is {arr[bad][0]!r}")
    return arr


def training_flops(N, D):
    """Training compute, 6 N D floating-point operations (Kaplan et al. 2020, §2.1).

    Each token costs 2 N in the forward pass (a multiply and an add per
    weight) and 4 N in the backward pass (gradients for the activations and
    for the weights, each as costly as the forward). Attention over the
    context adds about 6 n_layer n_ctx n_embd per token, small when
    n_embd is large next to n_ctx. Scalars give a float, arrays an array.
    """
    n, d = _positive("N", N), _positive("D", D)
    if n.size != d.size and 1 not in (n.size, d.size):
        raise ValueError(f"N and D must have equal lengths (or one be a scalar), got {n.size} and {d.size}")
    flops = 6.0 * n * d
    return float(flops[0]) if np.ndim(N) == 0 and np.ndim(D) == 0 else flops


def non_embedding_params(model: torch.nn.Module) -> int:
    """Kaplan et al.'s N: all parameters but the token and position embeddings.

    The course's GPT ties its output head to the token embedding, so the
    head is one of the excluded matrices.
    """
    total = sum(p.numel() for p in model.parameters())
    for name in ("tok_emb", "pos_emb"):
        table = getattr(model, name, None)
        if table is not None:
            total -= table.weight.numel()
    return total


# ---------------------------------------------------------------------------
# Fitting


def _pair(x, y, x_name: str, y_name: str, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = _positive(x_name, x), _positive(y_name, y)
    if x.size != y.size:
        raise ValueError(f"{x_name} and {y_name} must have equal lengths, got {x.size} and {y.size}")
    if x.size < minimum:
        raise ValueError(f"need at least {minimum} points to fit {minimum} parameters, got {x.size}")
    return x, y


def fit_power_law(x, y, *, delta: float = HUBER_DELTA) -> tuple[float, float]:
    """``(a, alpha)`` with ``y ~ a * x**-alpha``, a Huber fit of the logs.

    In log space a power law is a straight line, log y = log a - alpha log x;
    the Huber loss (quadratic for small residuals, linear for large ones)
    keeps one bad run from dragging the line (Hoffmann et al. 2022).
    """
    x, y = _pair(x, y, "x", "y", 2)
    if np.unique(x).size < 2:
        raise ValueError("x must hold at least 2 distinct values: one x cannot give a slope")
    lx, ly = np.log(x), np.log(y)
    slope, intercept = np.polyfit(lx, ly, 1)  # least squares: the starting point
    result = optimize.least_squares(lambda p: p[0] - p[1] * lx - ly, [intercept, -slope],
                                    loss="huber", f_scale=delta, x_scale=[1.0, 0.1])
    log_a, alpha = result.x
    return float(math.exp(log_a)), float(alpha)


@dataclass(frozen=True)
class LossFit:
    """A fitted L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022, eq. 2).

    E is the loss of an ideal model with infinite N and D: the entropy of the
    text, which no model can beat. The two terms above it are what a finite
    model and finite data cost.
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float  # the summed Huber loss at the optimum
    points: int  # how many (N, D, L) points were fitted

    def loss(self, N, D):
        """The fitted loss at ``N`` parameters and ``D`` tokens (scalars or arrays)."""
        N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
        out = self.E + self.A / N ** self.alpha + self.B / D ** self.beta
        return float(out) if out.ndim == 0 else out

    def __str__(self) -> str:
        return (f"L(N, D) = {self.E:.3f} + {self.A:.3g}/N^{self.alpha:.3f} + "
                f"{self.B:.3g}/D^{self.beta:.3f}  ({self.points} points)")


def _surface_residuals(p: np.ndarray, lN: np.ndarray, lD: np.ndarray, lL: np.ndarray) -> np.ndarray:
    """log L_hat - log L, with log L_hat = logsumexp(a - alpha log N, b - beta log D, e)."""
    a, b, e, alpha, beta = p
    stacked = np.stack(np.broadcast_arrays(a - alpha * lN, b - beta * lD, e + 0 * lN))
    return np.logaddexp.reduce(stacked, axis=0) - lL


def _surface_jacobian(p: np.ndarray, lN: np.ndarray, lD: np.ndarray, lL: np.ndarray) -> np.ndarray:
    """d residual / d (a, b, e, alpha, beta): the softmax weights of the three terms."""
    a, b, e, alpha, beta = p
    terms = np.stack(np.broadcast_arrays(a - alpha * lN, b - beta * lD, e + 0 * lN))
    w = np.exp(terms - np.logaddexp.reduce(terms, axis=0))
    return np.stack([w[0], w[1], w[2], -w[0] * lN, -w[1] * lD], axis=1)


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    small = np.abs(r) <= delta
    return np.where(small, 0.5 * r ** 2, delta * (np.abs(r) - 0.5 * delta))


def fit_loss_surface(N, D, L, *, delta: float = HUBER_DELTA, starts: int = 12) -> LossFit:
    """Fit L = E + A/N^alpha + B/D^beta to runs ``(N[i], D[i], L[i])``, as Hoffmann et al. do.

    Their recipe (2022, §3.3): minimise the Huber loss (delta = 1e-3) between
    the predicted and the observed log-loss, over a = log A, b = log B,
    e = log E, alpha and beta, from a grid of starting points, and keep the
    best. The objective has many shallow valleys (A and alpha trade off
    against each other), so one start is not enough. Here the whole grid is
    scored first and the ``starts`` best points are optimised with BFGS
    (the paper used L-BFGS; with five parameters the full BFGS is as cheap).
    The exponents are not constrained: a negative one would be a finding.
    """
    N, L = _pair(N, L, "N", "L", 5)
    D, _ = _pair(D, L, "D", "L", 5)
    if np.unique(N).size < 2 or np.unique(D).size < 2:
        raise ValueError("N and D must each hold at least 2 distinct values: a surface needs "
                         "variation in both directions")
    positive_int("starts", starts)
    lN, lD, lL = np.log(N), np.log(D), np.log(L)
    grid = np.array(list(itertools.product(
        np.arange(0.0, 26.0, 2.5),          # a = log A
        np.arange(0.0, 26.0, 2.5),          # b = log B
        np.linspace(-1.0, 1.0, 5) + math.log(L.min()),  # e = log E, near the lowest loss seen
        (0.05, 0.2, 0.5, 1.0, 1.5),        # alpha
        (0.05, 0.2, 0.5, 1.0, 1.5),        # beta
    )))
    a, b, e, al, be = (grid[:, i:i + 1] for i in range(5))
    pred = np.logaddexp(np.logaddexp(a - al * lN, b - be * lD), e)
    scores = _huber(pred - lL, delta).sum(axis=1)
    def objective_and_grad(p):
        r = _surface_residuals(p, lN, lD, lL)
        return _huber(r, delta).sum(), np.clip(r, -delta, delta) @ _surface_jacobian(p, lN, lD, lL)

    best = None
    for p0 in grid[np.argsort(scores)[:starts]]:
        res = optimize.minimize(objective_and_grad, p0, jac=True, method="BFGS",
                                options={"maxiter": 1000, "gtol": 1e-9})
        if best is None or res.fun < best[0]:
            best = (float(res.fun), res.x)
    objective, (a, b, e, alpha, beta) = best
    return LossFit(E=math.exp(e), A=math.exp(a), B=math.exp(b), alpha=float(alpha), beta=float(beta),
                   objective=objective, points=int(N.size))


def compute_optimal(fit, C) -> tuple[float, float]:
    """``(N_opt, D_opt)``: the split of ``C`` FLOPs that minimises ``fit.loss``, with 6 N D = C.

    On the budget line D = C / (6 N), so the loss is a function of N alone;
    it is searched over log N from 1 parameter to C/6 (1 token). For the
    Hoffmann form there is a closed form (their eq. 4), which the tests
    check this against; the search works for any ``fit`` with a ``loss``.
    """
    if not callable(getattr(fit, "loss", None)):
        raise TypeError(f"fit must have a loss(N, D) method (a LossFit), got {type(fit).__name__}")
    C = number("C", C, low=0, low_open=True)
    if C <= 6:
        raise ValueError(f"C must exceed 6 FLOPs (one parameter trained on one token), got {C!r}")
    top = math.log(C / 6)

    def loss_at(u: float) -> float:
        n = math.exp(u)
        return fit.loss(n, C / (6 * n))

    res = optimize.minimize_scalar(loss_at, bounds=(0.0, top), method="bounded",
                                   options={"xatol": 1e-9 * max(1.0, top)})
    n_opt = math.exp(res.x)
    return n_opt, C / (6 * n_opt)


# ---------------------------------------------------------------------------
# The sweep


@dataclass(frozen=True)
class Run:
    """One trained GPT of the sweep and its result."""

    n_layer: int
    n_embd: int
    n_head: int
    N: int  # non-embedding parameters (Kaplan et al.'s count)
    params: int  # every parameter, embeddings included
    steps: int
    D: int  # training tokens: steps * batch_size * block_size
    val_loss: float  # nats per character on the validation text
    train_loss: float  # mean of the last 10 training steps
    seconds: float  # wall time of the training
    key: str
    source: str = "trained"  # "trained" now, "cache" ($LMCOURSE_HOME) or "shipped" (package data)

    @property
    def flops(self) -> float:
        return training_flops(self.N, self.D)


@dataclass
class Sweep:
    """The runs of one sweep, with the baselines on the same validation text."""

    budget_name: str
    runs: list[Run]
    unigram_loss: float  # nats per character of the unigram (add-one) model
    settings: dict = field(default_factory=dict)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``N, D, L`` as float arrays, one entry per run."""
        return (np.array([r.N for r in self.runs], float), np.array([r.D for r in self.runs], float),
                np.array([r.val_loss for r in self.runs], float))

    def count(self, source: str) -> int:
        return sum(r.source == source for r in self.runs)

    @property
    def train_seconds(self) -> float:
        """Training time of the runs trained in this call."""
        return sum(r.seconds for r in self.runs if r.source == "trained")

    def grid(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``Ns`` (sorted), ``Ds`` (sorted) and the loss table ``L[i, j]`` at (Ns[i], Ds[j])."""
        Ns = sorted({r.N for r in self.runs})
        Ds = sorted({r.D for r in self.runs})
        table = np.full((len(Ns), len(Ds)), np.nan)
        for r in self.runs:
            table[Ns.index(r.N), Ds.index(r.D)] = r.val_loss
        return np.array(Ns, float), np.array(Ds, float), table

    def __str__(self) -> str:
        lines = [f"{'shape':>8} {'N':>9} {'D':>10} {'val loss':>9} {'seconds':>8}  source"]
        for r in self.runs:
            # A shipped run's time was measured on another (shared) machine: not comparable.
            seconds = "-" if r.source == "shipped" else f"{r.seconds:.1f}"
            lines.append(f"{r.n_layer:>3} x {r.n_embd:<4} {r.N:>9,} {r.D:>10,} {r.val_loss:9.3f} "
                         f"{seconds:>8}  {r.source}")
        lines.append(f"unigram baseline: {self.unigram_loss:.3f} nats per character")
        return "\n".join(lines)

    __repr__ = __str__


def shipped_path(budget_name: str):
    """Where the package keeps the saved results of a sweep (a Traversable)."""
    return resources.files("lmcourse").joinpath("results", f"scaling_{budget_name}.json")


def _shipped_runs(budget_name: str) -> dict:
    try:
        raw = json.loads(shipped_path(budget_name).read_text())
        return raw.get("runs", {}) if isinstance(raw, dict) else {}
    except (FileNotFoundError, ValueError):
        return {}


def _cache_path(key: str):
    from lmcourse.grading.learner_progress import home

    return home() / "results" / "scaling" / f"{key}.json"


def _as_run(saved: dict, source: str) -> Run:
    return Run(**{k: v for k, v in saved.items() if k in Run.__dataclass_fields__ and k != "source"},
               source=source)


def _read_cached(key: str) -> dict | None:
    path = _cache_path(key)
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
        _as_run(saved, "cache")  # it must still make a Run
        return saved
    except (OSError, ValueError, TypeError):
        atomic.set_aside(path)  # unreadable: keep it aside for a look and train again
        return None


_DATA: dict = {}  # the last corpus the sweep read, by (chars, batch, block, device)


def _head_count(n_embd: int) -> int:
    """Heads of 16 dimensions where the width allows, else one head."""
    return n_embd // 16 if n_embd % 16 == 0 and n_embd >= 16 else 1


@torch.no_grad()
def _val_loss(model: torch.nn.Module, ids: torch.Tensor, block_size: int, dev) -> float:
    """Mean next-character loss over every non-overlapping window of ``ids``."""
    from lmcourse.data.batching import sequential_windows

    x, y = sequential_windows(ids, block_size)
    model.eval()
    total = 0.0
    for i in range(0, len(x), 256):
        logits, _ = model(x[i:i + 256].to(dev))
        total += torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)), y[i:i + 256].reshape(-1).to(dev),
            reduction="sum").item()
    model.train()
    return total / y.numel()


def _train_one(settings: dict, n_layer: int, n_embd: int, steps: int, data, val_ids, dev) -> dict:
    """Train one GPT for ``steps`` updates with a cosine schedule over exactly those steps."""
    from lmcourse.models.gpt import GPT, GPTConfig
    from lmcourse.train import TrainConfig, train

    runtime.seed_everything(settings["seed"])  # the same initial draw for a shape at every D
    model = GPT(GPTConfig(vocab_size=data.vocab_size, block_size=settings["block_size"],
                          n_layer=n_layer, n_head=_head_count(n_embd), n_embd=n_embd))
    config = TrainConfig(steps=steps, lr=settings["lr"], warmup_steps=max(1, steps // 10),
                         schedule="cosine", eval_batches=0, progress=False, seed=settings["seed"],
                         log_interval=max(1, steps // 10))
    start = time.perf_counter()
    history = train(model, data.batches.get, config, device=dev)
    seconds = time.perf_counter() - start
    return {"N": non_embedding_params(model), "params": sum(p.numel() for p in model.parameters()),
            "val_loss": _val_loss(model, val_ids, settings["block_size"], dev),
            "train_loss": history.final_train_loss, "seconds": seconds}


def _check_grid(shapes, steps) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    try:
        shapes = tuple((positive_int("n_layer", s[0]), positive_int("n_embd", s[1])) for s in shapes)
        assert all(len(s) == 2 for s in shapes)
    except (TypeError, IndexError, AssertionError):
        raise TypeError(f"shapes must be (n_layer, n_embd) pairs of integers, got {shapes!r}") from None
    steps = tuple(positive_int("steps", s) for s in steps)
    if len(set(shapes)) < 2 or len(set(steps)) < 2:
        raise ValueError(f"a sweep needs at least 2 distinct shapes and 2 distinct step counts, "
                         f"got shapes={shapes} and steps={steps}")
    return shapes, steps


def sweep(budget: runtime.Budget | str | None = None, *, shapes=None, steps=None, seed: int = 0,
          device: torch.device | str | None = None, use_shipped: bool = True,
          verbose: bool = False) -> Sweep:
    """Train a GPT for every (shape, steps) pair on Shakespeare characters; see the module docstring.

    Sizes come from ``budget``: ``scaling_shapes`` (n_layer, n_embd) and
    ``scaling_steps``, with its ``batch_size``, ``block_size``,
    ``gpt_learning_rate`` and ``corpus_chars``; the validation loss is taken
    over the first ``eval_tokens`` characters of the validation split.
    ``shapes`` and ``steps`` override the budget's grid. A run found in the
    cache, or (``use_shipped``) in the package's saved results, is not
    trained again. Returns the runs in grid order.
    """
    from lmcourse.models.ngram import NGramModel
    from lmcourse.scoreboard import char_data

    b = runtime.budget(budget)
    shapes, steps = _check_grid(shapes if shapes is not None else b.scaling_shapes,
                                steps if steps is not None else b.scaling_steps)
    dev = torch.device(device) if device is not None else runtime.device()
    data_key = (b.corpus_chars, b.batch_size, b.block_size, str(dev))
    if data_key not in _DATA:  # reading and encoding the corpus takes seconds: once per process
        _DATA.clear()
        _DATA[data_key] = char_data(b, device=dev)
    data = _DATA[data_key]
    val_ids = data.batches.splits.val[: b.eval_tokens + 1]
    settings = {"corpus": hashlib.sha256(data.text.encode("utf-8")).hexdigest()[:16],
                "corpus_chars": len(data.text), "batch_size": b.batch_size, "block_size": b.block_size,
                "lr": b.gpt_learning_rate, "schedule": "cosine, warm-up steps // 10, min lr 0.1 x",
                "seed": int(seed), "eval_tokens": len(val_ids) - 1, "model": "GPT, heads of 16 dims"}
    shipped = _shipped_runs(b.name) if use_shipped else {}
    runs = []
    for (n_layer, n_embd), n_steps in itertools.product(shapes, steps):
        run_settings = {**settings, "n_layer": n_layer, "n_embd": n_embd, "steps": n_steps}
        key = hashlib.sha256(json.dumps(run_settings, sort_keys=True).encode()).hexdigest()[:20]
        found, source = _read_cached(key), "cache"
        if found is None and key in shipped:
            found, source = shipped[key], "shipped"
        if found is None:
            result = _train_one(settings, n_layer, n_embd, n_steps, data, val_ids, dev)
            found, source = {**result, "n_layer": n_layer, "n_embd": n_embd, "n_head": _head_count(n_embd),
                             "steps": n_steps, "D": n_steps * b.batch_size * b.block_size, "key": key}, "trained"
            atomic.write_json(_cache_path(key), {**found, "source": "cache", "settings": run_settings})
        run = _as_run(found, source)
        runs.append(run)
        if verbose:
            print(f"{n_layer} x {n_embd:<4} N={run.N:>9,}  D={run.D:>10,}  loss {run.val_loss:.3f}  ({source})")
    train_ids = data.batches.splits.train.numpy()
    unigram = NGramModel(1, data.vocab_size, smoothing="add-k", k=1.0).fit(train_ids)
    unigram_loss = float(-unigram.token_log_probs(val_ids.numpy())[1:].mean())
    return Sweep(b.name, runs, unigram_loss, settings)


def write_shipped(result: Sweep, command: str) -> None:
    """Save a sweep's runs as the package's results for its budget (used by the benchmark)."""
    from pathlib import Path

    path = Path(str(shipped_path(result.budget_name)))
    runs = {r.key: {k: v for k, v in asdict(r).items() if k != "source"} for r in result.runs}
    atomic.write_json(path, {"budget": result.budget_name, "command": command, "settings": result.settings,
                             "unigram_loss": result.unigram_loss, "runs": runs,
                             "torch": torch.__version__, "when": time.strftime("%Y-%m-%d %H:%M:%S")})
