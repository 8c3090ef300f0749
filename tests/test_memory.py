"""Lesson 07's accounting (lmcourse.memory), activation checkpointing, accumulation, CPU bf16."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from lmcourse import runtime
from lmcourse.memory import (gpt_matmul_flops, matmul_flops_per_second, saved_activation_bytes,
                             sharded_memory, training_memory)
from lmcourse.models.gpt import GPT, GPTConfig
from lmcourse.train import TrainConfig, train

torch.set_num_threads(1)
TINY = GPTConfig(vocab_size=40, block_size=16, n_layer=3, n_head=2, n_embd=24)


def tokens(config: GPTConfig, batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(config.vocab_size, (batch, config.block_size), generator=g)


# ---------------------------------------------------------------------------
# Bytes


def test_mixed_precision_adamw_is_16_bytes_per_parameter():
    parts = training_memory(1000)
    assert parts == {"weights": 2000, "gradients": 2000, "master_weights": 4000, "optimizer_moments": 8000}
    assert sum(training_memory(1000, weights="fp32").values()) == 16_000  # 4 + 4 + 8: no master copy
    assert sum(training_memory(1000, weights="bf16", master_copy=False).values()) == 12_000
    assert sum(training_memory(1000, weights="fp32", optimizer="sgd").values()) == 8_000


def test_zero_stages_match_rajbhandari_et_al_figure_1():
    # 7.5 B parameters on 64 devices, mixed-precision Adam (K = 12): 120, 31.4, 16.6, 1.9 GB.
    gb = {s: round(sum(sharded_memory(7_500_000_000, 64, s).values()) / 1e9, 1)
          for s in ("ddp", "zero1", "zero2", "zero3")}
    assert gb == {"ddp": 120.0, "zero1": 31.4, "zero2": 16.6, "zero3": 1.9}
    n = 7_000_000_000
    assert sharded_memory(n, 8, "fsdp") == sharded_memory(n, 8, "zero3") == sharded_memory(n, 8, "tp")
    assert sum(sharded_memory(n, 8, "pp").values()) == pytest.approx(16 * n / 8)


def test_accounting_names_bad_arguments():
    with pytest.raises(ValueError, match="strategy must be one of"):
        sharded_memory(10, 2, "zero4")
    with pytest.raises(ValueError, match="weights must be one of"):
        training_memory(10, weights="fp8")
    with pytest.raises(ValueError, match="n_devices must be an integer >= 1"):
        sharded_memory(10, 0, "ddp")


# ---------------------------------------------------------------------------
# FLOPs


@pytest.mark.parametrize("options", [{}, {"mlp": "swiglu", "n_kv_head": 1, "positions": "rotary", "bias": False}])
def test_matmul_count_equals_pytorchs_flop_counter(options):
    config = GPTConfig(**{**TINY.__dict__, **options})
    model, x = GPT(config), tokens(config, 3)
    ours = gpt_matmul_flops(config, 3)
    # The math backend writes attention as two batched matmuls, which the counter sees.
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x)[0].sum().backward()
    assert counter.get_total_flops() == sum(gpt_matmul_flops(config, 3, backward=True).values())
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x)
    assert counter.get_total_flops() == sum(ours.values())
    # With the fused kernel, the CPU counter may not know the attention op: then it misses exactly its matmuls.
    with FlopCounterMode(display=False) as counter:
        model(x)
    attention = ours["attn_scores"] + ours["attn_values"]
    assert counter.get_total_flops() in (sum(ours.values()), sum(ours.values()) - attention)


def test_six_n_d_is_the_matmul_count_without_attention():
    model = GPT(TINY)
    n = model.param_count()  # the tied head's matrix counted, the position table not
    flops = gpt_matmul_flops(TINY, 5, backward=True)
    D = 5 * TINY.block_size
    rest = sum(flops.values()) - flops["attn_scores"] - flops["attn_values"]
    biases_and_norms = sum(p.numel() for p in model.parameters() if p.dim() < 2)
    assert rest == 6 * (n - biases_and_norms) * D  # every weight matrix: one multiply-add per token, x3


def test_matmul_peak_is_measured():
    assert matmul_flops_per_second(32, seconds=0.01) > 1e6


# ---------------------------------------------------------------------------
# Saved activations and checkpointing


def test_saved_bytes_counts_each_storage_once_and_leaves_out_parameters():
    w = torch.nn.Parameter(torch.randn(100))
    assert saved_activation_bytes(lambda: w * w, exclude=[w]) == 0  # mul saves w twice: a parameter
    assert saved_activation_bytes(lambda: w * w) == 400  # one storage, counted once
    assert saved_activation_bytes(lambda: (w * 2).tanh(), exclude=[w]) == 400  # tanh saves its output
    assert saved_activation_bytes(lambda: (w * 2).t().exp(), exclude=[w]) == 400


def test_checkpointing_gives_the_same_loss_and_gradients_with_fewer_saved_bytes():
    config = GPTConfig(**{**TINY.__dict__, "dropout": 0.1})  # dropout: the recomputation must replay its RNG
    plain = GPT(config)
    ckpt = copy.deepcopy(plain)
    ckpt.checkpoint_activations = True
    x, y = tokens(config, 4, 1), tokens(config, 4, 2)
    results = []
    for model in (plain, ckpt):
        torch.manual_seed(5)
        loss = F.cross_entropy(model(x)[0].flatten(0, 1), y.flatten())
        loss.backward()
        torch.manual_seed(5)
        saved = saved_activation_bytes(lambda: F.cross_entropy(model(x)[0].flatten(0, 1), y.flatten()),
                                       exclude=model.parameters())
        results.append((loss, [p.grad for p in model.parameters()], saved))
    (loss_p, grads_p, saved_p), (loss_c, grads_c, saved_c) = results
    assert torch.equal(loss_p, loss_c)
    for a, b in zip(grads_p, grads_c):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    boundary = config.n_layer * x.numel() * config.n_embd * 4  # each block's fp32 input, kept by the checkpoint
    assert saved_c + boundary < saved_p / 2


def test_checkpointing_is_off_for_evaluation_and_cached_generation():
    model = GPT(TINY)
    model.checkpoint_activations = True
    x = tokens(TINY, 2)
    model.eval()
    logits, cache = model(x[:, :8])
    step, _ = model(x[:, 8:9], cache)
    model.train()
    with torch.no_grad():
        full, _ = model(x[:, :9])
    torch.testing.assert_close(step[:, -1], full[:, -1], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# Gradient accumulation through the training loop


def test_accumulating_k_micro_batches_equals_one_batch_k_times_larger():
    k, micro = 4, 8
    batches = [(tokens(TINY, micro, 10 + i), tokens(TINY, micro, 100 + i)) for i in range(3 * k)]

    def stream(size):
        count = 0

        def get_batch(split, generator):
            nonlocal count
            parts = batches[count * size:(count + 1) * size]
            count += 1
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        return get_batch

    torch.manual_seed(0)
    start = GPT(TINY)
    big, small = copy.deepcopy(start), copy.deepcopy(start)
    base = dict(steps=3, lr=1e-2, eval_batches=0, progress=False, grad_clip=1.0)
    train(big, stream(k), TrainConfig(**base), device="cpu")
    train(small, stream(1), TrainConfig(**base, accumulation_steps=k), device="cpu")
    moved = max((a - b).abs().max().item() for a, b in zip(start.parameters(), big.parameters()))
    diff = max((a - b).abs().max().item() for a, b in zip(small.parameters(), big.parameters()))
    assert moved > 1e-3 and diff < 1e-5  # the weights moved, and moved the same way


# ---------------------------------------------------------------------------
# Precision by name


def test_bf16_on_the_cpu_runs_the_matmuls_in_bf16():
    seen = []

    def loss_fn(model, batch):
        x, y = batch
        out = model(x)
        seen.append(out.dtype)
        return F.mse_loss(out.float(), y)

    def get_batch(split, generator):
        x = torch.randn(16, 4, generator=generator)
        return x, x.sum(-1, keepdim=True)

    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        seen.clear()
        model = torch.nn.Linear(4, 1)
        train(model, get_batch, TrainConfig(steps=3, eval_batches=0, progress=False, precision=name),
              loss_fn=loss_fn, device="cpu")
        assert seen == [dtype] * 3
        assert model.weight.dtype == torch.float32  # autocast: the weights stay fp32, the matmul is 16-bit
    assert runtime.precision("cpu", "bf16").grad_scaler().is_enabled() is False
    assert runtime.precision("cpu", "fp16").grad_scaler().is_enabled() is True
    assert runtime.precision("cpu").name == "fp32"  # "auto" is unchanged: fp32 on the CPU


def test_precision_names_bad_choices():
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="mixed_precision=False means fp32"):
        TrainConfig(mixed_precision=False, precision="bf16")
    TrainConfig(mixed_precision=False, precision="fp32")
    with pytest.raises(ValueError, match="not on mps"):
        runtime.precision("mps", "bf16")
