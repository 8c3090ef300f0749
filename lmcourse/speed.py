"""How fast a model generates: time to first token, per-token latency, throughput.

A chat model's user feels two numbers: how long until the first token appears
(the *prefill*: one forward pass over the whole prompt, which already yields
the first token) and how fast the rest streams (one *decode* step per token,
each reading the KV cache). A server's owner feels a third: tokens per second
over every request in a batch. ``generation_speed`` times
``lmcourse.generate.stream`` token by token and returns all three in a
``GenerationSpeed``.

Accelerators run kernels asynchronously, so every clock read waits for the
device first (``synchronize``); without that a GPU timing measures only how
fast Python queued the work.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from lmcourse.validate import positive_int

__all__ = ["GenerationSpeed", "generation_speed", "synchronize"]


@dataclass(frozen=True)
class GenerationSpeed:
    """How fast a model wrote ``new_tokens`` tokens for each of ``batch_size`` prompts.

    ``token_times[i]`` is the time in seconds from the start until new token
    ``i`` was ready (for the whole batch). The time to first token covers
    reading the prompt (the "prefill"), whose last position already gives the
    first token; each later token costs one decoding step, whose typical cost
    is ``per_token_latency`` (the median gap, so one hiccup of a shared machine
    does not move it).
    """

    batch_size: int
    new_tokens: int
    token_times: tuple[float, ...]

    @property
    def time_to_first_token(self) -> float:
        return self.token_times[0]

    @property
    def per_token_latency(self) -> float:
        """Median seconds between consecutive new tokens (0.0 with a single token)."""
        gaps = [b - a for a, b in zip(self.token_times, self.token_times[1:])]
        return statistics.median(gaps) if gaps else 0.0

    @property
    def total_seconds(self) -> float:
        return self.token_times[-1]

    @property
    def tokens_per_second(self) -> float:
        """New tokens written per second, over the whole batch and the whole run."""
        return self.batch_size * self.new_tokens / self.total_seconds

    def __str__(self) -> str:
        return (f"{self.new_tokens} tokens x {self.batch_size}: first token after "
                f"{1e3 * self.time_to_first_token:.1f} ms, then {1e3 * self.per_token_latency:.2f} ms "
                f"per token, {self.tokens_per_second:,.0f} tokens/s")


def synchronize(device: torch.device | str) -> None:
    """Wait for the accelerator: its kernels run asynchronously, so a clock read alone would lie."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def generation_speed(model, prompt, max_new_tokens: int, **options) -> GenerationSpeed:
    """Time ``lmcourse.generate.stream(model, prompt, max_new_tokens, **options)`` token by token.

    ``options`` are those of :func:`lmcourse.generate.generate`, for example
    ``temperature=0`` or ``use_cache=False``. Run it once first to warm up
    (the first call pays for memory allocation and kernel selection), and
    compare two settings in alternation when the machine is shared.
    """
    from lmcourse.generate import _model_device, stream  # generate imports nothing from here; keep it so

    max_new_tokens = positive_int("max_new_tokens", max_new_tokens)
    tokens = stream(model, prompt, max_new_tokens, **options)
    device = _model_device(model, torch.device("cpu"))
    times, batch_size = [], 1
    synchronize(device)
    start = time.perf_counter()
    for token in tokens:
        synchronize(device)
        times.append(time.perf_counter() - start)
        batch_size = token.shape[0]
    return GenerationSpeed(batch_size=batch_size, new_tokens=len(times), token_times=tuple(times))
