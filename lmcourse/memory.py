"""Where the bytes and the FLOPs of training go: accounting for lesson 07.

Memory of training with AdamW (Rajbhandari et al. 2020, ZeRO, section 3.1).
In mixed precision every parameter costs 16 bytes before any activation:

    2  the 16-bit weights the forward and backward passes read
    2  their 16-bit gradients
    4  an fp32 master copy of the weights, which the update is applied to
       (a 16-bit weight cannot absorb an update 1000x smaller than itself)
    8  AdamW's two fp32 moments, m and v

ZeRO calls the last 12 bytes the "optimizer states" (K = 12). Data parallelism
(DDP) keeps all 16 on every device; ZeRO stage 1 shards the optimizer states
over the N devices, stage 2 the gradients too, stage 3 (FSDP) the weights too.
Tensor parallelism (Shoeybi et al. 2019) and pipeline parallelism (Huang et al.
2019) split the model itself: every device holds 1/N of every matrix, or 1/N
of the layers. Activations come on top and depend on the batch, not on N_params.

FLOPs: a matmul of (m x k) by (k x n) is m*n*k multiply-adds, 2*m*n*k FLOPs. A
forward pass costs about 2 FLOPs per parameter per token (each weight is one
multiply-add per token), the backward pass twice that (the gradient for the
input and the gradient for the weight): training is about 6*N*D FLOPs for N
parameters and D tokens (Kaplan et al. 2020). ``gpt_matmul_flops`` counts every
matmul of the course's GPT, so the rule can be checked, and the attention
matmuls it leaves out seen.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Iterable

import torch

from lmcourse.validate import positive_int

__all__ = ["BYTES", "STRATEGIES", "training_memory", "sharded_memory", "gpt_matmul_flops",
           "saved_activation_bytes", "matmul_flops_per_second"]

BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
OPTIMIZER_STATES = {"adamw": 2, "sgd_momentum": 1, "sgd": 0}  # fp32 tensors per parameter
STRATEGIES = ("ddp", "zero1", "zero2", "zero3", "fsdp", "tp", "pp")


def _choice(name: str, value, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def training_memory(n_params: int, *, weights: str = "bf16", optimizer: str = "adamw",
                    master_copy: bool = True) -> dict[str, int]:
    """Bytes of training state for ``n_params`` parameters, by kind (activations excluded).

    ``weights`` is the dtype the model computes in ("bf16", "fp16" or "fp32");
    gradients have the same dtype. With 16-bit weights and ``master_copy`` an
    fp32 copy is kept for the update. ``optimizer``: "adamw" (two fp32
    moments), "sgd_momentum" (one), "sgd" (none). The default is mixed-precision
    AdamW: 2 + 2 + 4 + 8 = 16 bytes per parameter (Rajbhandari et al. 2020).
    Returns ``{"weights", "gradients", "master_weights", "optimizer_moments"}``;
    ``sum(...values())`` is the total.
    """
    n_params = positive_int("n_params", n_params)
    _choice("weights", weights, tuple(BYTES))
    _choice("optimizer", optimizer, tuple(OPTIMIZER_STATES))
    if not isinstance(master_copy, bool):
        raise TypeError(f"master_copy must be True or False, got {master_copy!r}")
    width = BYTES[weights]
    master = 4 if master_copy and width < 4 else 0  # fp32 weights are their own master copy
    return {"weights": width * n_params, "gradients": width * n_params,
            "master_weights": master * n_params,
            "optimizer_moments": 4 * OPTIMIZER_STATES[optimizer] * n_params}


def sharded_memory(n_params: int, n_devices: int, strategy: str, **precision) -> dict[str, float]:
    """Bytes of training state *per device* when ``n_devices`` share a model, by kind.

    ``strategy``:
      * "ddp": data parallel, everything replicated on every device;
      * "zero1": optimizer states (master weights and moments) sharded 1/N;
      * "zero2": optimizer states and gradients sharded;
      * "zero3" or "fsdp": everything sharded (weights gathered layer by layer
        when needed, which costs 1.5x DDP's communication, Rajbhandari et al.);
      * "tp": tensor parallel, every matrix split in N slices (Megatron,
        Shoeybi et al. 2019); the small norms and biases replicated are ignored;
      * "pp": pipeline parallel, the layers split into N equal stages (GPipe,
        Huang et al. 2019).
    TP and PP divide the whole state by N like ZeRO-3, but pay differently: TP
    two all-reduces of activations per layer per pass, PP an idle "bubble".
    ``precision`` is passed to :func:`training_memory`. Activations excluded.
    """
    n_devices = positive_int("n_devices", n_devices)
    _choice("strategy", strategy, STRATEGIES)
    full = training_memory(n_params, **precision)
    sharded = {"ddp": (), "zero1": ("master_weights", "optimizer_moments"),
               "zero2": ("master_weights", "optimizer_moments", "gradients")}.get(strategy, tuple(full))
    return {kind: size / n_devices if kind in sharded else float(size) for kind, size in full.items()}


def gpt_matmul_flops(config, batch_size: int, seq_len: int | None = None, *,
                     backward: bool = False) -> dict[str, int]:
    """FLOPs of every matmul in one pass of ``lmcourse.models.gpt.GPT(config)``, by part.

    For ``batch_size`` sequences of ``seq_len`` tokens (default
    ``config.block_size``). Parts: "qkv", "attn_scores" (Q K^T), "attn_values"
    (A V), "attn_proj", "mlp" (summed over all layers) and "head". The attention
    parts count the full T x T square, as the fused kernels and PyTorch's FLOP
    counter do; causal attention needs only half of it. ``backward=True`` counts
    a forward and a backward pass: each matmul's backward is two matmuls of the
    same size (gradients for both operands), so 3x the forward. Embedding
    lookups, norms, softmax and GELU are not matmuls and are left out (a few %).
    """
    batch_size = positive_int("batch_size", batch_size)
    T = config.block_size if seq_len is None else positive_int("seq_len", seq_len)
    C, L, V = config.n_embd, config.n_layer, config.vocab_size
    kv = config.kv_heads * (C // config.n_head)
    if config.mlp == "swiglu":
        mlp = 3 * 2 * C * (8 * math.ceil(C / 3))  # gate, up and down matrices
    else:
        mlp = 2 * 2 * C * 4 * C  # up to 4C and back
    per_token = {
        "qkv": L * 2 * C * (C + 2 * kv),
        "attn_scores": L * 2 * T * C,  # each query against T keys, over all heads' dimensions
        "attn_values": L * 2 * T * C,
        "attn_proj": L * 2 * C * C,
        "mlp": L * mlp,
        "head": 2 * C * V,
    }
    passes = 3 if backward else 1
    return {part: passes * flops * batch_size * T for part, flops in per_token.items()}


def saved_activation_bytes(fn: Callable[[], object], *, exclude: Iterable[torch.Tensor] = ()) -> int:
    """Run ``fn()`` and return the bytes of the tensors autograd saves for the backward pass.

    Every tensor a forward operation keeps for its gradient passes through
    ``torch.autograd.graph.saved_tensors_hooks``; this sums their storages,
    each storage once (a saved view, a transpose say, shares its base's
    memory). Tensors whose storage is one of ``exclude``'s (pass
    ``model.parameters()``) are left out: the weights are there anyway.

    Activation checkpointing (``torch.utils.checkpoint``, non-reentrant)
    installs its own hooks inside each checkpointed region, so what the region
    would have saved is not seen here, correctly; the region's inputs, which it
    keeps to recompute from, are held by the checkpoint outside autograd and
    are not counted either: add them (one tensor per region).
    """
    excluded = {t.untyped_storage().data_ptr() for t in exclude}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in excluded:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = fn()  # kept alive until we return, so no saved storage is freed and its address reused
    del out
    return sum(storages.values())


def matmul_flops_per_second(size: int = 512, *, device: torch.device | str = "cpu",
                            dtype: torch.dtype = torch.float32, seconds: float = 0.3) -> float:
    """The FLOP/s this device reaches on square ``size`` x ``size`` matmuls: a practical peak.

    The best of repeated timings over about ``seconds`` (after a warm-up), so a
    busy machine's interruptions count as little as possible. A model's FLOP/s
    divided by this is its model FLOPs utilisation (MFU, Chowdhery et al. 2022)
    against what this device actually does, not its data-sheet peak.
    """
    size = positive_int("size", size)
    dev = torch.device(device)
    a = torch.randn(size, size, device=dev, dtype=dtype)
    b = torch.randn(size, size, device=dev, dtype=dtype)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    (a @ b).sum().item()  # warm-up: kernel selection, caches
    best, deadline = math.inf, time.perf_counter() + seconds
    while time.perf_counter() < deadline or best == math.inf:
        sync()
        start = time.perf_counter()
        for _ in range(4):
            c = a @ b
        sync()
        best = min(best, (time.perf_counter() - start) / 4)
    del c
    return 2 * size ** 3 / best
