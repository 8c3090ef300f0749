"""Data parallelism on this machine's CPU: tokens/s of 1 process against 2 (DDP, gloo).

Each contestant is the real command,

    torchrun --standalone --nproc_per_node N -m lmcourse.distributed --threads 1 ...

with the same per-rank batch (so 2 processes do twice the work per step: weak
scaling, as DDP is used), 1 thread per process. The figure is training
tokens/s over all ranks as the module reports it (process start-up and
evaluation excluded). Scaling efficiency = tokens/s(2) / (2 x tokens/s(1)):
1.0 would be perfect; the all-reduce of every step's gradients, and two
processes sharing 2 cores with everything else on the machine, take it below.
Runs alternate (1, 2, 2, 1, ...) so both see the same machine.

    python benchmarks/bench_distributed.py [--budget cpu] [--steps 40] [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def tokens_per_s(nproc: int, budget: str, steps: int, folder: Path) -> float:
    report = folder / f"report-{nproc}.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "lmcourse.distributed", "--budget", budget, "--steps", str(steps), "--threads", "1",
           "--report", str(report)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    return json.loads(report.read_text())["tokens_per_s"]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", default="cpu", help="model and batch sizes (default cpu: lesson 06's GPT)")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    runs: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as folder:
        for r in range(args.rounds):
            for nproc in ((1, 2) if r % 2 == 0 else (2, 1)):
                runs[nproc].append(tokens_per_s(nproc, args.budget, args.steps, Path(folder)))
    # Per-round efficiency: the two runs of a round are neighbours in time.
    efficiency = statistics.median(two / (2 * one) for one, two in zip(runs[1], runs[2]))
    print(f"DDP on gloo, budget {args.budget}, {args.steps} steps, 1 thread per process, {args.rounds} rounds")
    print(f"{'processes':>10} {'tokens/s (median)':>18} {'runs':>24}")
    for nproc, values in runs.items():
        print(f"{nproc:>10} {statistics.median(values):>18,.0f} {', '.join(f'{v:,.0f}' for v in values):>24}")
    print(f"scaling efficiency tokens/s(2) / (2 x tokens/s(1)): {efficiency:.2f} (median of rounds)")
    return {"tokens_per_s": {n: statistics.median(v) for n, v in runs.items()}, "efficiency": efficiency}


if __name__ == "__main__":
    main()
