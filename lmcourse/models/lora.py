"""LoRA, written out: fine-tune a frozen linear layer through a low-rank update.

Hu et al. (2021) observed that the weight change fine-tuning makes has low
"intrinsic rank", so they learn it as a product of two thin matrices:

    y = W x + b + (alpha / r) * B A x        W: (out, in) frozen, A: (r, in), B: (out, r)

A starts random and B starts at zero, so B A = 0 and training begins from
exactly the pretrained function. Only A and B train: r * (in + out)
parameters per layer instead of in * out, and the optimizer state shrinks
by the same factor. After training, ``merge()`` folds (alpha / r) * B A into
W, so the deployed model is a plain nn.Linear again: no extra latency.

    model = add_lora(encoder, ["query", "value"], r=8, alpha=16)  # freezes everything else
    trainable_parameters(model)                                   # A and B only (plus what you unfreeze)
    merge_lora(model)                                             # back to plain nn.Linear layers
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from lmcourse.validate import number, positive_int

__all__ = ["LoRALinear", "add_lora", "lora_parameters", "merge_lora", "trainable_parameters"]


class LoRALinear(nn.Module):
    """``base(x) + (alpha / r) * dropout(x) @ A.T @ B.T`` with ``base`` frozen."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        self.r = positive_int("r", r)
        self.alpha = number("alpha", alpha, low=0, low_open=True)
        self.scaling = self.alpha / self.r
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(self.r, base.in_features, device=w.device, dtype=w.dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, self.r, device=w.device, dtype=w.dtype))
        # As in the paper's code (and PEFT's default): A like a freshly initialised linear
        # layer, B = 0, so the wrapped layer starts as the pretrained one.
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """The update LoRA adds to the frozen weight: (alpha / r) B A, shape (out, in)."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:
            return self.base(x)
        # Two thin products, never the full (out, in) update: cheaper while training.
        return self.base(x) + self.scaling * (self.dropout(x) @ self.lora_A.T @ self.lora_B.T)

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """Fold B A into the base weight and return the base layer (a plain nn.Linear)."""
        if not self.merged:
            self.base.weight += self.delta_weight()
            self.merged = True
        return self.base

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha:g}, merged={self.merged}"


def add_lora(model: nn.Module, target_names, r: int, alpha: float, dropout: float = 0.0) -> nn.Module:
    """Freeze ``model`` and wrap every nn.Linear whose attribute name is in ``target_names``.

    ``target_names`` are the last parts of module names, e.g. ``["query", "value"]``
    for BERT's attention (Hu et al. adapted W_q and W_v). Returns ``model``, changed
    in place. Unfreeze anything else that should train (a new head) afterwards.
    """
    if isinstance(target_names, str):
        target_names = [target_names]
    targets = set(target_names)
    for p in model.parameters():
        p.requires_grad_(False)
    found = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if child_name in targets and isinstance(child, nn.Linear):
                setattr(module, child_name, LoRALinear(child, r, alpha, dropout))
                found.append(f"{name}.{child_name}" if name else child_name)
    if not found:
        linears = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise ValueError(f"no nn.Linear named {sorted(targets)} in the model; its linear layers are "
                         f"named {linears}")
    return model


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The A and B matrices of every LoRALinear in ``model``."""
    return [p for m in model.modules() if isinstance(m, LoRALinear) for p in (m.lora_A, m.lora_B)]


def trainable_parameters(model: nn.Module) -> int:
    """How many parameters have ``requires_grad`` (what the optimizer updates)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear in ``model`` by its merged base nn.Linear; returns ``model``."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                setattr(module, child_name, child.merge())
    return model
