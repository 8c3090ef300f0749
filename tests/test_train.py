"""The training loop: it learns, its schedule, accumulation, clipping, checkpoints, resume."""
import copy
import dataclasses
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.optimizer import register_optimizer_step_pre_hook

import lmcourse.train as train_module
from lmcourse import runtime
from lmcourse.data.batching import random_windows
from lmcourse.data.synthetic import MarkovSource
from lmcourse.train import (
    History, TrainConfig, evaluate, lr_at, make_optimizer, next_token_loss, train,
)

matplotlib.use("Agg")  # draw into memory: no windows during tests

V = 8
ORDER1 = MarkovSource(vocab_size=V, order=1, branching=2, seed=0)
ORDER2 = MarkovSource(vocab_size=V, order=2, branching=2, seed=1)


def make_get_batch(source: MarkovSource, batch_size: int = 16, block: int = 16):
    data = {"train": torch.from_numpy(source.sample(20_000, seed=1)),
            "val": torch.from_numpy(source.sample(5_000, seed=2))}

    def get_batch(split, generator):
        return random_windows(data[split], batch_size, block, generator=generator)

    return get_batch


class Bigram(nn.Module):
    def __init__(self, vocab=V, width=16, dropout=0.0):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, vocab)

    def forward(self, x):
        return self.head(self.drop(self.embed(x)))


class TinyGRU(nn.Module):
    def __init__(self, vocab=V, width=16, hidden=32, dropout=0.0):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.gru = nn.GRU(width, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x):
        out, _ = self.gru(self.embed(x))
        return self.head(self.drop(out)), None  # a tuple, like models that also return a cache


pytestmark = pytest.mark.usefixtures("one_thread")


def quiet(**changes) -> TrainConfig:
    return TrainConfig(**{"progress": False, **changes})


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def true_grad_norm(model, batch) -> float:
    """The gradient norm of the mean loss on ``batch``, computed independently of train()."""
    model = copy.deepcopy(model)
    next_token_loss(model, batch).backward()
    return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])).item()


# ---------------------------------------------------------------------------
# It learns


def test_bigram_reaches_the_entropy_rate_of_an_order1_chain():
    torch.manual_seed(0)
    model = Bigram()
    config = TrainConfig(steps=150, lr=0.03, eval_interval=50, eval_batches=8)  # progress bar on
    history = train(model, make_get_batch(ORDER1), config)
    assert history.val[0]["step"] == 0 and history.val[0]["loss"] > 0.8 * math.log(V)
    assert history.best_val_loss < ORDER1.entropy_rate + 0.05 < math.log(V)
    assert history.final_train_loss < ORDER1.entropy_rate + 0.1
    assert [r["step"] for r in history.train] == list(range(1, 151))
    assert [r["step"] for r in history.val] == [0, 50, 100, 150]


def test_gru_learns_an_order2_chain_with_a_tuple_output():
    torch.manual_seed(0)
    model = TinyGRU()
    config = quiet(steps=150, lr=0.03, eval_interval=75, eval_batches=8)
    history = train(model, make_get_batch(ORDER2, block=8), config)
    # An order-2 chain: beating what the previous symbol alone can tell needs memory.
    best_order1 = order1_cross_entropy(ORDER2)
    assert history.best_val_loss < best_order1 - 0.1, (history.best_val_loss, best_order1)
    assert history.best_val_loss < ORDER2.entropy_rate + 0.25


def order1_cross_entropy(source: MarkovSource) -> float:
    """The entropy of the next symbol given only the previous one: a bigram model's floor."""
    tokens = source.sample(50_000, seed=5)
    counts = torch.zeros(V, V)
    pairs = (torch.from_numpy(tokens[:-1]), torch.from_numpy(tokens[1:]))
    counts.index_put_(pairs, torch.ones(len(tokens) - 1), accumulate=True)
    p = counts / counts.sum()
    conditional = counts / counts.sum(1, keepdim=True)
    return float(-(p[p > 0] * conditional[p > 0].log()).sum())


def test_loss_fn_trains_a_model_that_is_not_a_language_model():
    torch.manual_seed(0)
    w_true = torch.tensor([1.0, -2.0, 0.5])

    def get_batch(split, generator):
        x = torch.randn(32, 3, generator=generator)
        return x, x @ w_true

    model = nn.Linear(3, 1)
    history = train(model, get_batch, quiet(steps=100, lr=0.05, weight_decay=0.0, eval_batches=2),
                    loss_fn=lambda m, b: F.mse_loss(m(b[0]).squeeze(-1), b[1]))
    assert history.best_val_loss < 0.01 * history.val[0]["loss"]
    assert history.train[0]["tokens"] == 32  # float inputs: examples are counted, not elements


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_mixed_precision_path_trains_and_resumes_with_its_loss_scale(dtype, monkeypatch, tmp_path):
    # The GPU's code path, run on the CPU: autocast to a 16-bit type, and for fp16 a GradScaler.
    monkeypatch.setattr(runtime, "precision", lambda dev=None, name="auto", enabled=True: runtime.Precision("cpu", dtype))

    def millinats(model, batch):  # a loss in big units: fp16 gradients overflow until the scale backs off
        return 1000 * next_token_loss(model, batch)

    get_batch, path = make_get_batch(ORDER1), tmp_path / "amp.pt"
    config = quiet(steps=60, lr=0.03, eval_interval=30, eval_batches=4,
                   checkpoint_path=path, checkpoint_interval=12)
    torch.manual_seed(0)
    reference = Bigram()
    uninterrupted = copy.deepcopy(reference)
    history = train(uninterrupted, get_batch, dataclasses.replace(config, checkpoint_path=None), device="cpu",
                    loss_fn=millinats)
    assert history.best_val_loss / 1000 < ORDER1.entropy_rate + 0.05
    skipped = sum(not math.isfinite(r["grad_norm"]) for r in history.train)  # steps the scaler skipped
    assert skipped >= 5 if dtype == torch.float16 else skipped == 0  # bf16 has fp32's exponent range

    calls = 0

    def crash_at_step_14(split, generator):
        nonlocal calls
        calls += split == "train"
        if calls == 14:
            raise KeyboardInterrupt
        return get_batch(split, generator)

    model = copy.deepcopy(reference)
    with pytest.raises(KeyboardInterrupt):
        train(model, crash_at_step_14, config, device="cpu", loss_fn=millinats)
    saved = torch.load(path, weights_only=True)["scaler"]
    if dtype == torch.float16:
        assert saved["scale"] == 2.0**16 / 2**skipped  # halved at each overflow
    else:
        assert saved == {}  # no loss scaling to save
    train(model, get_batch, config, device="cpu", loss_fn=millinats)  # resumes from step 12
    assert same_weights(model, uninterrupted)  # a fresh scale would skip the first steps again


# ---------------------------------------------------------------------------
# The learning-rate schedule and the optimizer


def test_lr_schedule_warms_up_linearly_then_follows_a_cosine_to_min_lr():
    config = quiet(steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert [lr_at(s, config) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert lr_at(10, config) == pytest.approx(1.0)
    assert lr_at(55, config) == pytest.approx(0.55)  # half-way down the cosine
    assert lr_at(100, config) == pytest.approx(0.1)
    assert lr_at(99, config) == pytest.approx(0.1, abs=1e-3)
    after = [lr_at(s, config) for s in range(9, 101)]
    assert all(a >= b for a, b in zip(after, after[1:]))
    assert lr_at(0, quiet(steps=10, lr=0.3)) == pytest.approx(0.3)  # no warm-up: start at the peak


def test_wsd_schedule_warms_up_holds_the_peak_then_decays_linearly_over_the_last_fraction():
    config = quiet(steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.1, schedule="wsd", decay_fraction=0.2)
    assert [lr_at(s, config) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])  # the same warm-up
    assert all(lr_at(s, config) == 1.0 for s in range(10, 81))  # stable: exactly the peak, to step 80
    assert lr_at(90, config) == pytest.approx(0.55)  # half-way down the linear decay
    assert lr_at(99, config) == pytest.approx(0.145)
    assert lr_at(100, config) == pytest.approx(0.1)
    # decay_fraction 0: a constant rate after warm-up; 1: a linear decay from the end of warm-up.
    assert all(lr_at(s, dataclasses.replace(config, decay_fraction=0.0)) == 1.0 for s in range(10, 101))
    assert lr_at(55, dataclasses.replace(config, decay_fraction=1.0)) == pytest.approx(0.55)
    # The stable phase does not depend on the run's length; the cosine does at every step.
    longer = dataclasses.replace(config, steps=400)
    assert [lr_at(s, longer) for s in range(81)] == [lr_at(s, config) for s in range(81)]
    cosine = dataclasses.replace(config, schedule="cosine")
    assert lr_at(40, dataclasses.replace(cosine, steps=400)) > lr_at(40, cosine)


def test_history_records_the_scheduled_lr():
    config = quiet(steps=12, lr=0.01, warmup_steps=3, eval_batches=0)
    history = train(Bigram(), make_get_batch(ORDER1), config, device="cpu")
    assert [r["lr"] for r in history.train] == [lr_at(s, config) for s in range(12)]


@pytest.mark.parametrize("changes, field", [
    ({"steps": 0}, "steps"), ({"lr": -1.0}, "lr"), ({"lr": float("nan")}, "lr"),
    ({"warmup_steps": 20, "steps": 10}, "warmup_steps"), ({"betas": (0.9, 1.0)}, r"betas\[1\]"),
    ({"grad_clip": 0.0}, "grad_clip"), ({"accumulation_steps": 0}, "accumulation_steps"),
    ({"min_lr_ratio": 2.0}, "min_lr_ratio"), ({"eval_batches": -1}, "eval_batches"),
    ({"weight_decay": -0.1}, "weight_decay"), ({"checkpoint_interval": 0}, "checkpoint_interval"),
    ({"schedule": "linear"}, "schedule"), ({"decay_fraction": 1.5}, "decay_fraction"),
])
def test_config_rejects_bad_values_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=rf"TrainConfig\.{field} must be"):
        TrainConfig(**changes)


@pytest.mark.parametrize("changes, field", [
    ({"steps": 2.5}, "steps"), ({"steps": 10.0}, "steps"), ({"steps": True}, "steps"),
    ({"warmup_steps": False}, "warmup_steps"), ({"seed": "0"}, "seed"), ({"lr": "1e-3"}, "lr"),
    ({"lr": True}, "lr"), ({"betas": 0.9}, "betas"), ({"compile": 1}, "compile"),
    ({"mixed_precision": None}, "mixed_precision"),
])
def test_config_rejects_wrong_types_with_a_type_error(changes, field):
    with pytest.raises(TypeError, match=rf"TrainConfig\.{field} must be"):
        TrainConfig(**changes)


def test_config_accepts_any_integer_type_and_stores_plain_numbers():
    config = TrainConfig(steps=np.int64(5), warmup_steps=np.int32(2), seed=torch.tensor(3).item(),
                         lr=np.float32(0.5), betas=[0.9, np.float64(0.95)], grad_clip=1)
    assert config.steps == 5 and type(config.steps) is int and type(config.warmup_steps) is int
    assert type(config.lr) is float and config.betas == (0.9, 0.95) and config.grad_clip == 1.0
    json.dumps(config.to_dict())  # plain Python numbers: a checkpoint's config is readable anywhere


def test_without_a_fused_cpu_adamw_the_optimizer_falls_back_to_the_plain_one(monkeypatch):
    real_adamw = torch.optim.AdamW

    def adamw_of_torch_2_3(params, fused=None, **kwargs):  # what torch < 2.4 says on the CPU
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of "
                               "supported devices: ['cuda', 'xpu', 'privateuseone'].")
        return real_adamw(params, fused=fused, **kwargs)

    monkeypatch.setattr(train_module.torch.optim, "AdamW", adamw_of_torch_2_3)
    optimizer = make_optimizer(Bigram(), quiet(lr=0.01))
    assert isinstance(optimizer, real_adamw) and not optimizer.param_groups[0]["fused"]
    torch.manual_seed(0)
    history = train(Bigram(), make_get_batch(ORDER1), quiet(steps=40, lr=0.03, eval_batches=4), device="cpu")
    assert history.best_val_loss < history.val[0]["loss"] - 0.5  # it trains

    def broken(params, **kwargs):  # any other error is not swallowed
        raise RuntimeError("out of memory")

    monkeypatch.setattr(train_module.torch.optim, "AdamW", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        make_optimizer(Bigram(), quiet())


def test_weight_decay_applies_to_matrices_not_biases_or_norm_gains():
    model = nn.Sequential(nn.Embedding(V, 4), nn.LayerNorm(4), nn.Linear(4, V))
    groups = make_optimizer(model, quiet(weight_decay=0.2)).param_groups
    decayed = {id(p) for p in groups[0]["params"]}
    assert groups[0]["weight_decay"] == 0.2 and groups[1]["weight_decay"] == 0.0
    assert decayed == {id(model[0].weight), id(model[2].weight)}
    assert {id(p) for p in groups[1]["params"]} == {id(model[1].weight), id(model[1].bias), id(model[2].bias)}


# ---------------------------------------------------------------------------
# Accumulation and clipping


def test_accumulating_k_micro_batches_equals_one_big_batch():
    torch.manual_seed(0)
    x, y = make_get_batch(ORDER1, batch_size=8)("train", torch.Generator().manual_seed(0))
    k, calls = 4, []

    def micro_batches(split, generator):  # the big batch in k consecutive slices
        i = len(calls) % k
        calls.append(i)
        return x[2 * i : 2 * i + 2], y[2 * i : 2 * i + 2]

    model = Bigram()
    expected_norm = true_grad_norm(model, (x, y))
    big, small = copy.deepcopy(model), copy.deepcopy(model)
    h_big = train(big, lambda split, g: (x, y), quiet(steps=3, lr=0.01, eval_batches=0), device="cpu")
    config = quiet(steps=3, lr=0.01, eval_batches=0, accumulation_steps=k)
    h_small = train(small, micro_batches, config, device="cpu")
    assert len(calls) == 3 * k
    for p, q in zip(big.parameters(), small.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    # Adam's update barely changes when gradients are scaled, so check their size directly.
    assert h_small.train[0]["grad_norm"] == pytest.approx(expected_norm, rel=1e-5)
    assert h_big.train[0]["grad_norm"] == pytest.approx(expected_norm, rel=1e-5)
    for a, b in zip(h_big.train, h_small.train):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["tokens"] == b["tokens"]  # every micro-batch's tokens are counted


@pytest.mark.parametrize("clip", [0.05, None])
def test_clipping_caps_the_gradient_norm_that_the_optimizer_sees(clip):
    seen = []

    def record_norm(optimizer, args, kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        seen.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

    torch.manual_seed(0)
    model = Bigram()
    get_batch = make_get_batch(ORDER1)
    first_norm = true_grad_norm(model, get_batch("train", torch.Generator().manual_seed(0)))
    handle = register_optimizer_step_pre_hook(record_norm)
    try:
        config = quiet(steps=5, lr=0.01, grad_clip=clip, eval_batches=0)
        history = train(model, get_batch, config, device="cpu")
    finally:
        handle.remove()
    recorded = [r["grad_norm"] for r in history.train]
    assert recorded[0] == pytest.approx(first_norm, rel=1e-5)  # the history holds norms before clipping
    if clip is None:
        assert seen == pytest.approx(recorded, rel=1e-5)
    else:
        assert min(recorded) > clip
        assert seen == pytest.approx([clip] * 5, rel=1e-4)


# ---------------------------------------------------------------------------
# Evaluation


def test_evaluation_leaves_the_training_stream_and_mode_alone():
    get_batch = make_get_batch(ORDER1)
    torch.manual_seed(0)
    reference = Bigram(dropout=0.2)
    with_eval = copy.deepcopy(reference)
    train(reference, get_batch, quiet(steps=20, lr=0.01, eval_batches=0), device="cpu")

    calls = []

    def on_eval(step, val_loss):
        calls.append((step, val_loss))
        with_eval.eval()  # as a callback that samples text would; the loop must switch back

    history = train(with_eval, get_batch, quiet(steps=20, lr=0.01, eval_interval=7, eval_batches=3),
                    device="cpu", on_eval=on_eval)
    assert same_weights(reference, with_eval)  # dropout masks and batches unchanged by evaluation
    assert [s for s, _ in calls] == [0, 7, 14, 20]
    assert [(r["step"], r["loss"]) for r in history.val] == calls
    assert calls[-1][1] == evaluate(with_eval, get_batch, 3, seed=1)  # seed + 1, the same val batches
    assert with_eval.training


def test_evaluate_turns_dropout_off_uses_the_same_batches_and_restores_the_mode():
    model = Bigram(dropout=0.5)  # in training mode: dropout would make two calls differ
    get_batch = make_get_batch(ORDER1)
    first = evaluate(model, get_batch, 4)
    assert evaluate(model, get_batch, 4) == first != evaluate(model, get_batch, 4, seed=1)
    assert model.training
    evaluate(model.eval(), get_batch, 1)
    assert not model.training


# ---------------------------------------------------------------------------
# Checkpoints and resume

RESUME_STEPS, DIE_AT_BATCH = 24, 2 * 13 + 1  # accumulation 2: the 27th batch is step 14's first


def resume_setup(checkpoint_path=None, die_at_batch=None):
    """The run the resume test interrupts: a GRU with dropout, accumulation, warm-up, evaluation."""
    torch.manual_seed(123)
    model = TinyGRU(dropout=0.1)
    base = make_get_batch(ORDER2, batch_size=4, block=8)
    train_batches = 0

    def get_batch(split, generator):
        nonlocal train_batches
        x, y = base(split, generator)
        if split == "val":
            return x, y
        train_batches += 1
        if train_batches == die_at_batch:
            os._exit(9)  # die abruptly, mid-step: no clean-up, no finally blocks
        # Draw from NumPy's and Python's global RNGs too, as data augmentation might:
        # the checkpoint must bring those streams back as well.
        rows, columns = 4 - np.random.randint(2), 8 - random.randint(0, 1)
        return x[:rows, :columns], y[:rows, :columns]

    # Evaluation and a checkpoint both fall on step 10: the checkpoint must come after.
    config = quiet(steps=RESUME_STEPS, lr=0.01, warmup_steps=3, accumulation_steps=2, eval_interval=5,
                   eval_batches=2, seed=3, checkpoint_path=checkpoint_path, checkpoint_interval=10)
    return model, get_batch, config


def test_a_killed_run_resumes_to_exactly_the_uninterrupted_weights(tmp_path, capsys):
    checkpoint = tmp_path / "run.pt"
    script = (
        f"import sys, torch; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        f"torch.set_num_threads({torch.get_num_threads()})\n"
        "from test_train import resume_setup\n"
        "from lmcourse.train import train\n"
        f"model, get_batch, config = resume_setup({str(checkpoint)!r}, die_at_batch={DIE_AT_BATCH})\n"
        "train(model, get_batch, config, device='cpu')\n"
    )
    died = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert died.returncode == 9, died.stderr
    assert torch.load(checkpoint, weights_only=True)["step"] == 10  # the last checkpoint before death

    resumed, get_batch, config = resume_setup(checkpoint)
    history = train(resumed, get_batch, config, device="cpu")
    assert f"Resuming from {checkpoint} at step 10 of {RESUME_STEPS}" in capsys.readouterr().out

    uninterrupted, get_batch, config = resume_setup()
    reference = train(uninterrupted, get_batch, config, device="cpu")
    assert same_weights(resumed, uninterrupted)
    assert [r["loss"] for r in history.train] == [r["loss"] for r in reference.train]
    assert history.val == reference.val


def test_a_finished_run_resumes_at_its_end_and_refuses_a_different_config(tmp_path, capsys):
    path = tmp_path / "done.pt"
    model = Bigram()
    config = quiet(steps=6, lr=0.01, eval_interval=3, eval_batches=1, checkpoint_path=path)
    history = train(model, make_get_batch(ORDER1), config, device="cpu")

    fresh = Bigram()
    again = train(fresh, make_get_batch(ORDER1), config, device="cpu")  # re-running a notebook cell
    assert "at step 6 of 6" in capsys.readouterr().out
    assert again == history and same_weights(fresh, model)

    with pytest.raises(ValueError, match=r"different config \(lr: 0.01 -> 0.02\)"):
        train(Bigram(), make_get_batch(ORDER1), quiet(**{**config.to_dict(), "lr": 0.02}), device="cpu")


def test_a_wsd_checkpoint_from_the_stable_phase_continues_to_a_longer_run_exactly(tmp_path, capsys):
    get_batch, path = make_get_batch(ORDER1), tmp_path / "stable.pt"
    long_run = quiet(steps=20, lr=0.02, warmup_steps=3, schedule="wsd", decay_fraction=0.5,
                     eval_interval=5, eval_batches=2)
    torch.manual_seed(0)
    start = Bigram()
    uninterrupted = copy.deepcopy(start)
    reference = train(uninterrupted, get_batch, long_run, device="cpu")

    # 10 steps with no decay (decay_fraction 0), saved; then continued to 20 steps that decay over the last 10.
    stable = dataclasses.replace(long_run, steps=10, decay_fraction=0.0, checkpoint_path=path)
    model = copy.deepcopy(start)
    train(model, get_batch, stable, device="cpu")
    history = train(model, get_batch, dataclasses.replace(long_run, checkpoint_path=path), device="cpu")
    assert "at step 10 of 20" in capsys.readouterr().out
    assert same_weights(model, uninterrupted)
    assert history.train == [dict(r, elapsed=h["elapsed"], tokens_per_s=h["tokens_per_s"])
                             for r, h in zip(reference.train, history.train)]  # same steps, losses, lrs

    # The cosine's rate at every step depends on `steps`: the same move would mix two schedules.
    cosine = dataclasses.replace(stable, schedule="cosine", checkpoint_path=tmp_path / "cosine.pt")
    train(Bigram(), get_batch, cosine, device="cpu")
    with pytest.raises(ValueError, match=r"different config \(steps: 10 -> 20\)"):
        train(Bigram(), get_batch, dataclasses.replace(cosine, steps=20), device="cpu")
    # Nor can a run be resumed to fewer steps than its checkpoint has done.
    with pytest.raises(ValueError, match=r"step 20\).*steps: 20 -> 15"):
        train(Bigram(), get_batch, dataclasses.replace(long_run, steps=15, checkpoint_path=path), device="cpu")


def test_a_crash_while_writing_a_checkpoint_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    real_save, saves = torch.save, []

    def crash_on_second_save(obj, f, *args, **kwargs):
        saves.append(obj["step"])
        if len(saves) == 2:
            Path(f).write_bytes(b"half a checkpoint")  # bytes on disk, then the process dies
            raise KeyboardInterrupt
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", crash_on_second_save)
    config = quiet(steps=6, lr=0.01, eval_batches=0, checkpoint_path=path, checkpoint_interval=2)
    with pytest.raises(KeyboardInterrupt):
        train(Bigram(), make_get_batch(ORDER1), config, device="cpu")
    assert saves == [2, 4]
    assert torch.load(path, weights_only=True)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]  # no temporary file left behind

    monkeypatch.setattr(torch, "save", real_save)
    history = train(Bigram(), make_get_batch(ORDER1), config, device="cpu")
    assert [r["step"] for r in history.train] == list(range(1, 7))


# ---------------------------------------------------------------------------
# Bad input


class NoTime(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Embedding(V, V)

    def forward(self, x):
        return self.head(x).mean(1)  # (B, vocab): forgot the time axis


def test_bad_shapes_get_messages_naming_the_expected_shapes():
    get_batch = make_get_batch(ORDER1, batch_size=4, block=6)
    config = quiet(steps=2, eval_batches=0)
    with pytest.raises(ValueError, match=r"logits of shape \(B, T, vocab\) = \(4, 6, vocab\).*got \(4, 8\)"):
        train(NoTime(), get_batch, config, device="cpu")
    with pytest.raises(TypeError, match=r"return \(x, y\)"):
        train(Bigram(), lambda split, g: get_batch(split, g)[0], config, device="cpu")
    with pytest.raises(ValueError, match=r"same shape \(B, T\).*x \(4, 6\).*y \(4, 5\)"):
        train(Bigram(), lambda split, g: (get_batch(split, g)[0], get_batch(split, g)[1][:, :5]), config,
              device="cpu")
    with pytest.raises(ValueError, match="scalar"):
        train(Bigram(), get_batch, config, device="cpu",
              loss_fn=lambda m, b: F.cross_entropy(m(b[0]).transpose(1, 2), b[1], reduction="none"))


def test_a_diverging_run_stops_with_a_clear_error():
    get_batch, batches = make_get_batch(ORDER1), 0

    def counting(split, generator):
        nonlocal batches
        batches += 1
        return get_batch(split, generator)

    def nan_from_step_4(model, batch):
        loss = next_token_loss(model, batch)
        return loss * float("nan") if batches >= 4 else loss

    with pytest.raises(FloatingPointError, match="at step 4: training diverged"):
        train(Bigram(), counting, quiet(steps=8, eval_batches=0), loss_fn=nan_from_step_4, device="cpu")


# ---------------------------------------------------------------------------
# History


def test_history_plots_round_trips_and_summarises():
    history = train(Bigram(), make_get_batch(ORDER1),
                    quiet(steps=30, lr=0.03, eval_interval=10, eval_batches=2), device="cpu")
    fig = history.plot(log_scale=True)
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["train", "val"]
    assert ax.get_yscale() == "log" and len(ax.get_lines()[0].get_xdata()) == 30
    plt.close(fig)

    restored = History.from_dict(json.loads(json.dumps(history.to_dict())))
    assert restored == history
    assert history.best_val_loss == min(r["loss"] for r in history.val)
    assert history.final_train_loss == pytest.approx(sum(r["loss"] for r in history.train[-10:]) / 10)
    assert history.train[-1]["tokens"] == 30 * 16 * 16
    assert history.tokens_per_second > 0 and all(r["tokens_per_s"] > 0 for r in history.train)
    with pytest.raises(ValueError, match="eval_batches > 0"):
        History().best_val_loss


# ---------------------------------------------------------------------------
# torch.compile: on request only, never in checkpoints


class CountingWrapper(nn.Module):
    """Stands in for torch.compile's result: the same parameters, calls counted."""

    def __init__(self, model):
        super().__init__()
        self._orig_mod, self.calls = model, 0  # torch.compile's wrapper names the model _orig_mod too

    def forward(self, x):
        self.calls += 1
        return self._orig_mod(x)


@pytest.mark.parametrize("wanted, compiled", [(False, False), (True, True)])
def test_compile_on_request_and_checkpoints_keep_plain_names(wanted, compiled, monkeypatch, tmp_path):
    made = []
    monkeypatch.setattr(train_module.torch, "compile", lambda model: made.append(CountingWrapper(model)) or made[-1])
    source = MarkovSource(vocab_size=V, order=1, seed=0)
    model = Bigram()
    path = tmp_path / "run.pt"
    train(model, make_get_batch(source), quiet(steps=6, eval_batches=0, compile=wanted, checkpoint_path=path),
          device="cpu")
    assert len(made) == int(compiled)
    if compiled:
        assert made[0].calls == 6 and made[0]._orig_mod is model  # every step ran the compiled module
    saved = torch.load(path, weights_only=True)["model"]
    assert set(saved) == set(Bigram().state_dict())  # no "_orig_mod." prefixes


def test_compile_must_be_a_bool():
    for bad in ("yes", None, 1):
        with pytest.raises(TypeError, match="compile must be True or False"):
            TrainConfig(compile=bad)
