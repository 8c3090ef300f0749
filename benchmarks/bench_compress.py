"""Compression of the course GPT: one table of size, CPU latency and validation perplexity.

Side by side in one run, on the lessons' Shakespeare characters at a budget's sizes
(default ``cpu``: a 4 x 128 GPT):

* the trained teacher (fp32), the reference for every change;
* magnitude-pruned copies at 50 % and 80 % (global, ``torch.nn.utils.prune``);
* int8 weights, ours (``Int8Linear``: per-row symmetric, dequantised at each call);
* int8, torch's ``quantize_dynamic`` (per-row weights, activations quantized at run time);
* a student half as wide and deep, distilled from the teacher (T=2, alpha=0.5),
  and the same student from the same initial weights trained without a teacher
  for as many steps: the honest baseline of distillation.

Latency is the fastest of ``--rounds`` x 3 forward passes per model, models timed in
turn (``lmcourse.compress.cpu_latency``), for a batch of ``batch_size`` validation
windows and for a single window (batch 1), on ``--threads`` CPU threads. Perplexity
is on the first ``eval_tokens`` validation characters, every one scored once.

    .venv/bin/python benchmarks/bench_compress.py [--budget cpu] [--threads 1] [--steps N] [--quick]

``main()`` returns the figures as a dict.
"""
from __future__ import annotations

import argparse
import copy
import time

import torch

from lmcourse import compress, runtime, scoreboard
from lmcourse.models.gpt import GPT, GPTConfig
from lmcourse.train import TrainConfig, train


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", default="cpu", help="the sizes: smoke, cpu or gpu (default cpu)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for the timings (default 1)")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps of the teacher and each student (default: the budget's compress_steps)")
    parser.add_argument("--rounds", type=int, default=10, help="timing rounds (default 10)")
    parser.add_argument("--quick", action="store_true", help="the smoke budget: a run of seconds")
    args = parser.parse_args(argv)
    B = runtime.budget("smoke" if args.quick else args.budget)
    steps = args.steps or B.compress_steps
    torch.set_num_threads(args.threads)
    dev = runtime.device()
    data = scoreboard.char_data(B, dev)
    val_ids = data.batches.splits["val"][: B.eval_tokens]

    def gpt(n_layer, n_head, n_embd):
        return GPT(GPTConfig(vocab_size=data.vocab_size, block_size=B.block_size, n_layer=n_layer,
                             n_head=n_head, n_embd=n_embd))

    def recipe():
        return TrainConfig(steps=steps, lr=B.gpt_learning_rate, warmup_steps=max(1, steps // 10),
                           min_lr_ratio=0.02, eval_batches=0, progress=False)

    print(f"budget {B.name!r}: teacher {B.n_layer} x {B.n_embd}, {steps} steps on {dev}; "
          f"timings on {args.threads} CPU thread(s)")
    runtime.seed_everything(0)
    teacher = gpt(B.n_layer, B.n_head, B.n_embd)
    started = time.perf_counter()
    train(teacher, data.batches, recipe())
    teacher_seconds = time.perf_counter() - started
    teacher = teacher.cpu().eval()

    models = {"teacher (fp32)": teacher}
    for amount in (0.5, 0.8):
        pruned = copy.deepcopy(teacher)
        compress.magnitude_prune(pruned, amount)
        models[f"pruned {amount:.0%} (global)"] = pruned
    models["int8 (ours, weight-only)"] = compress.quantize_model_int8(teacher)
    models["int8 (torch quantize_dynamic)"] = compress.library_quantize_int8(teacher)

    runtime.seed_everything(1)
    small = dict(n_layer=max(1, B.n_layer // 2), n_head=max(1, B.n_head // 2), n_embd=B.n_embd // 2)
    plain = gpt(**small)
    distilled = copy.deepcopy(plain)
    started = time.perf_counter()
    train(plain, data.batches, recipe())
    plain_seconds = time.perf_counter() - started
    started = time.perf_counter()
    compress.distill(teacher, distilled, data.batches, recipe(), temperature=2.0, alpha=0.5)
    distill_seconds = time.perf_counter() - started
    teacher.cpu().eval()
    models["student (no teacher)"] = plain.cpu().eval()
    models["student (distilled)"] = distilled.cpu().eval()

    x_val, _ = data.batches.windows("val")
    batch, single = x_val[: B.batch_size], x_val[:1]
    per_batch = compress.cpu_latency(models, batch, rounds=args.rounds, repeats=3)
    per_window = compress.cpu_latency(models, single, rounds=args.rounds, repeats=3)
    figures = {}
    for name, model in models.items():
        figures[name] = {"bytes": compress.model_size_bytes(model),
                         "batch_seconds": per_batch[name], "window_seconds": per_window[name],
                         "perplexity": compress.perplexity(model, val_ids, B.block_size)}
    base = figures["teacher (fp32)"]
    print(f"\nteacher trained in {teacher_seconds:.0f} s; students {plain_seconds:.0f} s alone, "
          f"{distill_seconds:.0f} s distilled ({distill_seconds / plain_seconds:.2f}x)")
    print(f"latency: one forward pass of {B.batch_size} x {B.block_size} tokens, and of 1 x {B.block_size}\n")
    print(f"{'method':<30} {'bytes':>10} {'x size':>7} {'ms/batch':>9} {'us/token':>9} {'x time':>7} "
          f"{'ms/window':>10} {'val ppl':>8} {'change':>8}")
    for name, f in figures.items():
        print(f"{name:<30} {f['bytes']:10,} {f['bytes'] / base['bytes']:7.2f} {1e3 * f['batch_seconds']:9.2f} "
              f"{1e6 * f['batch_seconds'] / batch.numel():9.1f} {f['batch_seconds'] / base['batch_seconds']:7.2f} "
              f"{1e3 * f['window_seconds']:10.2f} {f['perplexity']:8.3f} "
              f"{f['perplexity'] / base['perplexity'] - 1:+8.1%}")
    kn = 2 ** scoreboard.table(data)["Kneser-Ney"]
    print(f"{'Kneser-Ney n-gram (baseline)':<30} {'':>10} {'':>7} {'':>9} {'':>9} {'':>7} {'':>10} {kn:8.3f} "
          f"{kn / base['perplexity'] - 1:+8.1%}")
    figures["kneser_ney_perplexity"] = kn
    figures["distill_time_ratio"] = distill_seconds / plain_seconds
    return figures


if __name__ == "__main__":
    main()
