"""Turn whatever a learner's function returned into plain values, or say why not.

``plain(value)`` returns a copy of ``value`` built only from plain types:
``torch.Tensor`` itself (dense, on the CPU, detached, owning its memory),
``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, ``None``,
``torch.dtype``, ``torch.device``, ``torch.Generator`` (a copy), and
``tuple``, ``list`` and ``dict`` of those. Subclasses become their base type
(a ``numpy.float64`` becomes a ``float``, a named tuple a ``tuple``) without
running any method the subclass overrides: a tensor subclass whose
``__torch_function__`` says every comparison is true becomes an ordinary
tensor with the same values, and a float whose ``__float__`` raises becomes
the float it holds. Judging code that only ever sees plain values cannot be
fooled by the answer's objects, and cannot crash on them.

What cannot be made plain (a tensor on the meta device, a sparse tensor, an
object of an unknown class, a list that contains itself, more than
``MAX_ELEMENTS`` numbers) raises ``AnswerError``, whose message completes
"your function ...".

This module imports neither the exercise registry nor ``checks``: the batch
grader imports it inside the sandboxed process that runs a student's code.
"""
from __future__ import annotations

import numbers
from typing import Any

import torch

# At most this many numbers are copied out of one answer: 64 MB as float32. The
# course's expected results hold a few thousand; a larger output is a mistake, and
# copying a huge one (or a tiny tensor expand()ed to billions of elements) could
# exhaust the learner's memory.
MAX_ELEMENTS = 2**24
MAX_DEPTH = 32  # nesting of tuples, lists and dicts
_BASE = torch._C.TensorBase  # the C class whose descriptors read a tensor's own fields


class AnswerError(Exception):
    """The answer's output cannot be read as plain values; the message says why."""


def _type_name(value: Any) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}".replace("builtins.", "")


def tensors_in(value: Any) -> list[torch.Tensor]:
    """The tensors in ``value`` (nested tuples, lists, dicts), in a fixed order.

    The gradient check differentiates with respect to the floating-point ones in
    this order, on both sides of the batch grader, so the order is part of the
    protocol: depth first, dict values in insertion order.
    """
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in tensors_in(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors_in(v)]
    return []


class _Budget:
    """How many more numbers ``plain`` may copy out of this answer."""

    def __init__(self, max_elements: int):
        self.max_elements = max_elements
        self.used = 0

    def take(self, count: int, what: str) -> None:
        self.used += count
        if self.used > self.max_elements:
            raise AnswerError(
                f"returned {what}: more than the {self.max_elements:,} numbers check() "
                "reads from one result (the expected results are far smaller). Check "
                "the shape of what you return")


def _plain_tensor(value: torch.Tensor, budget: _Budget) -> torch.Tensor:
    # Read it as the base class with every __torch_function__ override switched off,
    # so nothing the subclass defines runs; then copy it into memory it owns.
    with torch._C.DisableTorchFunction():
        if type(value).__torch_dispatch__ is not torch.Tensor.__torch_dispatch__:
            raise AnswerError(
                f"returned a {_type_name(value)}, a tensor subclass with its own "
                "__torch_dispatch__, whose values check() cannot read; return an "
                "ordinary torch.Tensor")
        # The base class's own descriptors: a subclass may override these names.
        layout, is_meta = _BASE.layout.__get__(value), _BASE.is_meta.__get__(value)
        if is_meta:
            raise AnswerError(
                "returned a tensor on the meta device, which has a shape but no values; "
                "compute the result on the device of the input")
        if layout != torch.strided:
            raise AnswerError(
                f"returned a tensor with layout {layout} (a sparse tensor?); return "
                "an ordinary dense tensor (.to_dense())")
        if _BASE.is_quantized.__get__(value) or _BASE.is_nested.__get__(value):
            raise AnswerError("returned a quantized or nested tensor; return an ordinary "
                              "torch.Tensor")
        base = torch.Tensor.as_subclass(value, torch.Tensor)
        count = base.numel()
        budget.take(count, f"a tensor of shape {tuple(base.shape)} ({count:,} numbers)")
        out = base.detach().to("cpu").resolve_conj().resolve_neg().clone()
    if type(out) is not torch.Tensor:  # a defence in depth: the above makes base tensors
        raise AnswerError(f"returned a {_type_name(value)} that check() cannot read")
    return out


def _plain_number(value: Any) -> bool | int | float | complex:
    # The base classes' own conversions read the stored number without calling
    # anything a subclass overrides (numpy's float64 is a float subclass).
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, int):  # bool cannot be subclassed, so this is int or a subclass
        return value if type(value) is bool else int.__index__(value)
    if isinstance(value, complex):
        return complex(value.real, value.imag) if type(value) is complex else complex.__complex__(value)
    # Another registered number type (numpy.float32, numpy.int64, fractions.Fraction):
    # its conversion is its own code, so a failure is the answer's.
    try:
        if isinstance(value, numbers.Integral):
            result = int(value)
        elif isinstance(value, numbers.Real):
            result = float(value)
        else:
            result = complex(value)
    except Exception as exc:
        raise AnswerError(f"returned a {_type_name(value)} that cannot be converted to a "
                          f"Python number ({type(exc).__name__})") from None
    return _plain_number(result) if type(result) not in (int, float, complex) else result


def _plain(value: Any, budget: _Budget, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise AnswerError(f"returned tuples, lists or dicts nested more than {MAX_DEPTH} "
                          "deep (does a list contain itself?)")
    if value is None or type(value) in (torch.dtype, torch.device):
        return value
    if isinstance(value, torch.Tensor):
        return _plain_tensor(value, budget)
    if isinstance(value, torch.Generator):
        copy = torch.Generator(device=value.device)
        copy.set_state(value.get_state())
        return copy
    if isinstance(value, numbers.Number):
        budget.take(1, "too many numbers")
        return _plain_number(value)
    if isinstance(value, (str, bytes)):
        base = str if isinstance(value, str) else bytes
        size = base.__len__(value)
        budget.take(size // 8, f"a text of {size:,} characters")
        return base.__getitem__(value, slice(None))
    if isinstance(value, (tuple, list)):
        base = tuple if isinstance(value, tuple) else list
        size = base.__len__(value)
        budget.take(size, f"a {base.__name__} of {size:,} items")
        items = [_plain(base.__getitem__(value, i), budget, depth + 1) for i in range(size)]
        return tuple(items) if base is tuple else items
    if isinstance(value, dict):
        pairs = list(dict.items(value))
        budget.take(len(pairs), f"a dict of {len(pairs):,} items")
        out = {}
        for key, item in pairs:
            key = _plain(key, budget, depth + 1)
            if not isinstance(key, (bool, int, float, str, bytes, tuple, type(None))):
                raise AnswerError(f"returned a dict with a key of type {_type_name(key)}")
            out[key] = _plain(item, budget, depth + 1)
        return out
    what = "a numpy array" if _type_name(value) == "numpy.ndarray" else f"a {_type_name(value)}"
    raise AnswerError(
        f"returned {what}, which check() cannot compare: return torch tensors, Python "
        "numbers, or tuples and lists of them")


def plain(value: Any, max_elements: int = MAX_ELEMENTS) -> Any:
    """A copy of ``value`` made of plain types only; ``AnswerError`` if it cannot be."""
    try:
        return _plain(value, _Budget(max_elements), 0)
    except AnswerError:
        raise
    except RecursionError:
        raise AnswerError("returned something nested too deeply to read") from None
    except Exception as exc:  # an odd object broke a conversion: still the answer's doing
        raise AnswerError(f"returned something check() could not read "
                          f"({type(exc).__name__})") from None
