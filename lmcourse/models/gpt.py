"""A decoder-only Transformer language model (GPT) with a key-value cache for generation.

The whole model, for token ids ``idx`` of shape ``(B, T)``:

    x = token_embedding(idx) [+ position_embedding(0..T-1)]     (B, T, n_embd)
    for each of n_layer blocks:
        x = x + attention(layer_norm(x))    # tokens look at earlier tokens
        x = x + mlp(layer_norm(x))          # each position thinks on its own
    logits = head(layer_norm(x))                                  (B, T, vocab_size)

Choices, and why:

* Pre-norm blocks (the LayerNorm before each sub-layer, as in GPT-2, Radford et
  al. 2019; studied by Xiong et al. 2020): the residual stream ``x`` is never
  normalised on its way through, so gradients reach the first layers unscaled
  and training is stable without a long learning-rate warm-up.
* Causal self-attention through ``torch.nn.functional.scaled_dot_product_attention``,
  which picks a fused kernel (FlashAttention on a GPU, Dao et al. 2022) and
  never builds the ``T x T`` matrix of scores in Python.
* Positions, learned (one trained vector per position, as in GPT-2) or rotary
  (RoPE, Su et al. 2021): queries and keys are rotated by an angle proportional
  to their position, so a query-key dot product depends only on their distance.
* Weight tying (Press & Wolf, 2017): the output head reuses the token
  embedding matrix, which saves ``vocab_size * n_embd`` parameters and tends to
  help small models.
* GPT-2's initialisation: every weight drawn from N(0, 0.02), and the two
  projections that write into the residual stream in every block scaled down by
  ``1/sqrt(2 * n_layer)``, so the stream's variance does not grow with depth.

The default is the course's GPT-2-style block. Options give the block of current
open models such as Llama (Touvron et al. 2023):
``GPTConfig(norm="rmsnorm", mlp="swiglu", bias=False, n_kv_head=..., positions="rotary")``:

* RMSNorm (Zhang & Sennrich 2019): divide by the root mean square, with no mean
  subtraction and no bias; its authors found it as accurate as LayerNorm and cheaper.
* SwiGLU (Shazeer 2020): ``down(silu(gate(x)) * up(x))``, a gated MLP. Its hidden
  size is about ``8/3 * n_embd`` so that its three matrices hold as many
  parameters as GELU's two of ``4 * n_embd``.
* Grouped-query attention (Ainslie et al. 2023): ``n_kv_head`` key/value heads
  shared by groups of the ``n_head`` query heads. The KV cache shrinks by
  ``n_head / n_kv_head``; ``n_kv_head=1`` is multi-query attention (Shazeer 2019).

Generation follows the course's model contract (see ``lmcourse.generate``):
``logits, state = model(idx, state)``. Here ``state`` is a :class:`KVCache`,
the keys and values every layer has computed so far. With it, a new token
attends to the cached past instead of recomputing it: each generated token
costs one position's work, not the whole prefix's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from lmcourse.models.inputs import check_token_ids
from lmcourse.validate import number, positive_int

__all__ = ["GPTConfig", "GPT", "KVCache", "attention_maps", "Block", "CausalSelfAttention", "MLP",
           "SwiGLU", "RMSNorm", "RotaryEmbedding"]

POSITIONS = ("learned", "rotary")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu")


@dataclass
class GPTConfig:
    """The shape of a GPT. The defaults are a small character-level model."""

    vocab_size: int = 65
    block_size: int = 64  # the longest context the model handles, cache included
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True  # biases in the linear layers and LayerNorms
    positions: str = "learned"  # "learned" or "rotary"
    tie_weights: bool = True  # the output head shares the token embedding matrix
    rope_base: float = 10_000.0  # rotary only: the slowest rotation's wavelength scale (Su et al.)
    norm: str = "layernorm"  # "layernorm" (GPT-2) or "rmsnorm" (Llama)
    mlp: str = "gelu"  # "gelu": 4x wide, GELU (GPT-2); "swiglu": gated, about 8/3 x wide (Llama)
    n_kv_head: int | None = None  # key/value heads; None = n_head; fewer = grouped-query attention

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            setattr(self, name, positive_int(f"GPTConfig.{name}", getattr(self, name)))
        if self.n_kv_head is not None:  # None stays None, so that replace(config, n_head=...) follows
            self.n_kv_head = positive_int("GPTConfig.n_kv_head", self.n_kv_head)
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head "
                             f"({self.n_head}): each head gets n_embd // n_head dimensions")
        if self.n_head % self.kv_heads:
            raise ValueError(f"GPTConfig.n_head ({self.n_head}) must be divisible by n_kv_head "
                             f"({self.n_kv_head}): each key/value head serves an equal group of query heads")
        for name, allowed in (("positions", POSITIONS), ("norm", NORMS), ("mlp", MLPS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"GPTConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.positions == "rotary" and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"rotary positions rotate pairs of dimensions, so the head size "
                             f"n_embd // n_head must be even, got {self.n_embd // self.n_head}")
        self.dropout = number("GPTConfig.dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        self.rope_base = number("GPTConfig.rope_base", self.rope_base, low=1.0, low_open=True)

    @property
    def kv_heads(self) -> int:
        """The number of key/value heads: ``n_kv_head``, or ``n_head`` when that is None."""
        return self.n_head if self.n_kv_head is None else self.n_kv_head


@dataclass(frozen=True)
class KVCache:
    """Keys and values of every layer for the tokens read so far.

    ``layers[i]`` is the pair ``(k, v)`` of layer ``i``, each of shape
    ``(B, n_kv_head, length, head_size)`` (``n_kv_head = n_head`` unless the
    model uses grouped-query attention); keys are stored after the rotary
    rotation, so they never need rotating again. The cache is never changed in
    place: a forward pass returns a new one, so an old cache stays valid (beam
    search and the tests rely on that).
    """

    layers: tuple[tuple[torch.Tensor, torch.Tensor], ...]

    @property
    def length(self) -> int:
        """How many positions are cached: the position of the next token."""
        return self.layers[0][0].shape[2]

    @property
    def batch_size(self) -> int:
        return self.layers[0][0].shape[0]


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE, Su et al. 2021).

    The head's dimensions are paired, ``(x[i], x[i + d/2])``, and the pair at
    position ``m`` is rotated by the angle ``m * theta_i``, with
    ``theta_i = base ** (-2i / d)``: fast rotations for the first pairs, slow
    ones for the last. Rotating both the query at position ``m`` and the key at
    position ``n`` makes their dot product a function of ``m - n`` only, so
    attention sees relative positions and nothing is added to the embeddings.
    """

    def __init__(self, head_size: int, block_size: int, base: float):
        super().__init__()
        inv_freq = base ** (-torch.arange(0, head_size, 2, dtype=torch.float32) / head_size)
        angles = torch.outer(torch.arange(block_size, dtype=torch.float32), inv_freq)  # (T, d/2)
        angles = torch.cat([angles, angles], dim=-1)  # (T, d): both halves of a pair share an angle
        # The rotation of a pair (x1, x2) is (x1 cos - x2 sin, x2 cos + x1 sin), that is
        # x * cos + swap_halves(x) * (-sin, +sin): storing sin with its signs saves a negation.
        signed_sin = torch.cat([-angles[:, : head_size // 2], angles[:, head_size // 2:]], dim=-1).sin()
        # Not saved in checkpoints: they follow from the config.
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("signed_sin", signed_sin, persistent=False)

    def forward(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """Rotate ``x`` (..., T, head_size), whose first position is ``start``."""
        T, half = x.shape[-2], x.shape[-1] // 2
        cos = self.cos[start:start + T].to(x.dtype)
        sin = self.signed_sin[start:start + T].to(x.dtype)
        return torch.addcmul(x * cos, x.roll(half, dims=-1), sin)  # x cos + (x2, x1) (-sin, sin)


class RMSNorm(nn.Module):
    """Root-mean-square normalisation (Zhang & Sennrich 2019): ``x / rms(x) * weight``.

    LayerNorm without the mean subtraction and the bias. (``torch.nn.RMSNorm``
    does the same from torch 2.4 on; the course allows 2.3.)
    """

    def __init__(self, size: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def norm_layer(config: GPTConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return RMSNorm(config.n_embd)
    return nn.LayerNorm(config.n_embd, bias=config.bias)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which each position sees itself and the past only.

    With ``n_kv_head < n_head`` (grouped-query attention) the projection makes
    ``n_head`` queries but only ``n_kv_head`` keys and values; each key/value head
    is shared by ``n_head // n_kv_head`` consecutive query heads.
    """

    def __init__(self, config: GPTConfig, rotary: RotaryEmbedding | None):
        super().__init__()
        self.n_head, self.head_size = config.n_head, config.n_embd // config.n_head
        self.n_kv_head = config.kv_heads
        kv_size = self.n_kv_head * self.head_size
        # One matmul for q, k, v: the columns are [queries (C) | keys (kv_size) | values (kv_size)].
        self.qkv = nn.Linear(config.n_embd, config.n_embd + 2 * kv_size, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.proj.is_residual_projection = True  # scaled at init, see GPT._init_weights
        self.dropout = float(config.dropout)
        self.resid_drop = nn.Dropout(self.dropout)
        self.rotary = rotary  # shared by all layers; None for learned positions

    def heads(self, x: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries (B, n_head, T, head_size), keys and values (B, n_kv_head, T, head_size) of ``x``
        (B, T, C) at positions start ..."""
        B, T, C = x.shape
        if self.n_kv_head == self.n_head:
            # (B, T, 3C) -> (3, B, n_head, T, head_size): q, k, v, with the heads as a batch dimension
            qkv = self.qkv(x).view(B, T, 3, self.n_head, self.head_size).permute(2, 0, 3, 1, 4)
            if self.rotary is None:
                return qkv.unbind(0)
            q, k = self.rotary(qkv[:2], start).unbind(0)  # queries and keys in one go, at start .. start+T-1
            return q, k, qkv[2]
        kv_size = self.n_kv_head * self.head_size
        q, k, v = self.qkv(x).split([C, kv_size, kv_size], dim=-1)
        q = q.view(B, T, self.n_head, self.head_size).transpose(1, 2)
        k, v = (t.view(B, T, self.n_kv_head, self.head_size).transpose(1, 2) for t in (k, v))
        if self.rotary is not None:
            q, k = self.rotary(q, start), self.rotary(k, start)
        return q, k, v

    def expand_kv(self, t: torch.Tensor) -> torch.Tensor:
        """Keys or values (B, n_kv_head, T, hs) repeated to (B, n_head, T, hs): query head h uses kv head
        h // group."""
        group = self.n_head // self.n_kv_head
        return t if group == 1 else t.repeat_interleave(group, dim=1)

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        B, T, C = x.shape
        P = 0 if past is None else past[0].shape[2]  # positions already cached
        q, k, v = self.heads(x, P)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        dropout_p = self.dropout if self.training else 0.0
        k_all, v_all = self.expand_kv(k), self.expand_kv(v)  # the cache keeps the n_kv_head version
        if P == 0:
            y = F.scaled_dot_product_attention(q, k_all, v_all, dropout_p=dropout_p, is_causal=True)
        elif T == 1:
            # One new token is the last position: everything cached is its past, no mask needed.
            y = F.scaled_dot_product_attention(q, k_all, v_all, dropout_p=dropout_p)
        else:
            # A chunk after a cache: query i (position P+i) sees keys 0 .. P+i. is_causal=True
            # would align the triangle to the top-left corner and hide the cache, so build it.
            mask = torch.ones(T, P + T, dtype=torch.bool, device=x.device).tril(diagonal=P)
            y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask, dropout_p=dropout_p)
        y = y.transpose(1, 2).reshape(B, T, C)  # heads side by side again
        return self.resid_drop(self.proj(y)), (k, v)


class MLP(nn.Module):
    """The position-wise feed-forward layer: widen 4x, GELU, project back."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.proj.is_residual_projection = True
        self.drop = nn.Dropout(float(config.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class SwiGLU(nn.Module):
    """The gated MLP of Llama (Shazeer 2020): ``down(silu(gate(x)) * up(x))``.

    Three matrices instead of two, so the hidden size is ``8 * ceil(n_embd / 3)``
    (about 8/3 of the width, rounded up to a multiple of 8) to hold about as many
    parameters as GELU's ``4 * n_embd``.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        hidden = 8 * math.ceil(config.n_embd / 3)
        self.gate = nn.Linear(config.n_embd, hidden, bias=config.bias)
        self.up = nn.Linear(config.n_embd, hidden, bias=config.bias)
        self.proj = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.proj.is_residual_projection = True
        self.drop = nn.Dropout(float(config.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.silu(self.gate(x)) * self.up(x)))


class Block(nn.Module):
    """One pre-norm Transformer block: communicate (attention), then compute (MLP)."""

    def __init__(self, config: GPTConfig, rotary: RotaryEmbedding | None):
        super().__init__()
        self.ln_1 = norm_layer(config)
        self.attn = CausalSelfAttention(config, rotary)
        self.ln_2 = norm_layer(config)
        self.mlp = SwiGLU(config) if config.mlp == "swiglu" else MLP(config)

    def forward(self, x: torch.Tensor, past=None):
        a, kv = self.attn(self.ln_1(x), past)
        x = x + a
        return x + self.mlp(self.ln_2(x)), kv


class GPT(nn.Module):
    """A GPT language model: ``logits, state = model(idx, state)``.

    ``idx`` is a LongTensor ``(B, T)`` of token ids; ``logits`` is
    ``(B, T, vocab_size)``, the scores of the token after each position.
    ``state`` is ``None`` for a fresh text, or the :class:`KVCache` a previous
    call returned, to continue the same texts: the new tokens then sit at
    positions ``state.length`` onwards. The cache plus the new tokens must fit in
    ``config.block_size``.

    Attribute names: ``tok_emb``, ``pos_emb`` (learned positions only),
    ``rotary`` (rotary only), ``drop``, ``blocks``, ``ln_f``, ``head``.

    ``model.checkpoint_activations = True`` turns on activation checkpointing
    (Chen et al. 2016) for training passes without a cache: each block keeps
    only its input and recomputes its insides during the backward pass, about
    one more forward pass of compute for much less activation memory. It is a
    switch on the model, not a field of ``GPTConfig``, because it changes how a
    step is computed, not the model: the same weights train with it on or off.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT takes a GPTConfig, got {type(config).__name__}")
        self.config = config
        head_size = config.n_embd // config.n_head
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        if config.positions == "learned":
            self.pos_emb, self.rotary = nn.Embedding(config.block_size, config.n_embd), None
        else:
            self.pos_emb = None
            self.rotary = RotaryEmbedding(head_size, config.block_size, config.rope_base)
        self.drop = nn.Dropout(float(config.dropout))
        self.blocks = nn.ModuleList(Block(config, self.rotary) for _ in range(config.n_layer))
        self.ln_f = norm_layer(config)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.head.weight = self.tok_emb.weight  # one matrix: embedding in, scores out
        self.apply(self._init_weights)
        self.checkpoint_activations = False

    def _init_weights(self, module: nn.Module) -> None:
        """GPT-2's recipe: N(0, 0.02), residual projections N(0, 0.02 / sqrt(2 n_layer)), zero biases.

        Each block adds two outputs to the residual stream; with 2 * n_layer such
        additions of independent terms the stream's variance grows with their
        count, so each is scaled down to keep the sum's size independent of depth.
        """
        if isinstance(module, nn.Linear):
            std = 0.02
            if getattr(module, "is_residual_projection", False):
                std /= math.sqrt(2 * self.config.n_layer)
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        # LayerNorms and RMSNorms keep their default: gain 1, bias 0.
        # The tied head is a Linear that shares the embedding's matrix; apply() visits the
        # head after tok_emb, so the shared matrix ends up N(0, 0.02) either way.

    def forward(self, idx: torch.Tensor, state: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        check_token_ids(idx, self.config.vocab_size)
        B, T = idx.shape
        start = self._check_state(state, B, T)
        x = self.tok_emb(idx)
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(start, start + T, device=idx.device))
        x = self.drop(x)
        cache = []
        recompute = self.checkpoint_activations and self.training and state is None and torch.is_grad_enabled()
        for i, block in enumerate(self.blocks):
            if recompute:  # non-reentrant: works with autograd hooks, and replays dropout's RNG
                x, kv = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            else:
                x, kv = block(x, None if state is None else state.layers[i])
            cache.append(kv)
        return self.head(self.ln_f(x)), KVCache(tuple(cache))

    def select_state(self, state: KVCache, index: torch.Tensor) -> KVCache:
        """The cache of the batch entries ``index`` (repeats allowed), for beam search."""
        if not isinstance(state, KVCache):
            raise TypeError(f"state must be the KVCache a forward pass returned, got {type(state).__name__}")
        index = torch.as_tensor(index, dtype=torch.long)
        return KVCache(tuple((k.index_select(0, index.to(k.device)), v.index_select(0, index.to(v.device)))
                             for k, v in state.layers))

    def param_count(self, non_embedding: bool = True) -> int:
        """The number of parameters (a tied matrix counted once).

        With ``non_embedding=True`` the lookup tables are left out, nanoGPT's
        convention: the position embedding, and the token embedding unless it is
        tied to the head (then it is the output layer's matrix too, and counted).
        """
        total = sum(p.numel() for p in self.parameters())  # parameters() yields a shared one once
        if non_embedding:
            if self.pos_emb is not None:
                total -= self.pos_emb.weight.numel()
            if not self.config.tie_weights:
                total -= self.tok_emb.weight.numel()
        return total

    def _check_state(self, state, batch_size: int, new_tokens: int) -> int:
        """Check the cache against the new tokens; return the position of the first new token."""
        if state is None:
            start = 0
        elif not isinstance(state, KVCache):
            raise TypeError(f"state must be None or the KVCache a forward pass returned, "
                            f"got {type(state).__name__}")
        elif len(state.layers) != self.config.n_layer or state.batch_size != batch_size:
            raise ValueError(f"the cache holds {len(state.layers)} layers for a batch of {state.batch_size}; "
                             f"this model has {self.config.n_layer} layers and idx a batch of {batch_size}")
        else:
            start = state.length
        if start + new_tokens > self.config.block_size:
            raise ValueError(
                f"{start} cached + {new_tokens} new tokens = {start + new_tokens} positions, more than "
                f"block_size={self.config.block_size}: learned positions (and the precomputed rotary "
                f"angles) exist for positions 0 .. block_size-1 only. Crop the input to its last "
                f"{self.config.block_size} tokens, or generate at most block_size - prompt length tokens "
                "(the course's generate() works within the block)")
        return start

    def extra_repr(self) -> str:
        c = self.config
        block = "" if (c.norm, c.mlp, c.kv_heads) == ("layernorm", "gelu", c.n_head) else (
            f"norm={c.norm!r}, mlp={c.mlp!r}, n_kv_head={c.kv_heads}, ")
        return (f"positions={c.positions!r}, {block}tied={c.tie_weights}, "
                f"params={self.param_count(non_embedding=False):,}")


@torch.no_grad()
def attention_maps(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """Every head's attention weights on ``idx`` (B, T): a tensor (n_layer, B, n_head, T, T).

    Entry ``[l, b, h, i, j]`` is how much position ``i`` attends to position
    ``j`` in head ``h`` of layer ``l``: a row sums to 1 and is 0 right of the
    diagonal (the causal mask). The fused attention kernel never materialises
    these weights, so they are recomputed here from the queries and keys each
    layer saw in an ordinary forward pass: softmax(q k^T / sqrt(head_size)).
    """
    seen = []  # the normalised input of every attention layer
    hooks = [block.attn.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
             for block in model.blocks]
    was_training = model.training
    model.eval()
    try:
        model(idx)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    T = idx.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool, device=idx.device).tril()
    maps = []
    for block, x in zip(model.blocks, seen):
        q, k, _ = block.attn.heads(x, 0)
        k = block.attn.expand_kv(k)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        maps.append(scores.masked_fill(~causal, float("-inf")).softmax(dim=-1))
    return torch.stack(maps)
