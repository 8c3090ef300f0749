"""Where the neural models overtake the n-gram: longer runs on the lessons' data.

At the ``cpu`` budget the lessons train each neural model for 1500 steps, and
the interpolated Kneser-Ney n-gram of lesson 01 beats all of them on the same
validation text (``lmcourse.scoreboard``). Is that the end of the story, or a
matter of compute? This script trains the lesson-06 GPT and a 2-layer LSTM on
the same data for several times the lessons' steps, each with its own
warm-up + cosine schedule over the whole run, and measures exact validation
bits per character (``scoreboard.bits_per_char``: every character scored)
every ``--eval-every`` steps. A point in the middle of a long run still has a
high learning rate, so it is an upper bound on what a run of that length
would reach: the crossover step it shows is conservative.

The figures are saved to ``lmcourse/results/crossover_<budget>.json`` (the
package ships them; ``scoreboard.crossover()`` reads them and lesson 06
plots them), after every measurement, so an interrupted run keeps what it had.

    .venv/bin/python benchmarks/bench_crossover.py [--budget cpu] [--steps 6000] [--threads 1]
    .venv/bin/python benchmarks/bench_crossover.py --quick      # smoke budget, a few steps
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

from lmcourse import atomic, runtime, scoreboard
from lmcourse.models.gpt import GPT, GPTConfig
from lmcourse.models.rnn import RecurrentLM
from lmcourse.train import TrainConfig, train

RESULTS = Path(__file__).resolve().parents[1] / "lmcourse" / "results"


def models(b: runtime.Budget, vocab_size: int, dropout: float) -> dict:
    """name -> (model factory, peak learning rate): the lessons' shapes, with dropout for long runs."""
    return {
        "GPT": (lambda: GPT(GPTConfig(vocab_size=vocab_size, block_size=b.block_size,
                                      n_layer=b.n_layer, n_head=b.n_head, n_embd=b.n_embd,
                                      positions="rotary", bias=True, dropout=dropout)),
                b.gpt_learning_rate),
        "LSTM": (lambda: RecurrentLM(vocab_size, n_embd=b.n_embd, hidden_size=b.rnn_hidden,
                                     n_layer=2, cell="lstm", dropout=dropout),
                 b.learning_rate),
    }


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", default="cpu")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--models", default="GPT,LSTM")
    parser.add_argument("--quick", action="store_true", help="smoke budget, 40 steps: does it run?")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.budget, args.steps, args.eval_every = "smoke", 40, 20
    out = args.out or (RESULTS / f"crossover_{args.budget}.json")
    if args.quick and args.out is None:
        out = Path("/tmp") / "crossover_quick.json"

    torch.set_num_threads(args.threads)
    b = runtime.budget(args.budget)
    data = scoreboard.char_data(b, device="cpu")
    base = scoreboard.table(data)
    print(f"{data}\nKneser-Ney (order {base.kneser_ney_order}): {base['Kneser-Ney']:.3f} bits/char",
          flush=True)

    result = {
        "budget": b.name, "kneser_ney": base["Kneser-Ney"], "kneser_ney_order": base.kneser_ney_order,
        "lesson_steps": b.train_steps, "curves": {},
        "command": "python benchmarks/bench_crossover.py " + " ".join(argv or sys.argv[1:]),
        "config": {"steps": args.steps, "eval_every": args.eval_every, "threads": args.threads,
                   "dropout": args.dropout, "schedule": f"warm-up {b.train_steps // 10} steps, cosine to 2 %",
                   "batch": f"{b.batch_size} x {b.block_size}", "torch": torch.__version__,
                   "commit": git_commit(), "models": {}, "seconds": {}},
    }
    for name in args.models.split(","):
        factory, lr = models(b, data.vocab_size, args.dropout)[name]
        runtime.seed_everything(0)
        model = factory()
        curve = result["curves"][name] = []
        result["config"]["models"][name] = f"{model.param_count():,} parameters, peak lr {lr}"

        def measure(step: int, _val_loss: float, model=model, curve=curve, name=name) -> None:
            bits = scoreboard.bits_per_char(model, data)
            curve.append((step, bits))
            print(f"{name} step {step:5d}: {bits:.3f} bits/char", flush=True)
            atomic.write_json(out, result)  # keep what we have if the run is stopped

        config = TrainConfig(steps=args.steps, lr=lr, warmup_steps=b.train_steps // 10,
                             min_lr_ratio=0.02, eval_interval=args.eval_every, eval_batches=1,
                             progress=False)
        start = time.perf_counter()
        train(model, data.batches, config, device="cpu", on_eval=measure)
        result["config"]["seconds"][name] = round(time.perf_counter() - start)
        atomic.write_json(out, result)
        first = next((s for s, bits in curve if bits < result["kneser_ney"]), None)
        print(f"{name}: best {min(bits for _, bits in curve):.3f} bits/char; first below "
              f"Kneser-Ney at step {first}", flush=True)
    print(f"saved {out}")
    return result


if __name__ == "__main__":
    main()
