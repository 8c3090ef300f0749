"""Lesson 07's figures: activation checkpointing, model FLOPs utilisation, 6ND, CPU bf16.

On the ``cpu`` budget's GPT (4 layers, 4 heads, 128 wide, batches of 32 x 64
characters), one training step (forward, backward, AdamW):

1. Activation checkpointing: the bytes autograd saves for the backward pass
   with and without it (``lmcourse.memory.saved_activation_bytes``, plus the
   block inputs the checkpoints keep), and the step-time ratio, timed in
   rotating rounds (``timing.py``) so both see the same machine.
2. Model FLOPs utilisation: the step's matmul FLOPs (``gpt_matmul_flops``)
   per second, over the FLOP/s of a 512 x 512 fp32 matmul on the same threads.
3. 6ND against the matmul count: what the rule leaves out (attention).
4. bf16 autocast against fp32 on the CPU: the step-time ratio.

    .venv/bin/python benchmarks/bench_memory.py [--threads 1] [--rounds 5]

``main()`` returns the figures as a dict.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import alternate  # noqa: E402

from lmcourse import runtime  # noqa: E402
from lmcourse.memory import gpt_matmul_flops, matmul_flops_per_second, saved_activation_bytes  # noqa: E402
from lmcourse.models.gpt import GPT, GPTConfig  # noqa: E402
from lmcourse.train import TrainConfig, make_optimizer  # noqa: E402


def step_fn(model, x, y, amp):
    optimizer = make_optimizer(model, TrainConfig())

    def step():
        with amp.autocast():
            loss = F.cross_entropy(model(x)[0].flatten(0, 1).float(), y.flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per contestant")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    b = runtime.budget("cpu")
    config = GPTConfig(vocab_size=65, block_size=b.block_size, n_layer=b.n_layer, n_head=b.n_head, n_embd=b.n_embd)
    torch.manual_seed(0)
    plain = GPT(config)
    ckpt = copy.deepcopy(plain)
    ckpt.checkpoint_activations = True
    x = torch.randint(config.vocab_size, (b.batch_size, config.block_size))
    y = torch.randint(config.vocab_size, (b.batch_size, config.block_size))
    fp32, bf16 = runtime.precision("cpu", "fp32"), runtime.precision("cpu", "bf16")
    print(f"GPT {config.n_layer} layers x {config.n_embd} wide, {plain.param_count():,} parameters, "
          f"batch {b.batch_size} x {config.block_size}, {args.threads} thread(s)")

    def loss_of(model):
        return lambda: F.cross_entropy(model(x)[0].flatten(0, 1), y.flatten())
    saved_plain = saved_activation_bytes(loss_of(plain), exclude=plain.parameters())
    boundary = config.n_layer * x.numel() * config.n_embd * 4
    saved_ckpt = saved_activation_bytes(loss_of(ckpt), exclude=ckpt.parameters()) + boundary
    print(f"\n1. saved for backward: plain {saved_plain / 2**20:.2f} MiB, checkpointed "
          f"{saved_ckpt / 2**20:.2f} MiB (of which block inputs {boundary / 2**20:.2f}): "
          f"{saved_plain / saved_ckpt:.1f}x less")

    times = alternate({"plain": step_fn(plain, x, y, fp32), "checkpointed": step_fn(ckpt, x, y, fp32),
                       "bf16": step_fn(copy.deepcopy(plain), x, y, bf16)}, args.rounds)
    ratio = statistics.median(c / p for p, c in zip(times["plain"], times["checkpointed"]))
    print(f"   step time checkpointed / plain: {ratio:.2f} (median of {args.rounds} rounds)")

    flops = gpt_matmul_flops(config, b.batch_size, backward=True)
    step_seconds = min(times["plain"])  # best against best: the peak is a best time too
    achieved = sum(flops.values()) / step_seconds
    peak = matmul_flops_per_second(512)
    print(f"\n2. GPT step: {sum(flops.values()) / 1e9:.2f} GFLOP in {step_seconds * 1e3:.0f} ms = "
          f"{achieved / 1e9:.2f} GFLOP/s; 512^2 fp32 matmul peak {peak / 1e9:.1f} GFLOP/s: "
          f"MFU {achieved / peak:.1%}")

    n, d = plain.param_count(), x.numel()
    six_nd = 6 * n * d
    print(f"\n3. 6ND = {six_nd / 1e9:.3f} GFLOP; matmul count {sum(flops.values()) / 1e9:.3f} GFLOP "
          f"(ratio {sum(flops.values()) / six_nd:.3f}; attention's share "
          f"{(flops['attn_scores'] + flops['attn_values']) / sum(flops.values()):.1%})")

    bf16_ratio = statistics.median(c / p for p, c in zip(times["plain"], times["bf16"]))
    print(f"\n4. step time bf16 autocast / fp32 on this CPU: {bf16_ratio:.2f}")
    return {"saved_plain": saved_plain, "saved_checkpointed": saved_ckpt, "checkpoint_time_ratio": ratio,
            "mfu": achieved / peak, "achieved_flops": achieved, "peak_flops": peak,
            "matmul_over_6nd": sum(flops.values()) / six_nd, "bf16_time_ratio": bf16_ratio}


if __name__ == "__main__":
    main()
