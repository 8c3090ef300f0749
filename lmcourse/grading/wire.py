"""Plain values on a pipe: how the grader and a sandboxed notebook talk.

The batch grader sends a case's inputs to the process that runs a student's
notebook and reads back what the student's function returned. What comes
back is written by code the grader does not trust, so it is never unpickled:
``encode`` turns plain values (None, bool, int, float, complex, str, bytes,
list, tuple, dict, dense CPU tensors, dtypes, devices, ``torch.Generator``:
what ``plain.plain`` returns) into JSON, and ``decode``
rebuilds them from JSON alone, checking every field and refusing anything
else or anything too large with ``WireError``. A decoded tensor is always a
plain ``torch.Tensor``: no subclass or custom method can travel this way.
"""
from __future__ import annotations

import base64
import json
import math
from typing import Any

import torch

from lmcourse.grading.plain import MAX_DEPTH, MAX_ELEMENTS  # what plain() lets through

MAX_MESSAGE_BYTES = 128 * 2**20  # one JSON line; a bigger answer is refused, not read

_DTYPES = {
    str(dtype).removeprefix("torch."): dtype
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64,
                  torch.complex64, torch.complex128, torch.uint8, torch.int8, torch.int16,
                  torch.int32, torch.int64, torch.bool)
}


class WireError(ValueError):
    """A value that cannot be sent, or a message that is not what the grader expects."""


def encode(value: Any) -> Any:
    """``value`` as JSON-compatible data (tensors as base64 bytes)."""
    return _encode(value, 0)


def _encode(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise WireError(f"nested deeper than {MAX_DEPTH} levels")
    if value is None or type(value) in (bool, str):
        return value
    if type(value) is int:
        return {"t": "int", "v": str(value)}  # any size, exactly
    if type(value) is float:
        return {"t": "float", "v": repr(value)}  # nan and inf too
    if type(value) is complex:
        return {"t": "complex", "v": [repr(value.real), repr(value.imag)]}
    if type(value) is bytes:
        return {"t": "bytes", "v": _b64(value)}
    if type(value) is torch.dtype:
        return {"t": "dtype", "v": str(value).removeprefix("torch.")}
    if type(value) is torch.device:
        return {"t": "device", "v": str(value)}
    if type(value) in (list, tuple):
        return {"t": type(value).__name__, "v": [_encode(v, depth + 1) for v in value]}
    if type(value) is dict:
        return {"t": "dict", "v": [[_encode(k, depth + 1), _encode(v, depth + 1)]
                                   for k, v in value.items()]}
    if type(value) is torch.Generator:
        return {"t": "generator", "v": _b64(value.get_state().numpy().tobytes())}
    if type(value) in (torch.Tensor, torch.nn.Parameter):
        return _encode_tensor(value)
    raise WireError(f"cannot send a {type(value).__qualname__}")


def _encode_tensor(tensor: torch.Tensor) -> dict:
    name = str(tensor.dtype).removeprefix("torch.")
    if name not in _DTYPES:
        raise WireError(f"cannot send a tensor of dtype {tensor.dtype}")
    if tensor.layout != torch.strided or tensor.device.type != "cpu":
        raise WireError(f"cannot send a {tensor.layout} tensor on {tensor.device}")
    if tensor.numel() > MAX_ELEMENTS:
        raise WireError(f"a tensor of {tensor.numel():,} elements is more than "
                        f"{MAX_ELEMENTS:,}")
    data = tensor.detach().contiguous()
    raw = data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b""
    return {"t": "tensor", "dtype": name, "shape": list(data.shape), "v": _b64(raw)}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def decode(data: Any) -> Any:
    """Rebuild a value from ``encode``'s output; ``WireError`` for anything else."""
    return _decode(data, 0)


def _decode(data: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise WireError(f"nested deeper than {MAX_DEPTH} levels")
    if data is None or type(data) in (bool, str):
        return data
    if type(data) is not dict or not isinstance(data.get("t"), str):
        raise WireError(f"unexpected {type(data).__name__} in a message")
    kind, v = data["t"], data.get("v")
    if kind == "int":
        return _int(v)
    if kind == "float":
        return _float(v)
    if kind == "complex":
        if type(v) is not list or len(v) != 2:
            raise WireError("a complex must be sent as [real, imag]")
        return complex(_float(v[0]), _float(v[1]))
    if kind == "bytes":
        return _bytes(v)
    if kind == "dtype":
        if type(v) is not str or v not in _DTYPES:
            raise WireError(f"unknown dtype {v!r:.40}")
        return _DTYPES[v]
    if kind == "device":
        if type(v) is not str or len(v) > 40:
            raise WireError("a device must be sent as its name")
        try:
            return torch.device(v)
        except (RuntimeError, ValueError):
            raise WireError(f"unknown device {v!r}") from None
    if kind in ("list", "tuple"):
        items = [_decode(item, depth + 1) for item in _list(v)]
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        out = {}
        for pair in _list(v):
            if type(pair) is not list or len(pair) != 2:
                raise WireError("a dict item is not a [key, value] pair")
            key = _decode(pair[0], depth + 1)
            try:
                out[key] = _decode(pair[1], depth + 1)
            except TypeError as exc:  # an unhashable key
                raise WireError(f"bad dict key: {exc}") from None
        return out
    if kind == "generator":
        state = torch.frombuffer(bytearray(_bytes(v)), dtype=torch.uint8).clone()
        gen = torch.Generator()
        try:
            gen.set_state(state)
        except RuntimeError as exc:
            raise WireError(f"bad generator state: {exc}") from None
        return gen
    if kind == "tensor":
        return _decode_tensor(data)
    raise WireError(f"unknown kind {kind!r}")


def _int(v: Any) -> int:
    if type(v) is not str or len(v) > 5000:
        raise WireError("an int must be sent as a string of at most 5000 digits")
    try:
        return int(v)
    except ValueError:
        raise WireError(f"not an int: {v[:40]!r}") from None


def _float(v: Any) -> float:
    if type(v) is not str or len(v) > 40:
        raise WireError("a float must be sent as its repr")
    try:
        value = float(v)
    except ValueError:
        raise WireError(f"not a float: {v!r}") from None
    return value if not math.isnan(value) else math.nan


def _list(v: Any) -> list:
    if type(v) is not list:
        raise WireError("expected a list")
    return v


def _bytes(v: Any) -> bytes:
    if type(v) is not str:
        raise WireError("expected base64 text")
    try:
        return base64.b64decode(v, validate=True)
    except ValueError:
        raise WireError("bad base64") from None


def _decode_tensor(data: dict) -> torch.Tensor:
    dtype = _DTYPES.get(data.get("dtype")) if type(data.get("dtype")) is str else None
    shape = data.get("shape")
    if dtype is None:
        raise WireError(f"unknown tensor dtype {data.get('dtype')!r}")
    if (type(shape) is not list or len(shape) > 16
            or not all(type(n) is int and 0 <= n <= MAX_ELEMENTS for n in shape)):
        raise WireError(f"bad tensor shape {shape!r:.80}")
    numel = math.prod(shape)
    if numel > MAX_ELEMENTS:
        raise WireError(f"a tensor of {numel:,} elements is more than {MAX_ELEMENTS:,}")
    raw = _bytes(data.get("v"))
    itemsize = torch.empty((), dtype=dtype).element_size()
    if len(raw) != numel * itemsize:
        raise WireError(f"a {dtype} tensor of shape {tuple(shape)} needs "
                        f"{numel * itemsize} bytes, got {len(raw)}")
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape).clone()


def dumps(message: dict) -> bytes:
    """One message as a JSON line."""
    return json.dumps(message, allow_nan=False, separators=(",", ":")).encode("utf-8") + b"\n"


def loads(line: bytes) -> dict:
    """Parse one message line; ``WireError`` unless it is a JSON object."""
    if len(line) > MAX_MESSAGE_BYTES:
        raise WireError(f"a message of more than {MAX_MESSAGE_BYTES} bytes")
    try:
        message = json.loads(line.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise WireError(f"not a JSON message ({exc.__class__.__name__})") from None
    if type(message) is not dict:
        raise WireError("a message must be a JSON object")
    return message


def _no_constants(name: str):
    raise ValueError(f"{name} is not allowed")
