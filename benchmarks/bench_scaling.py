"""The scaling sweep of lesson 08: its wall time and the fitted exponents.

Trains the budget's grid of small GPTs (``lmcourse.scaling.sweep``: one run per
model size N and token count D, each with its own cosine schedule), then fits
L(N) and L(D) at the largest D and N, and the joint L(N, D) = E + A/N^alpha +
B/D^beta (Hoffmann et al. 2022). Runs already in the cache
(``$LMCOURSE_HOME/results/scaling/``) are read back, not trained; the package's
shipped results are not used here, so ``--write`` really measures.

    .venv/bin/python benchmarks/bench_scaling.py                    # the smoke sweep
    .venv/bin/python benchmarks/bench_scaling.py --budget cpu --write   # remakes lmcourse/results/scaling_cpu.json
"""
from __future__ import annotations

import argparse
import time

import torch

from lmcourse import runtime, scaling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="smoke", help="smoke (default), cpu or gpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: a shared machine)")
    parser.add_argument("--write", action="store_true",
                        help="save the runs as lmcourse/results/scaling_<budget>.json (package data)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    b = runtime.budget(args.budget)
    start = time.perf_counter()
    result = scaling.sweep(b, use_shipped=False, verbose=True)
    wall = time.perf_counter() - start
    print(result)
    print(f"sweep wall time {wall:.1f} s ({result.count('trained')} runs trained, "
          f"{result.count('cache')} read from the cache; training alone {result.train_seconds:.1f} s)")
    Ns, Ds, table = result.grid()
    a_n, alpha_n = scaling.fit_power_law(Ns, table[:, -1])
    a_d, alpha_d = scaling.fit_power_law(Ds, table[-1, :])
    fit = scaling.fit_loss_surface(*result.arrays())
    print(f"L(N) at D = {Ds[-1]:,.0f}: alpha_N = {alpha_n:.3f};  L(D) at N = {Ns[-1]:,.0f}: alpha_D = {alpha_d:.3f}")
    print(f"joint fit: {fit}")
    if args.write:
        command = f"python benchmarks/bench_scaling.py --budget {b.name} --write"
        scaling.write_shipped(result, command)
        print(f"wrote {scaling.shipped_path(b.name)}")


if __name__ == "__main__":
    main()
