"""Argument checks shared by the whole package, so every function says the same thing.

One rule for every count the course takes (steps, sizes, orders, widths):
any integer type is accepted (``5``, ``np.int64(5)``, ``torch.tensor(5).item()``)
and returned as a plain ``int``; ``True``/``False`` and non-integers raise
``TypeError``; an integer below the minimum raises ``ValueError``. The
message names the argument, what was expected and what came.
"""
from __future__ import annotations

import math
from numbers import Integral, Real


def integer(name: str, value, minimum: int | None = 1) -> int:
    """``value`` as a plain ``int`` >= ``minimum`` (no lower bound if ``minimum`` is None)."""
    expected = "an integer" if minimum is None else f"an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {expected}, got {value}")
    return value


def positive_int(name: str, value) -> int:
    """A count that must be at least 1: ``positive_int("steps", steps)``."""
    return integer(name, value, minimum=1)


def non_negative_int(name: str, value) -> int:
    """A count that may be 0: ``non_negative_int("warmup_steps", warmup_steps)``."""
    return integer(name, value, minimum=0)


def number(name: str, value, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number in the given range, as a plain ``float``.

    ``number("lr", lr, low=0, low_open=True)`` accepts any lr > 0.
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{name} must be a finite number in {span}, got {value!r}")
    return value
