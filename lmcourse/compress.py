"""Making a trained model smaller: magnitude pruning, int8 weights, distillation.

Three ways to shrink a model after (or while) training it, each trading a little
quality for size or speed at deployment:

* Magnitude pruning (Han et al. 2015): set the smallest weights to zero.
  ``torch.nn.utils.prune`` does it with a mask; ``prune.remove`` makes it
  permanent. The matrices stay dense, so on dense kernels the zeros cost as much
  time and memory as any other number: pruning pays only with a sparse format
  or sparse hardware (2:4 sparsity on recent GPUs, Mishra et al. 2021).
* Int8 weight quantization: store each weight matrix as int8 with one float
  scale per output row (symmetric, ``scale = max|w_row| / 127``), 4x smaller
  than fp32. ``quantize_int8`` / ``dequantize_int8`` write it out; ``Int8Linear``
  runs a layer from those int8 weights. PyTorch's own path,
  ``torch.ao.quantization.quantize_dynamic``, also quantizes the activations on
  the fly and multiplies in int8 (fbgemm/onednn kernels); torch marks it
  deprecated in favour of the separate ``torchao`` package
  (``library_quantize_int8`` says so when it runs).
* Knowledge distillation (Hinton et al. 2015): train a small student on the
  teacher's softened output distribution as well as on the data
  (``distillation_loss``, ``distill``).

``model_size_bytes`` counts what a model's weights take; ``cpu_latency`` times
forward passes of several models in alternation and keeps each one's fastest call,
so a shared machine's load falls on all of them alike.
"""
from __future__ import annotations

import copy
import io
import math
import time
import warnings
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

from lmcourse.validate import number, positive_int

__all__ = ["magnitude_prune", "sparsity", "quantize_int8", "dequantize_int8", "Int8Linear",
           "quantize_model_int8", "library_quantize_int8", "distillation_loss", "distill",
           "model_size_bytes", "saved_size_bytes", "cpu_latency", "perplexity",
           "prunable_linears"]

PRUNE_SCOPES = ("global", "layer")


# ---------------------------------------------------------------------------
# Which layers are compressed


def prunable_linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The linear layers inside the Transformer blocks: where nearly all the weights are.

    The token embedding is left out: in the course's GPT it is also the output
    head (weight tying), and it is a small ``vocab x n_embd`` table for a
    character model. Compressing it would also untie it (two copies).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    head = getattr(model, "head", None)
    layers = [(name, m) for name, m in model.named_modules()
              if isinstance(m, nn.Linear) and m is not head]
    if not layers:
        raise ValueError("the model has no nn.Linear layers (besides its output head) to compress")
    return layers


# ---------------------------------------------------------------------------
# Magnitude pruning


def magnitude_prune(model: nn.Module, amount: float, scope: str = "global") -> float:
    """Zero the fraction ``amount`` of the smallest-magnitude weights of the linear layers, in place.

    ``scope="global"`` ranks the weights of all layers together, one threshold
    for the whole model: a layer whose weights are mostly small loses more of
    them, one with large weights keeps them. Blalock et al. (2020) found global
    magnitude pruning better than the same fraction in every layer at high
    sparsity, which is why it is the default. ``scope="layer"`` prunes
    ``amount`` of each layer. Biases and normalisation gains are left alone:
    they are few and each matters.

    The masks are made permanent (``prune.remove``), so the result is an
    ordinary model with zeros in it. Returns the achieved sparsity of the
    pruned matrices (zeros / entries).
    """
    amount = number("amount", amount, low=0.0, high=1.0)
    if scope not in PRUNE_SCOPES:
        raise ValueError(f"scope must be one of {PRUNE_SCOPES}, got {scope!r}")
    layers = [m for _, m in prunable_linears(model)]
    if scope == "global":
        prune.global_unstructured([(m, "weight") for m in layers],
                                  pruning_method=prune.L1Unstructured, amount=amount)
    else:
        for m in layers:
            prune.l1_unstructured(m, "weight", amount=amount)
    for m in layers:
        prune.remove(m, "weight")  # weight = weight_orig * mask, as a plain parameter again
    return sparsity(model)


def sparsity(model: nn.Module) -> float:
    """The fraction of zeros in the weight matrices ``magnitude_prune`` works on."""
    layers = [m for _, m in prunable_linears(model)]
    zeros = sum(int((m.weight == 0).sum()) for m in layers)
    return zeros / sum(m.weight.numel() for m in layers)


# ---------------------------------------------------------------------------
# Int8 weights, written out


def _check_matrix(w) -> torch.Tensor:
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"expected a weight matrix as a torch.Tensor (out, in), got {type(w).__name__}")
    if w.ndim != 2 or not w.is_floating_point() or w.numel() == 0:
        raise ValueError(f"expected a non-empty floating-point weight matrix of shape (out, in), "
                         f"got shape {tuple(w.shape)} and dtype {w.dtype}")
    if not torch.isfinite(w).all():
        raise ValueError("the weight matrix holds NaN or inf: int8 has no code for them")
    return w


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 with one scale per output row: ``(q (out, in) int8, scale (out,))``.

    ``scale = max|w_row| / 127`` maps each row's largest weight to +-127, and
    ``q = round(w / scale)``; -128 is left unused so that the range is symmetric
    and 0 stays exactly 0. Each element is off by at most ``scale / 2`` after
    ``dequantize_int8``. A row of zeros gets scale 0 and dequantises to zeros.
    One scale per row (not one for the whole matrix) keeps a row of small
    weights from being rounded away because another row holds a large one.
    """
    w = _check_matrix(w)
    scale = w.detach().abs().amax(dim=1) / 127
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))  # a zero row: 0 / 1 = 0, not 0 / 0
    q = torch.round(w.detach() / safe[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``q * scale`` row by row: the float matrix an int8 one stands for."""
    if not isinstance(q, torch.Tensor) or q.dtype != torch.int8 or q.ndim != 2:
        raise ValueError(f"expected q as an int8 matrix (out, in), got "
                         f"{getattr(q, 'dtype', type(q).__name__)} of shape {tuple(getattr(q, 'shape', ()))}")
    if not isinstance(scale, torch.Tensor) or tuple(scale.shape) != (q.shape[0],):
        raise ValueError(f"expected scale of shape ({q.shape[0]},), one per row of q, got "
                         f"{tuple(scale.shape) if isinstance(scale, torch.Tensor) else type(scale).__name__}")
    return q.to(dtype) * scale.to(dtype)[:, None]


class Int8Linear(nn.Module):
    """A linear layer whose weight is stored as int8 plus one scale per output row.

    The forward pass dequantises the weight and runs an ordinary float matmul:
    weight-only quantization. It saves memory and bandwidth (4x smaller
    weights), not arithmetic; the int8 matmuls of ``quantize_dynamic`` save that too.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"Int8Linear wraps an nn.Linear, got {type(linear).__name__}")
        q, scale = quantize_int8(linear.weight)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("qweight", q)
        self.register_buffer("scale", scale.float())
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, dequantize_int8(self.qweight, self.scale, x.dtype), self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per-row"


def quantize_model_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (on the CPU) with every block's ``nn.Linear`` replaced by an ``Int8Linear``."""
    model = copy.deepcopy(model).cpu().eval()
    for name, layer in prunable_linears(model):
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, Int8Linear(layer))
    return model


def library_quantize_int8(model: nn.Module, verbose: bool = True) -> nn.Module:
    """PyTorch's dynamic int8 quantization of the same layers, per output row (a copy, on the CPU).

    ``torch.ao.quantization.quantize_dynamic`` with ``per_channel_dynamic_qconfig``:
    symmetric int8 weights with one scale per output row, like ``quantize_int8``
    (its scale is ``max|w_row| / 127.5``, as it maps the range onto -128..127),
    and activations quantized to uint8 at run time, batch by batch, so that the
    matmul itself runs in integers. torch warns that ``torch.ao.quantization`` is
    deprecated in favour of the separate ``torchao`` package ("will be removed in
    2.10", it says; 2.13 still has it, and ``torchao`` is not a course dependency).
    With ``verbose`` the warnings' first lines are printed rather than dropped.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    model = copy.deepcopy(model).cpu().eval()
    spec = {name: per_channel_dynamic_qconfig for name, _ in prunable_linears(model)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quantized = quantize_dynamic(model, spec, dtype=torch.qint8)
    deprecations = sorted({str(w.message).strip().splitlines()[0] for w in caught
                           if issubclass(w.category, (DeprecationWarning, FutureWarning, UserWarning))
                           and "deprecated" in str(w.message)})
    if verbose:
        for line in deprecations:
            print(f"torch says: {line}")
    return quantized


# ---------------------------------------------------------------------------
# Distillation


def _check_logits(name: str, logits, rows: int | None = None) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, V), got {type(logits).__name__}")
    if logits.ndim != 2 or not logits.is_floating_point():
        raise ValueError(f"{name} must be floating-point logits of shape (N, V), got shape "
                         f"{tuple(logits.shape)} and dtype {logits.dtype}")
    return logits


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                      temperature: float, alpha: float) -> torch.Tensor:
    """Hinton et al. (2015): ``alpha T^2 KL(p_teacher^T || p_student^T) + (1 - alpha) CE(student, targets)``.

    ``p^T = softmax(logits / T)`` on both sides; the KL divergence is summed over
    the vocabulary and averaged over the N rows; the hard loss is the ordinary
    cross-entropy at T = 1. The T^2 keeps the soft term's gradients the same size
    whatever T is: softening by T shrinks them by 1/T^2.
    """
    _check_logits("student_logits", student_logits)
    _check_logits("teacher_logits", teacher_logits)
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(f"teacher_logits {tuple(teacher_logits.shape)} and student_logits "
                         f"{tuple(student_logits.shape)} must have the same shape (N, V)")
    if not isinstance(targets, torch.Tensor) or targets.shape != student_logits.shape[:1] \
            or targets.is_floating_point():
        raise ValueError(f"targets must be integer class ids of shape ({student_logits.shape[0]},), got "
                         f"{tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__}")
    T = number("temperature", temperature, low=0.0, low_open=True)
    alpha = number("alpha", alpha, low=0.0, high=1.0)
    log_p_student = F.log_softmax(student_logits / T, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.to(student_logits.dtype) / T, dim=-1)
    # KL(t || s) = sum_v p_t (log p_t - log p_s); kl_div takes the student's log-probabilities first.
    soft = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    hard = F.cross_entropy(student_logits, targets)
    return alpha * T * T * soft + (1 - alpha) * hard


def distill(teacher: nn.Module, student: nn.Module, get_batch, config, *, temperature: float = 2.0,
            alpha: float = 0.5, device: torch.device | str | None = None):
    """Train ``student`` on ``distillation_loss`` against ``teacher``, with the course's one loop.

    ``get_batch`` and ``config`` are those of ``lmcourse.train.train``; the
    teacher is frozen (eval mode, no gradients) and moved to the student's
    device. Returns the ``History``; its losses are distillation losses.
    """
    from lmcourse import runtime
    from lmcourse.train import TrainConfig, train

    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a lmcourse.train.TrainConfig, got {type(config).__name__}")
    for name, m in (("teacher", teacher), ("student", student)):
        if not isinstance(m, nn.Module):
            raise TypeError(f"{name} must be a torch.nn.Module, got {type(m).__name__}")
    number("temperature", temperature, low=0.0, low_open=True)
    number("alpha", alpha, low=0.0, high=1.0)
    dev = torch.device(device) if device is not None else runtime.device()
    teacher = teacher.to(dev).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    def loss_fn(model, batch):
        x, y = batch
        with torch.no_grad():
            t_logits = teacher(x)[0]
        s_logits = model(x)[0]
        if t_logits.shape != s_logits.shape:
            raise ValueError(f"teacher logits {tuple(t_logits.shape)} and student logits "
                             f"{tuple(s_logits.shape)} differ: the two must share the vocabulary")
        V = s_logits.size(-1)
        return distillation_loss(s_logits.reshape(-1, V), t_logits.reshape(-1, V).float(), y.reshape(-1),
                                 temperature, alpha)

    return train(student, get_batch, config, loss_fn=loss_fn, device=dev)


# ---------------------------------------------------------------------------
# Measuring: size, latency, perplexity


def _tensor_bytes(t: torch.Tensor) -> int:
    if t.is_quantized:  # int8 values plus the scales and zero points that go with them
        extra = 0
        if t.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            extra = t.q_per_channel_scales().numel() * 8 + t.q_per_channel_zero_points().numel() * 8
        else:
            extra = 16
        return t.numel() * t.element_size() + extra
    return t.numel() * t.element_size()


def _tensors(value) -> Iterable[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _tensors(v)


def model_size_bytes(model: nn.Module) -> int:
    """Bytes of the tensors in ``model.state_dict()``: what its saved weights take, without file overhead.

    A tensor shared by two names (a tied embedding and head) is counted once;
    an int8 tensor counts one byte an entry plus its scales. Zeros count like
    any number: a pruned model stored densely is no smaller.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    seen, total = set(), 0
    for value in model.state_dict().values():
        for t in _tensors(value):
            key = (t.data_ptr(), t.numel(), t.dtype) if not t.is_quantized else id(t)
            if key not in seen:
                seen.add(key)
                total += _tensor_bytes(t)
    return total


def saved_size_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: the file, names and format included."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


@torch.no_grad()
def cpu_latency(models: dict[str, nn.Module], idx: torch.Tensor, rounds: int = 5,
                repeats: int = 5) -> dict[str, float]:
    """Seconds of one forward pass on ``idx`` for each model, on the CPU: the fastest call.

    Each round times every model ``repeats`` times, model after model, so that
    a shared machine's load falls on all of them alike. The result is each
    model's fastest call over all rounds: other programs only ever add time to
    a call, so the minimum is the best estimate of the model's own cost (the
    rationale of Python's ``timeit``). One warm-up call first.
    """
    rounds, repeats = positive_int("rounds", rounds), positive_int("repeats", repeats)
    if not isinstance(models, dict) or not models:
        raise TypeError("models must be a non-empty dict {name: model}")
    idx = idx.cpu()
    for m in models.values():
        m.eval()(idx)  # warm-up: allocation, kernel choice, packed weights
    best = {name: math.inf for name in models}
    for _ in range(rounds):
        for name, m in models.items():
            for _ in range(repeats):
                start = time.perf_counter()
                m(idx)
                best[name] = min(best[name], time.perf_counter() - start)
    return best


@torch.no_grad()
def perplexity(model: nn.Module, ids: torch.Tensor, block_size: int) -> float:
    """exp(mean next-token cross-entropy) of ``model`` on every token of ``ids`` but the first.

    Scored with ``lmcourse.scoreboard.token_nll`` (overlapping windows, each
    token scored once with at least half a block of context).
    """
    from lmcourse.scoreboard import token_nll

    return math.exp(float(token_nll(model, ids, block_size).mean()))
