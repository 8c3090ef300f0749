"""How much does the course's training loop cost over a bare PyTorch loop?

Both loops train the same small character-level LSTM (vocabulary 65, like tiny
Shakespeare's characters; batches of 12 windows of 64 tokens) from the same
starting weights on the same batches. The bare loop is the least a training
loop can be: zero_grad, forward, loss, backward, AdamW step. The course loop
adds the learning-rate schedule, gradient clipping, the gradient-norm record,
History and the (disabled) progress bar; evaluation and checkpoints are off.

The loops are timed in rotating rounds (A B C, B C A, C A B, ...) after a
warm-up, so drifts in the machine's speed hit all alike; the figure is the median over rounds of
each round's course/bare ratio. Gradient clipping is real work (a pass over
every gradient), so the course loop is timed with it and without it.

    python benchmarks/bench_train.py
"""
from __future__ import annotations

import copy
import dataclasses
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import alternate, report, speed_ratio  # noqa: E402

from lmcourse import runtime  # noqa: E402
from lmcourse.data.batching import random_windows  # noqa: E402
from lmcourse.train import TrainConfig, train  # noqa: E402

VOCAB, BATCH, BLOCK = 65, 12, 64


class CharLSTM(nn.Module):
    def __init__(self, vocab: int = VOCAB, embd: int = 64, hidden: int = 256):
        super().__init__()
        self.embed = nn.Embedding(vocab, embd)
        self.lstm = nn.LSTM(embd, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x):
        out, _ = self.lstm(self.embed(x))
        return self.head(out)


def make_get_batch(tokens: torch.Tensor, dev: torch.device):
    return lambda split, generator: random_windows(tokens, BATCH, BLOCK, generator, device=dev)


def bare_loop(model, get_batch, steps: int, lr: float, seed: int, dev: torch.device) -> None:
    model.to(dev).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = get_batch("train", generator)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
        loss.backward()
        optimizer.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()


def main(steps: int = 40, rounds: int = 9, threads: int | None = None) -> dict:
    """Time the loops in turn; print and return tokens/s and the course/bare ratios.

    Three contestants: the course loop as a lesson runs it (gradient clipping
    on, the default), the course loop without clipping (the loop's own
    overhead), and the bare loop. ``threads`` sets torch's CPU threads (default:
    torch's choice); on a busy shared machine one thread gives steadier figures,
    as a descheduled second thread stalls every parallel kernel.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    dev = runtime.device()
    torch.manual_seed(0)
    tokens = torch.randint(VOCAB, (200_000,))
    get_batch = make_get_batch(tokens, dev)
    base = CharLSTM()
    config = TrainConfig(steps=steps, lr=2e-3, eval_batches=0, progress=False)
    no_clip = dataclasses.replace(config, grad_clip=None)
    contestants = {
        "course": lambda: train(copy.deepcopy(base), get_batch, config, device=dev),
        "course_no_clip": lambda: train(copy.deepcopy(base), get_batch, no_clip, device=dev),
        "bare": lambda: bare_loop(copy.deepcopy(base), get_batch, steps, config.lr, config.seed, dev),
    }

    times = alternate(contestants, rounds)
    result = {"device": str(dev), "threads": torch.get_num_threads(), "steps_per_run": steps,
              "rounds": rounds}
    print(f"training loop benchmark: char LSTM, vocab {VOCAB}, batch {BATCH}x{BLOCK}, on {dev} "
          f"({result['threads']} threads), {rounds} rounds of {steps} steps each")
    for name, rate in report(times, steps * BATCH * BLOCK).items():
        result[f"{name}_tokens_per_s"] = rate
    for name in ("course", "course_no_clip"):
        result[f"{name}_ratio"] = speed_ratio(times[name], times["bare"])
        print(f"  {name} / bare: {result[f'{name}_ratio']:.3f}x (median of per-round ratios)")
    return result


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    main(args.steps, args.rounds, args.threads)
