"""The training loop: one loop for every PyTorch model in the course.

Read it top to bottom, like nanoGPT's train.py. One optimizer step is

    set the learning rate for this step (warm-up, then cosine or warmup-stable-decay)
    for each of `accumulation_steps` micro-batches:
        loss = loss_fn(model, batch)             # under autocast on a GPU
        (loss / accumulation_steps).backward()   # gradients add up across micro-batches
    clip the total gradient norm, optimizer.step(), zero the gradients

and around it: an evaluation on held-out data every `eval_interval` steps, a
checkpoint every `checkpoint_interval` steps (written atomically, so a crash
never leaves a broken file), resuming from that checkpoint with bit-identical
results, and a `History` of every step that plots itself.

    config = TrainConfig(steps=2000, lr=1e-3, warmup_steps=100, checkpoint_path="gpt.pt")
    history = train(model, get_batch, config)
    history.plot();
"""
from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lmcourse import atomic, runtime
from lmcourse.validate import non_negative_int, number, positive_int

# get_batch(split, generator) -> batch; for language models a batch is (x, y),
# two LongTensors of shape (B, T) where y is x shifted one token to the left.
GetBatch = Callable[[str, torch.Generator], Any]
LossFn = Callable[[torch.nn.Module, Any], torch.Tensor]
SCHEDULES = ("cosine", "wsd")


@dataclass
class TrainConfig:
    """How a model is trained. Every field has a default; a lesson sets a few."""

    steps: int = 1000  # optimizer updates
    lr: float = 1e-3  # peak learning rate, reached at the end of warm-up
    weight_decay: float = 0.1  # AdamW decay, on weight matrices only (see make_optimizer)
    betas: tuple[float, float] = (0.9, 0.99)  # beta2 = 0.99 suits small batches (nanoGPT's char model)
    warmup_steps: int = 0  # linear warm-up from lr / warmup_steps to lr
    min_lr_ratio: float = 0.1  # the decay ends at lr * min_lr_ratio
    schedule: str = "cosine"  # after warm-up: "cosine" decay, or "wsd" (warmup-stable-decay); see lr_at
    decay_fraction: float = 0.2  # "wsd" only: the share of the steps spent decaying, at the end
    grad_clip: float | None = 1.0  # largest total gradient norm; None turns clipping off
    accumulation_steps: int = 1  # micro-batches whose gradients add up to one update
    eval_interval: int = 100  # steps between validation measurements
    eval_batches: int = 10  # "val" batches averaged per measurement; 0 turns evaluation off
    log_interval: int = 10  # steps between reading losses off the device (one sync each)
    checkpoint_path: str | os.PathLike | None = None  # None: no checkpoints; if it exists, resume
    checkpoint_interval: int = 100  # steps between checkpoints (and always at the last step)
    mixed_precision: bool = True  # bf16/fp16 autocast on CUDA, fp32 elsewhere; False: fp32 everywhere
    precision: str = "auto"  # "auto" (as mixed_precision says), or "fp32", "bf16", "fp16" on CUDA or CPU
    compile: bool = False  # torch.compile the model for training steps: worth it for long GPU runs
    seed: int = 0  # seeds the batch stream and the global RNGs (dropout)
    progress: bool = True  # show a progress bar

    def __post_init__(self):
        if self.checkpoint_path is not None:
            self.checkpoint_path = os.fspath(self.checkpoint_path)  # plain str: saved in checkpoints
        # Counts: any integer type (np.int64 too), stored as plain ints; bools and floats are TypeErrors.
        for name in ("steps", "accumulation_steps", "eval_interval", "log_interval", "checkpoint_interval"):
            setattr(self, name, positive_int(f"TrainConfig.{name}", getattr(self, name)))
        for name in ("warmup_steps", "eval_batches", "seed"):
            setattr(self, name, non_negative_int(f"TrainConfig.{name}", getattr(self, name)))
        if self.warmup_steps > self.steps:
            raise ValueError(f"TrainConfig.warmup_steps must be at most steps={self.steps}, got {self.warmup_steps}")
        self.lr = number("TrainConfig.lr", self.lr, low=0, low_open=True)
        self.weight_decay = number("TrainConfig.weight_decay", self.weight_decay, low=0)
        self.min_lr_ratio = number("TrainConfig.min_lr_ratio", self.min_lr_ratio, low=0, high=1)
        self.decay_fraction = number("TrainConfig.decay_fraction", self.decay_fraction, low=0, high=1)
        if self.grad_clip is not None:
            self.grad_clip = number("TrainConfig.grad_clip", self.grad_clip, low=0, low_open=True)
        if isinstance(self.betas, (str, bytes)) or not hasattr(self.betas, "__len__") or len(self.betas) != 2:
            raise TypeError(f"TrainConfig.betas must be two numbers in [0, 1), got {self.betas!r}")
        self.betas = tuple(number(f"TrainConfig.betas[{i}]", b, low=0, high=1, high_open=True)
                           for i, b in enumerate(self.betas))
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig.schedule must be one of {', '.join(map(repr, SCHEDULES))}, "
                             f"got {self.schedule!r}")
        for name in ("mixed_precision", "compile", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"TrainConfig.{name} must be True or False, got {getattr(self, name)!r}")
        if self.precision not in runtime.PRECISIONS:
            raise ValueError(f"TrainConfig.precision must be one of {', '.join(map(repr, runtime.PRECISIONS))}, "
                             f"got {self.precision!r}")
        if not self.mixed_precision and self.precision not in ("auto", "fp32"):
            raise ValueError(f"TrainConfig.mixed_precision=False means fp32, but precision={self.precision!r}: "
                             "set one of the two")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def lr_at(step: int, config: TrainConfig) -> float:
    """The learning rate for update number ``step`` (0-based): warm-up, then a decay.

    Warm-up climbs linearly, lr/w, 2 lr/w, ..., lr over the first w = ``warmup_steps``
    updates: at first Adam's estimate of the gradient's variance rests on a handful
    of batches, and full-size steps taken on it can wreck a Transformer
    (Goyal et al., 2017; Liu et al., 2020). Then, with ``schedule="cosine"``, half a
    cosine carries the rate from lr down to lr * ``min_lr_ratio``, reached at
    step == ``steps`` (Loshchilov & Hutter, 2017): big steps while far from a
    minimum, small ones to settle.

    With ``schedule="wsd"`` (warmup-stable-decay: MiniCPM, Hu et al., 2024;
    Hägele et al., 2024) the rate stays at lr until the last
    d = round(``decay_fraction`` * ``steps``) updates, then falls linearly to
    lr * ``min_lr_ratio``, reached at step == ``steps``. The cosine's rate at every
    step depends on the run's length, so the length must be fixed before the
    start; the WSD rate does not, until the decay begins. A checkpoint from the
    stable phase can therefore be trained further, or decayed, to any length
    (``train`` resumes it with a larger ``steps``). ``decay_fraction=0`` is a
    constant rate after warm-up; 1 is a linear decay all the way. (Hägele et al.
    found a "1 - sqrt" decay shape slightly better than linear.)
    """
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    min_lr = config.lr * config.min_lr_ratio
    if config.schedule == "wsd":
        decay_start = max(config.warmup_steps, config.steps - round(config.decay_fraction * config.steps))
        if step < decay_start:
            return config.lr
        progress = min(1.0, (step - decay_start) / max(1, config.steps - decay_start))
        return config.lr - progress * (config.lr - min_lr)
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps))
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (config.lr - min_lr)


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW (Loshchilov & Hutter, 2019) with weight decay on weight matrices only.

    As in nanoGPT, every parameter with two or more dimensions is decayed: linear
    and embedding matrices, convolution kernels. Biases and normalization gains
    (one dimension) are not: pulling a LayerNorm gain toward zero is no useful
    prior, it only fights the layer. Embeddings are decayed like any matrix; in a
    GPT the token embedding is the output layer too (weight tying).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    # The fused update handles every tensor in one kernel per step; PyTorch's default on the
    # CPU is a Python loop over parameters, several times slower for a small model.
    if all(p.device.type in ("cpu", "cuda") for p in params):
        try:
            return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, fused=True)
        except RuntimeError as error:  # torch < 2.4 has no fused AdamW for the CPU: the same update, slower
            if "fused" not in str(error):
                raise
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def next_token_loss(model: torch.nn.Module, batch) -> torch.Tensor:
    """The language-modelling loss: mean cross-entropy of the next token, in nats.

    ``batch`` is (x, y) with token ids of shape (B, T); ``model(x)`` returns logits
    of shape (B, T, vocab), or a tuple whose first element is the logits.
    """
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise TypeError(
            "the default loss expects get_batch to return (x, y), token ids of shape (B, T); "
            f"got {type(batch).__name__}. For other batches pass loss_fn=..."
        )
    x, y = batch
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise TypeError(f"expected x and y as torch tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.ndim != 2 or x.shape != y.shape or x.is_floating_point() or y.is_floating_point():
        raise ValueError(
            "expected x and y as integer token ids of the same shape (B, T); "
            f"got x {tuple(x.shape)} {x.dtype} and y {tuple(y.shape)} {y.dtype}"
        )
    out = model(x)
    logits = out[0] if isinstance(out, tuple) else out
    if logits.ndim != 3 or logits.shape[:2] != y.shape:
        B, T = y.shape
        raise ValueError(
            f"expected model(x) to return logits of shape (B, T, vocab) = ({B}, {T}, vocab) "
            f"for x of shape ({B}, {T}); got {tuple(logits.shape)}"
        )
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))


@torch.no_grad()
def evaluate(model: torch.nn.Module, get_batch: GetBatch, batches: int, *, split: str = "val",
             loss_fn: LossFn | None = None, seed: int = 0, mixed_precision: bool = True,
             precision: str = "auto") -> float:
    """Mean loss over ``batches`` batches of ``split``, in eval mode (no dropout).

    The batches come from a fresh generator seeded with ``seed``, so every call
    sees the same batches: successive evaluations during training differ only
    because the model changed, and the training batch stream is left untouched.
    """
    if batches < 1:
        raise ValueError(f"batches must be >= 1, got {batches}")
    dev = next(model.parameters()).device
    amp = runtime.precision(dev, precision, enabled=mixed_precision)
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        losses = []
        for _ in range(batches):
            batch = _to_device(get_batch(split, generator), dev)
            with amp.autocast():
                losses.append(_scalar((loss_fn or next_token_loss)(model, batch)).float())
    finally:
        model.train(was_training)
    return torch.stack(losses).mean().item()


def train(model: torch.nn.Module, get_batch: GetBatch, config: TrainConfig, *,
          loss_fn: LossFn | None = None, device: torch.device | str | None = None,
          on_eval: Callable[[int, float], None] | None = None) -> "History":
    """Train ``model`` in place on ``device`` (default: ``runtime.device()``); return the History.

    ``get_batch(split, generator)`` returns a batch of ``split`` ("train" or
    "val") drawn with ``generator``, a CPU torch.Generator owned by the loop, so
    the batch order is reproducible and saved in checkpoints. The loss is
    ``next_token_loss`` unless ``loss_fn(model, batch)`` says otherwise.
    ``on_eval(step, val_loss)`` runs after each evaluation (to print a sample, say).

    If ``config.checkpoint_path`` exists, training resumes from it: model,
    optimizer, batch stream and random states as they were, so the run ends
    with exactly the weights it would have had without the interruption.
    """
    dev = torch.device(device) if device is not None else runtime.device()
    model.to(dev)
    step_model = _compiled(model, config.compile)  # the same weights; checkpoints save `model`
    loss_fn = loss_fn or next_token_loss
    amp = runtime.precision(dev, config.precision, enabled=config.mixed_precision)
    scaler = amp.grad_scaler()  # scales the loss for fp16 only; a no-op otherwise
    optimizer = make_optimizer(model, config)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    generator = torch.Generator().manual_seed(config.seed)  # draws the training batches
    runtime.seed_everything(config.seed)  # dropout and anything else drawing from global RNGs
    history, step = History(), 0

    path = Path(config.checkpoint_path) if config.checkpoint_path else None
    if path is not None and path.exists():
        step, history = _load_checkpoint(path, model, optimizer, scaler, generator, config)
        print(f"Resuming from {path} at step {step} of {config.steps}.")
    tokens_seen = history.train[-1]["tokens"] if history.train else 0
    train_seconds = history.train[-1]["elapsed"] if history.train else 0.0

    def run_eval() -> None:
        val = evaluate(model, get_batch, config.eval_batches, loss_fn=loss_fn, seed=config.seed + 1,
                       mixed_precision=config.mixed_precision, precision=config.precision)
        history.val.append({"step": step, "loss": val})
        bar.set_postfix_str(_postfix(history, lr_at(max(step - 1, 0), config)))
        if on_eval is not None:
            on_eval(step, val)
            model.train()  # in case the callback switched to eval mode to sample

    with tqdm(total=config.steps, initial=step, desc="train", disable=not config.progress) as bar:
        if step == 0 and config.eval_batches:
            run_eval()  # the loss before training: where the curve starts
        model.train()
        pending: list[dict] = []  # steps whose loss and gradient norm are still on the device
        window_start, window_tokens = time.perf_counter(), 0
        while step < config.steps:
            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            step_loss = torch.zeros((), device=dev)
            for _ in range(config.accumulation_steps):
                batch = _to_device(get_batch("train", generator), dev)
                with amp.autocast():
                    loss = _scalar(loss_fn(step_model, batch))
                # Dividing by the number of micro-batches makes the summed gradients
                # the gradient of the mean loss over all of them: one big batch.
                scaler.scale(loss / config.accumulation_steps).backward()
                step_loss += loss.detach().float()
                tokens = _count_tokens(batch)
                window_tokens, tokens_seen = window_tokens + tokens, tokens_seen + tokens
            scaler.unscale_(optimizer)  # clip the true gradients, not fp16-scaled ones
            if config.grad_clip is not None:
                grad_norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip)  # norm before clipping
            else:
                grad_norm = _grad_norm(params)
            if hasattr(grad_norm, "full_tensor"):  # FSDP: a DTensor over the ranks' shards; a plain number
                grad_norm = grad_norm.full_tensor()
            scaler.step(optimizer)  # skipped if fp16 gradients overflowed
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            pending.append({"step": step, "loss": step_loss / config.accumulation_steps, "lr": lr,
                            "grad_norm": grad_norm, "tokens": tokens_seen,
                            "elapsed": train_seconds + time.perf_counter() - window_start})

            eval_due = config.eval_batches > 0 and (step % config.eval_interval == 0 or step == config.steps)
            save_due = path is not None and (step % config.checkpoint_interval == 0 or step == config.steps)
            if not (eval_due or save_due or step % config.log_interval == 0 or step == config.steps):
                continue
            # Reading numbers off the device waits for its queued work: do it once
            # per log interval, not every step, so that a GPU never sits idle.
            history.train += _read_pending(pending, window_start, window_tokens, train_seconds)
            train_seconds = history.train[-1]["elapsed"]
            bar.set_postfix_str(_postfix(history, lr), refresh=False)
            bar.update(len(pending))
            pending = []
            if eval_due:
                run_eval()
            if save_due:  # after evaluating, so the checkpoint holds this step's val loss too
                _save_checkpoint(path, model, optimizer, scaler, generator, step, history, config)
            window_start, window_tokens = time.perf_counter(), 0  # evaluation is not training time
    return history


def _compiled(model: torch.nn.Module, wanted: bool) -> torch.nn.Module:
    """``torch.compile(model)`` if asked for, else ``model`` itself.

    Compiling fuses the many small kernels of a Transformer step into fewer,
    larger ones: on a GPU that is often 1.3-2x faster, after a compilation of
    a minute or so, and again for every new model. So it pays for a long run on
    a GPU (lesson 06's GPT at the ``gpu`` budget) and not for the short runs of
    most lessons; on a CPU it also needs a C++ compiler. Evaluation and
    checkpoints use the uncompiled model: the two share their parameters, and
    the state dict keeps its plain names.
    """
    return torch.compile(model) if wanted else model


def _read_pending(pending: list[dict], window_start: float, window_tokens: int,
                  seconds_before: float) -> list[dict]:
    """Turn the pending steps' device tensors into numbers (one sync) and time the window."""
    values = torch.stack([torch.stack((r["loss"], r["grad_norm"].float())) for r in pending]).tolist()
    window_seconds = time.perf_counter() - window_start  # the device has caught up: an honest clock
    for record, (loss, grad_norm) in zip(pending, values):
        record.update(loss=loss, grad_norm=grad_norm, tokens_per_s=window_tokens / window_seconds)
    pending[-1]["elapsed"] = seconds_before + window_seconds
    diverged = [r for r in pending if not math.isfinite(r["loss"])]
    if diverged:
        raise FloatingPointError(
            f"the training loss is {diverged[0]['loss']} at step {diverged[0]['step']}: "
            "training diverged. Lower lr, add warm-up, or set grad_clip."
        )
    return pending


def _postfix(history: "History", lr: float) -> str:
    parts = [f"loss={history.train[-1]['loss']:.3f}"] if history.train else []
    parts += [f"val={history.val[-1]['loss']:.3f}"] if history.val else []
    return ", ".join(parts + [f"lr={lr:.2e}"])


def _scalar(loss) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a scalar (0-d) tensor, got {shape}: average it with .mean()")
    return loss


def _grad_norm(params: list[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of all gradients together, as if they were one long vector."""
    return torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(p.grad) for p in params if p.grad is not None])
    )


def _to_device(batch, dev: torch.device):
    if isinstance(batch, torch.Tensor):
        return batch.to(dev, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(b, dev) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, dev) for k, v in batch.items()}
    return batch


def _count_tokens(batch) -> int:
    """Token ids in the batch's first tensor (B*T for (x, y)); examples if it holds no ids."""
    first = batch
    while isinstance(first, (tuple, list, dict)):
        first = next(iter(first.values())) if isinstance(first, dict) else first[0]
    return first.shape[0] if first.is_floating_point() else first.numel()


# ---------------------------------------------------------------------------
# Checkpoints: everything needed to continue as if the run had never stopped.

_FREE_TO_CHANGE = {"progress", "log_interval", "checkpoint_path", "checkpoint_interval", "compile"}
# These may change too if the learning rate of every step already taken stays the same:
# a WSD run still in its stable phase can be continued to a larger `steps`, or decayed.
_SCHEDULE_FIELDS = {"steps", "warmup_steps", "min_lr_ratio", "schedule", "decay_fraction"}
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}  # for checkpoints older than a field


def _save_checkpoint(path, model, optimizer, scaler, generator, step, history, config) -> None:
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    atomic.torch_save({
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "batch_generator": generator.get_state(),
        # Evaluation draws from a generator seeded afresh each time: nothing to save.
        "rng": {
            "python": random.getstate(),
            "numpy": (np_name, torch.from_numpy(np_keys.astype(np.int64)), np_pos, np_has_gauss, np_gauss),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
        "history": history.to_dict(),
        "config": config.to_dict(),
    }, path)


def _load_checkpoint(path, model, optimizer, scaler, generator, config) -> tuple[int, "History"]:
    state = torch.load(path, map_location="cpu", weights_only=True)  # plain data only: no code runs
    saved = {**_DEFAULTS, **state["config"]}
    step = state["step"]
    changed = {k for k, v in config.to_dict().items() if k not in _FREE_TO_CHANGE and saved[k] != v}
    if changed and changed <= _SCHEDULE_FIELDS and step <= config.steps:
        saved_config = TrainConfig(**{**saved, "checkpoint_path": None})
        if all(lr_at(s, saved_config) == lr_at(s, config) for s in range(step)):
            changed = set()  # the same past: continuing is exact
    if changed:
        diffs = "; ".join(f"{k}: {saved[k]!r} -> {getattr(config, k)!r}" for k in sorted(changed))
        raise ValueError(
            f"the checkpoint {path} (step {step}) was written with a different config ({diffs}). "
            "Resuming would mix two runs: delete the file to start afresh, or use another checkpoint_path. "
            "(steps and the schedule may change only where the learning rates of the steps already "
            "taken stay the same, as in a WSD run's stable phase.)"
        )
    model.load_state_dict(state["model"])
    own_flags = [{k: g.get(k) for k in ("fused", "foreach")} for g in optimizer.param_groups]
    optimizer.load_state_dict(state["optimizer"])
    for group, flags in zip(optimizer.param_groups, own_flags):  # a checkpoint from a machine with
        group.update(flags)                                       # fused AdamW loads where it is missing
    if state["scaler"]:  # empty when saved where loss scaling was off (CPU, bf16)
        scaler.load_state_dict(state["scaler"])
    generator.set_state(state["batch_generator"])
    rng = state["rng"]
    random.setstate(rng["python"])
    name, keys, pos, has_gauss, gauss = rng["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return step, History.from_dict(state["history"])


# ---------------------------------------------------------------------------
# History


@dataclass
class History:
    """What happened in training: one record per step, one per evaluation.

    ``train`` records: step (updates done), loss (mean over the step's
    micro-batches, nats), lr, grad_norm (before clipping), tokens (seen so far),
    elapsed (seconds of training so far, evaluation and checkpoints excluded),
    tokens_per_s (over the last log interval). ``val`` records: step, loss.
    Both are lists of dicts, so ``pandas.DataFrame(history.train)`` works.
    """

    train: list[dict] = field(default_factory=list)
    val: list[dict] = field(default_factory=list)

    @property
    def best_val_loss(self) -> float:
        if not self.val:
            raise ValueError("no evaluations were recorded: train with eval_batches > 0")
        return min(r["loss"] for r in self.val)

    @property
    def final_train_loss(self) -> float:
        """Mean training loss over the last 10 steps: one batch alone is noisy."""
        if not self.train:
            raise ValueError("no training steps were recorded")
        return sum(r["loss"] for r in self.train[-10:]) / len(self.train[-10:])

    @property
    def tokens_per_second(self) -> float:
        """Training throughput over the whole run (evaluation time excluded)."""
        if not self.train:
            raise ValueError("no training steps were recorded")
        return self.train[-1]["tokens"] / self.train[-1]["elapsed"]

    def to_dict(self) -> dict:
        return {"train": [dict(r) for r in self.train], "val": [dict(r) for r in self.val]}

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        return cls(train=[dict(r) for r in data["train"]], val=[dict(r) for r in data["val"]])

    def plot(self, log_scale: bool = False, ax=None):
        """Train and validation loss against step; returns the figure (end the line with ``;``)."""
        import matplotlib.pyplot as plt
        from matplotlib import ticker

        fig, ax = (ax.figure, ax) if ax is not None else plt.subplots()
        ax.plot([r["step"] for r in self.train], [r["loss"] for r in self.train],
                lw=1, alpha=0.7, label="train")
        if self.val:
            ax.plot([r["step"] for r in self.val], [r["loss"] for r in self.val], "o-", ms=3, label="val")
        if log_scale:  # ticks at 0.5, 1, 2, ... written plainly, not as 5x10^-1
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
            ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats per token)")
        ax.legend()
        fig.tight_layout()  # keep the axis labels inside the saved PNG
        return fig
