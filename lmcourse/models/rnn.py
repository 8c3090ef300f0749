"""Recurrent language models: a plain RNN, an LSTM or a GRU over token embeddings.

The whole model is four layers:

    idx (B, T) --embedding--> (B, T, n_embd) --rnn--> (B, T, hidden) --head--> logits (B, T, V)

The recurrent layer is PyTorch's fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``:
one call runs the whole sequence through every layer, with cuDNN's kernels on
a GPU, instead of a Python loop over time steps (lesson 04 measures the
difference). It also returns its last hidden state, so generation can carry
that state forward and feed one new token per step instead of re-reading the
whole prefix: the cost of a token is constant, not proportional to the length
of the text so far.

Dropout goes on the non-recurrent connections only, as Zaremba, Sutskever &
Vinyals (2014) found works for RNNs: on the embeddings, between stacked layers
(inside the fused layer) and before the output head. Dropping the recurrent
connections themselves would erase memory at every step.

Initialisation, the same recipe as Keras' defaults (so lesson 04's ported
models start from the same kind of weights):

* input-to-hidden matrices: Glorot/Xavier uniform (Glorot & Bengio, 2010);
* hidden-to-hidden matrices: orthogonal, one block per gate (Saxe, McClelland
  & Ganguli, 2014). An orthogonal matrix keeps the norm of the vector it
  multiplies, so at the start a signal carried through time neither explodes
  nor vanishes because of the weights alone;
* biases zero, except the LSTM's forget gate, set to 1 (Gers, Schmidhuber &
  Cummins, 2000; Jozefowicz, Zaremba & Sutskever, 2015): the gate starts
  mostly open, so the cell remembers by default and gradients flow through
  time from the first step. PyTorch keeps two bias vectors, ``b_ih`` and
  ``b_hh``, and only their sum matters; we put the 1 in ``b_ih`` and leave
  ``b_hh`` at zero, which is also how a Keras LSTM's single bias maps onto them.
* embedding and head: PyTorch's defaults (N(0, 1) and uniform +-1/sqrt(fan_in)).
"""
from __future__ import annotations

import torch
from torch import nn

from lmcourse.models.inputs import check_token_ids
from lmcourse.validate import positive_int

__all__ = ["RecurrentLM", "CELLS"]

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
# How many gate blocks the fused layers stack in their weight matrices, in PyTorch's
# order: LSTM (input, forget, cell, output), GRU (reset, update, new), RNN (one).
_GATES = {"rnn": 1, "lstm": 4, "gru": 3}

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class RecurrentLM(nn.Module):
    """A character- or word-level language model built on a fused RNN, LSTM or GRU layer.

    ``model(idx)`` returns ``(logits, state)``: logits of shape ``(B, T, vocab_size)``
    for every position of ``idx`` ``(B, T)``, and the recurrent state after the last
    position (a tensor ``h`` of shape ``(n_layer, B, hidden_size)`` for ``"rnn"`` and
    ``"gru"``, a pair ``(h, c)`` for ``"lstm"``). Pass that state back in to continue
    the same sequences: ``model(next_idx, state)``.

    The attribute names are part of the interface (the Keras porting code reads them):
    ``embedding``, ``rnn``, ``drop``, ``head``.
    """

    def __init__(self, vocab_size: int, n_embd: int, hidden_size: int, n_layer: int = 1,
                 cell: str = "lstm", dropout: float = 0.0):
        super().__init__()
        vocab_size, n_embd, hidden_size, n_layer = (
            positive_int(name, value) for name, value in (
                ("vocab_size", vocab_size), ("n_embd", n_embd), ("hidden_size", hidden_size),
                ("n_layer", n_layer)))
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}: choose one of {', '.join(map(repr, CELLS))}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.vocab_size, self.cell = vocab_size, cell
        self.embedding = nn.Embedding(vocab_size, n_embd)
        # The fused layer's own dropout acts between stacked layers only (it warns if
        # asked for with one layer); self.drop covers its input and output.
        self.rnn = CELLS[cell](n_embd, hidden_size, num_layers=n_layer, bias=True, batch_first=True,
                               dropout=float(dropout) if n_layer > 1 else 0.0)
        self.drop = nn.Dropout(float(dropout))
        self.head = nn.Linear(hidden_size, vocab_size)
        self.reset_recurrent_parameters()

    @torch.no_grad()
    def reset_recurrent_parameters(self) -> None:
        """Glorot input weights, orthogonal recurrent blocks, zero biases, LSTM forget bias 1."""
        H, gates = self.rnn.hidden_size, _GATES[self.cell]
        for layer in range(self.rnn.num_layers):
            nn.init.xavier_uniform_(getattr(self.rnn, f"weight_ih_l{layer}"))
            w_hh = getattr(self.rnn, f"weight_hh_l{layer}")
            for g in range(gates):
                nn.init.orthogonal_(w_hh[g * H:(g + 1) * H])
            b_ih, b_hh = getattr(self.rnn, f"bias_ih_l{layer}"), getattr(self.rnn, f"bias_hh_l{layer}")
            b_ih.zero_()
            b_hh.zero_()
            if self.cell == "lstm":
                b_ih[H:2 * H] = 1.0  # the forget gate's block (order i, f, g, o)

    def forward(self, idx: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        check_token_ids(idx, self.vocab_size)
        x = self.drop(self.embedding(idx))  # (B, T, n_embd)
        out, state = self.rnn(x, state)  # (B, T, hidden), state after the last step
        return self.head(self.drop(out)), state

    def select_state(self, state: State, index: torch.Tensor) -> State:
        """The state of the batch entries ``index`` (repeats allowed), for beam search.

        The fused layers keep the batch on dim 1 of their states, even with
        ``batch_first=True``: ``h`` is ``(n_layer, B, hidden_size)``.
        """
        index = torch.as_tensor(index, dtype=torch.long)
        if isinstance(state, tuple):
            return tuple(s.index_select(1, index.to(s.device)) for s in state)
        return state.index_select(1, index.to(state.device))

    def param_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        return f"cell={self.cell!r}, params={self.param_count():,}"
