"""Timing helpers shared by the benchmarks: contestants run in rotating rounds.

On a shared machine the speed drifts from minute to minute, so contestants are
never timed one after the other in blocks. Each round runs every contestant
once, starting one place later than the round before (A B C, B C A, C A B, ...),
and a ratio is the median over rounds of the per-round ratios: two runs in one
round are neighbours in time and see the same machine.
"""
from __future__ import annotations

import statistics
import time


def alternate(contestants: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds of each contestant's run, ``rounds`` times, in rotating order after one warm-up.

    A run is timed from outside, unless it returns its own figure in seconds
    (for example Keras: one epoch, without ``fit``'s per-call set-up).
    """
    for run in contestants.values():
        run()  # warm-up: first-call allocations, kernel choices, tracing
    order, times = list(contestants), {name: [] for name in contestants}
    for r in range(rounds):
        for name in order[r % len(order):] + order[: r % len(order)]:
            start = time.perf_counter()
            seconds = contestants[name]()
            elapsed = time.perf_counter() - start
            times[name].append(seconds if isinstance(seconds, float) else elapsed)
    return times


def speed_ratio(a: list[float], b: list[float]) -> float:
    """A's speed over B's: the median over rounds of time_b / time_a (neighbours in time)."""
    return statistics.median(tb / ta for ta, tb in zip(a, b))


def report(times: dict[str, list[float]], tokens_per_run: int) -> dict[str, float]:
    """Print median, best and worst tokens/s per contestant; return the medians."""
    medians = {}
    for name, seconds in times.items():
        rates = [tokens_per_run / s for s in seconds]
        medians[name] = statistics.median(rates)
        print(f"  {name:24} median {medians[name]:>9,.0f} tokens/s   "
              f"best {max(rates):>9,.0f}   worst {min(rates):>9,.0f}")
    return medians
