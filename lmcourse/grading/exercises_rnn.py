"""Checks for the recurrent-network exercises (lessons 03 and 04): the RNN,
LSTM and GRU cells written by hand, gradient clipping by global norm, and
drawing the next token with temperature and top-k.

Shapes follow the batch-first, right-multiplied convention of the exercises:
``x`` is (B, D), ``h`` is (B, H), weights are (in, out), so a layer is
``x @ W + b``. PyTorch's own modules store the transpose (``weight_ih`` is
(out, in)); the references below are tested against ``nn.LSTMCell`` and
``nn.GRUCell`` in tests/test_grading_rnn.py.

The cases use D != H wherever a transpose would otherwise go unnoticed, plus
one square case (D == H) where a transposed weight runs without error and
can only be caught by its values.
"""
from __future__ import annotations

import math

import torch

from lmcourse.generate import sample_next, sampling_probs
from lmcourse.grading.checks import Case, Exercise, Mistake, register


def _randn(gen: torch.Generator, *shape: int, scale: float = 1.0,
           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    # Draw in float64 and cast, so a case's values do not depend on its dtype.
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)


def _cell_inputs(gen: torch.Generator, batch: int, d: int, h: int, gates: int, *,
                 scale: float = 1.0, dtype: torch.dtype = torch.float32,
                 cell_state: bool = False, biases: int = 1) -> tuple:
    """x, h[, c], W_x (d, gates*h), W_h (h, gates*h), then ``biases`` bias vectors.

    Weights are scaled by 1/sqrt(fan-in), as in a real network, so the
    pre-activations are of order ``scale``.
    """
    x = _randn(gen, batch, d, dtype=dtype)
    state = [_randn(gen, batch, h, dtype=dtype)]
    if cell_state:
        state.append(_randn(gen, batch, h, scale=2.0, dtype=dtype))
    w_x = _randn(gen, d, gates * h, scale=scale / math.sqrt(d), dtype=dtype)
    w_h = _randn(gen, h, gates * h, scale=scale / math.sqrt(h), dtype=dtype)
    b = [_randn(gen, gates * h, scale=0.5 * scale, dtype=dtype) for _ in range(biases)]
    return (x, *state, w_x, w_h, *b)


_MATMUL_HINT = ("x is (B, D) and each weight is (in, out), so x @ W is already "
                "(B, out) without any transpose (PyTorch's nn modules store the "
                "transpose, (out, in), which is why their formulas have one)")

# ---------------------------------------------------------------------------
# rnn_cell(x (B, D), h (B, H), W_xh (D, H), W_hh (H, H), b_h (H,)) -> (B, H)


def _rnn_cell(x, h, W_xh, W_hh, b_h):
    return torch.tanh(x @ W_xh + h @ W_hh + b_h)


def _wrong_rnn_sigmoid(x, h, W_xh, W_hh, b_h):
    return torch.sigmoid(x @ W_xh + h @ W_hh + b_h)


def _wrong_rnn_relu(x, h, W_xh, W_hh, b_h):
    return torch.relu(x @ W_xh + h @ W_hh + b_h)


def _wrong_rnn_linear(x, h, W_xh, W_hh, b_h):
    return x @ W_xh + h @ W_hh + b_h


def _wrong_rnn_x_transposed(x, h, W_xh, W_hh, b_h):
    return torch.tanh(x @ W_xh.T + h @ W_hh + b_h)


def _wrong_rnn_h_transposed(x, h, W_xh, W_hh, b_h):
    return torch.tanh(x @ W_xh + h @ W_hh.T + b_h)


def _wrong_rnn_no_bias(x, h, W_xh, W_hh, b_h):
    return torch.tanh(x @ W_xh + h @ W_hh)


def _wrong_rnn_bias_outside(x, h, W_xh, W_hh, b_h):
    return torch.tanh(x @ W_xh + h @ W_hh) + b_h


def _wrong_rnn_no_recurrence(x, h, W_xh, W_hh, b_h):
    return torch.tanh(x @ W_xh + b_h)


def _wrong_rnn_h_not_multiplied(x, h, W_xh, W_hh, b_h):
    return torch.tanh(x @ W_xh + h + b_h)


def _cell_cases(inputs, saturates: str, grad: bool = True) -> list[Case]:
    """The shapes and values every cell exercise is checked on; ``inputs(B, D, H, **kw)``."""
    cases = [
        Case("batch 4, D=3, H=5", inputs(4, 3, 5)),
        Case("float64 (B=3, D=6, H=4)", inputs(3, 6, 4, dtype=torch.float64)),
        Case("square weights (D=H=4)", inputs(4, 4, 4)),
        Case("batch of one (1×3, H=4)", inputs(1, 3, 4)),
        Case("one hidden unit (H=1)", inputs(4, 3, 1)),
        Case(f"large pre-activations (saturated {saturates})", inputs(4, 3, 5, scale=30.0)),
    ]
    if grad:
        cases.append(Case("gradient (B=3, D=4, H=6)", inputs(3, 4, 6), grad=True))
    return cases


def _rnn_cases(gen: torch.Generator) -> list[Case]:
    def inputs(batch, d, h, **kw):
        return _cell_inputs(gen, batch, d, h, 1, **kw)
    return _cell_cases(inputs, "tanh")


def _rnn_diagnose(got, case: Case) -> str | None:
    got = got.detach().double()
    if (got.abs() > 1).any():
        return ("Some of your outputs lie outside (-1, 1), which tanh never leaves: is the "
                "tanh the very last operation?")
    return None


register(Exercise(
    id="rnn_cell",
    title="one step of a simple (Elman) RNN",
    reference=_rnn_cell,
    cases=_rnn_cases,
    mistakes=[
        Mistake("you used a sigmoid where the simple RNN uses tanh",
                "the new hidden state lies in (-1, 1), centred on 0", _wrong_rnn_sigmoid),
        Mistake("you used a ReLU where the simple RNN uses tanh",
                "the new hidden state lies in (-1, 1), centred on 0", _wrong_rnn_relu),
        Mistake("there is no nonlinearity: your cell is linear, so stacking steps is "
                "still one linear map", "squash the sum of the three terms with tanh",
                _wrong_rnn_linear),
        Mistake("you transposed W_xh: with D = H the shapes still fit, but every "
                "input unit now feeds the wrong hidden unit",
                "W_xh is (D, H), already laid out for x (B, D) times it", _wrong_rnn_x_transposed),
        Mistake("you transposed W_hh: it is square, so the shapes fit, but the "
                "recurrent connections run the wrong way round",
                "W_hh is (H, H) laid out for h (B, H) times it, like W_xh for x",
                _wrong_rnn_h_transposed),
        Mistake("the bias b_h is missing", "add b_h inside the nonlinearity",
                _wrong_rnn_no_bias),
        Mistake("you added b_h after the tanh", "the bias is part of the pre-activation: "
                "it goes inside the nonlinearity", _wrong_rnn_bias_outside),
        Mistake("the recurrent term is missing: the new state ignores the previous one, "
                "so the network has no memory",
                "the pre-activation has a term for the input and one for the previous "
                "hidden state", _wrong_rnn_no_recurrence),
        Mistake("you added h itself instead of h multiplied by the recurrent weights",
                "the previous state goes through W_hh, just as x goes through W_xh",
                _wrong_rnn_h_not_multiplied),
    ],
    diagnose=_rnn_diagnose,
    error_hints={"cannot be multiplied": _MATMUL_HINT},
    passed_message="All cases pass: tanh of both projections plus the bias, on every shape.",
))


# ---------------------------------------------------------------------------
# lstm_cell(x, h, c, W_x (D, 4H), W_h (H, 4H), b (4H,)) -> (h_next, c_next)


def _lstm_parts(x, h, W_x, W_h, b):
    """The four pre-activations in PyTorch's order: input, forget, cell, output."""
    return (x @ W_x + h @ W_h + b).chunk(4, dim=-1)


def _lstm_finish(i, f, g, o, c):
    c_next = f * c + i * g
    return o * torch.tanh(c_next), c_next


def _lstm_cell(x, h, c, W_x, W_h, b):
    i, f, g, o = _lstm_parts(x, h, W_x, W_h, b)
    return _lstm_finish(torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o), c)


def _lstm_with_order(order: str):
    """An LSTM that reads the four blocks in ``order`` (e.g. "figo") instead of "ifgo"."""
    def wrong(x, h, c, W_x, W_h, b):
        blocks = dict(zip(order, _lstm_parts(x, h, W_x, W_h, b)))
        return _lstm_finish(torch.sigmoid(blocks["i"]), torch.sigmoid(blocks["f"]),
                            torch.tanh(blocks["g"]), torch.sigmoid(blocks["o"]), c)
    return wrong


def _wrong_lstm_all_tanh(x, h, c, W_x, W_h, b):
    i, f, g, o = (torch.tanh(p) for p in _lstm_parts(x, h, W_x, W_h, b))
    return _lstm_finish(i, f, g, o, c)


def _wrong_lstm_all_sigmoid(x, h, c, W_x, W_h, b):
    i, f, g, o = (torch.sigmoid(p) for p in _lstm_parts(x, h, W_x, W_h, b))
    return _lstm_finish(i, f, g, o, c)


def _gates(x, h, W_x, W_h, b):
    i, f, g, o = _lstm_parts(x, h, W_x, W_h, b)
    return torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)


def _wrong_lstm_no_tanh_on_c(x, h, c, W_x, W_h, b):
    i, f, g, o = _gates(x, h, W_x, W_h, b)
    c_next = f * c + i * g
    return o * c_next, c_next


def _wrong_lstm_old_c(x, h, c, W_x, W_h, b):
    i, f, g, o = _gates(x, h, W_x, W_h, b)
    return o * torch.tanh(c), f * c + i * g


def _wrong_lstm_swapped_outputs(x, h, c, W_x, W_h, b):
    h_next, c_next = _lstm_cell(x, h, c, W_x, W_h, b)
    return c_next, h_next


def _wrong_lstm_no_bias(x, h, c, W_x, W_h, b):
    return _lstm_cell(x, h, c, W_x, W_h, torch.zeros_like(b))


def _wrong_lstm_no_input_gate(x, h, c, W_x, W_h, b):
    i, f, g, o = _gates(x, h, W_x, W_h, b)
    return _lstm_finish(torch.ones_like(i), f, g, o, c)


def _wrong_lstm_no_forget_gate(x, h, c, W_x, W_h, b):
    i, f, g, o = _gates(x, h, W_x, W_h, b)
    return _lstm_finish(i, torch.ones_like(f), g, o, c)


def _lstm_cases(gen: torch.Generator) -> list[Case]:
    def inputs(batch, d, h, **kw):
        return _cell_inputs(gen, batch, d, h, 4, cell_state=True, **kw)
    return _cell_cases(inputs, "gates", grad=False)


_GATE_ORDER = ("the four blocks of the (B, 4H) pre-activation are, in this order, the "
               "input gate i, the forget gate f, the candidate g and the output gate o "
               "(PyTorch's order; Keras uses the same)")

register(Exercise(
    id="lstm_cell",
    title="one step of an LSTM",
    reference=_lstm_cell,
    cases=_lstm_cases,
    mistakes=[
        Mistake("the input and forget gates are swapped", _GATE_ORDER, _lstm_with_order("figo")),
        Mistake("the candidate g and the output gate o are swapped", _GATE_ORDER,
                _lstm_with_order("ifog")),
        Mistake("the gates are in the wrong order", _GATE_ORDER, _lstm_with_order("iofg")),
        Mistake("you used tanh for every block: the gates i, f and o must lie in (0, 1), "
                "so they can only let through a fraction of what they guard",
                "sigmoid for the three gates, tanh only for the candidate g",
                _wrong_lstm_all_tanh),
        Mistake("you used a sigmoid for every block, candidate g included, so the cell "
                "can only ever add positive amounts to its memory",
                "the candidate g uses tanh, so it can push the cell state both ways",
                _wrong_lstm_all_sigmoid),
        Mistake("h_next is o * c_next: the tanh on the new cell state is missing",
                "the cell state can grow beyond ±1; squash it before the output gate",
                _wrong_lstm_no_tanh_on_c),
        Mistake("h_next uses the old cell state c instead of the new one",
                "compute c_next first, then h_next from c_next", _wrong_lstm_old_c),
        Mistake("you returned (c_next, h_next): the order is swapped",
                "return the hidden state first: (h_next, c_next), as nn.LSTMCell does",
                _wrong_lstm_swapped_outputs),
        Mistake("the bias b is missing", "add b to the (B, 4H) pre-activation before "
                "splitting it into the four blocks", _wrong_lstm_no_bias),
        Mistake("the input gate is not applied: the whole candidate is written into the cell",
                "the new content is the input gate times the candidate", _wrong_lstm_no_input_gate),
        Mistake("the forget gate is not applied: the old cell state is kept in full",
                "the old cell state is scaled by the forget gate", _wrong_lstm_no_forget_gate),
    ],
    error_hints={"cannot be multiplied": _MATMUL_HINT},
    output_names=("h_next", "c_next"),
    passed_message="All cases pass: gates in the order i, f, g, o, and (h_next, c_next) "
                   "as nn.LSTMCell computes them.",
))


# ---------------------------------------------------------------------------
# gru_cell(x, h, W_x (D, 3H), W_h (H, 3H), b_x (3H,), b_h (3H,)) -> h_next


def _gru_parts(x, h, W_x, W_h, b_x, b_h):
    """The input and hidden projections, each split into r, z, n blocks."""
    return (x @ W_x + b_x).chunk(3, dim=-1), (h @ W_h + b_h).chunk(3, dim=-1)


def _gru_cell(x, h, W_x, W_h, b_x, b_h):
    (x_r, x_z, x_n), (h_r, h_z, h_n) = _gru_parts(x, h, W_x, W_h, b_x, b_h)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h


def _wrong_gru_flipped(x, h, W_x, W_h, b_x, b_h):
    (x_r, x_z, x_n), (h_r, h_z, h_n) = _gru_parts(x, h, W_x, W_h, b_x, b_h)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    return z * torch.tanh(x_n + r * h_n) + (1 - z) * h


def _wrong_gru_bias_outside_reset(x, h, W_x, W_h, b_x, b_h):
    (x_r, x_z, x_n), (h_r, h_z, _) = _gru_parts(x, h, W_x, W_h, b_x, b_h)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    u_n, b_hn = (h @ W_h).chunk(3, dim=-1)[2], b_h.chunk(3)[2]
    return (1 - z) * torch.tanh(x_n + r * u_n + b_hn) + z * h


def _wrong_gru_reset_before(x, h, W_x, W_h, b_x, b_h):
    # Cho et al. (2014) and Keras's reset_after=False: r gates h before the product.
    (x_r, x_z, x_n), (h_r, h_z, _) = _gru_parts(x, h, W_x, W_h, b_x, b_h)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    u_n, b_hn = W_h.chunk(3, dim=-1)[2], b_h.chunk(3)[2]
    return (1 - z) * torch.tanh(x_n + (r * h) @ u_n + b_hn) + z * h


def _wrong_gru_swapped_rz(x, h, W_x, W_h, b_x, b_h):
    (x_z, x_r, x_n), (h_z, h_r, h_n) = _gru_parts(x, h, W_x, W_h, b_x, b_h)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    return (1 - z) * torch.tanh(x_n + r * h_n) + z * h


def _wrong_gru_no_tanh(x, h, W_x, W_h, b_x, b_h):
    (x_r, x_z, x_n), (h_r, h_z, h_n) = _gru_parts(x, h, W_x, W_h, b_x, b_h)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    return (1 - z) * (x_n + r * h_n) + z * h


def _wrong_gru_no_reset(x, h, W_x, W_h, b_x, b_h):
    (_, x_z, x_n), (_, h_z, h_n) = _gru_parts(x, h, W_x, W_h, b_x, b_h)
    z = torch.sigmoid(x_z + h_z)
    return (1 - z) * torch.tanh(x_n + h_n) + z * h


def _wrong_gru_no_hidden_bias(x, h, W_x, W_h, b_x, b_h):
    return _gru_cell(x, h, W_x, W_h, b_x, torch.zeros_like(b_h))


def _gru_cases(gen: torch.Generator) -> list[Case]:
    def inputs(batch, d, h, **kw):
        return _cell_inputs(gen, batch, d, h, 3, biases=2, **kw)
    return _cell_cases(inputs, "gates")


register(Exercise(
    id="gru_cell",
    title="one step of a GRU",
    reference=_gru_cell,
    cases=_gru_cases,
    mistakes=[
        Mistake("the interpolation is flipped: you keep z of the candidate and 1 - z of "
                "the old state", "in PyTorch's convention z is the fraction of the old "
                "state h that is kept", _wrong_gru_flipped),
        Mistake("the hidden bias of the candidate, b_hn, is added outside the reset gate",
                "in PyTorch's formulation r multiplies the whole hidden projection of the "
                "candidate block, bias included", _wrong_gru_bias_outside_reset),
        Mistake("you applied the reset gate to h before multiplying by the weights (the "
                "formulation of Cho et al., 2014, Keras's reset_after=False)",
                "here r multiplies the candidate block's hidden projection, after the "
                "product with the weights", _wrong_gru_reset_before),
        Mistake("the reset and update gates are swapped",
                "the three blocks of each projection are, in this order, r, z and n",
                _wrong_gru_swapped_rz),
        Mistake("the candidate n has no tanh", "the candidate state is squashed with tanh, "
                "like the state of a simple RNN", _wrong_gru_no_tanh),
        Mistake("the reset gate is not applied", "r multiplies the hidden projection of "
                "the candidate block", _wrong_gru_no_reset),
        Mistake("the hidden bias b_h is missing", "there are two biases: b_x goes with the "
                "input projection and b_h with the hidden one", _wrong_gru_no_hidden_bias),
    ],
    error_hints={"cannot be multiplied": _MATMUL_HINT},
    passed_message="All cases pass: your GRU step matches nn.GRUCell's formulation.",
))


# ---------------------------------------------------------------------------
# clip_grad_norm(grads: list[Tensor], max_norm) -> list[Tensor]


def _global_norm(grads):
    return torch.sqrt(sum((g.double() ** 2).sum() for g in grads)) if grads else 0.0


def _scaled(grads, coef):
    return [g * float(coef) for g in grads]


def _clip_grad_norm(grads, max_norm):
    # As torch.nn.utils.clip_grad_norm_, but returning new tensors.
    total = float(_global_norm(grads))
    return _scaled(grads, min(1.0, max_norm / (total + 1e-6)))


def _wrong_clip_per_tensor(grads, max_norm):
    return [g * min(1.0, max_norm / (float(g.double().norm()) + 1e-6)) for g in grads]


def _wrong_clip_by_value(grads, max_norm):
    return [g.clamp(-max_norm, max_norm) for g in grads]


def _wrong_clip_always_rescale(grads, max_norm):
    return _scaled(grads, max_norm / (float(_global_norm(grads)) + 1e-6))


def _wrong_clip_sum_of_norms(grads, max_norm):
    total = sum(float(g.double().norm()) for g in grads)
    return _scaled(grads, min(1.0, max_norm / (total + 1e-6)))


def _wrong_clip_l1(grads, max_norm):
    total = sum(float(g.double().abs().sum()) for g in grads)
    return _scaled(grads, min(1.0, max_norm / (total + 1e-6)))


def _wrong_clip_squared_norm(grads, max_norm):
    total = float(_global_norm(grads)) ** 2
    return _scaled(grads, min(1.0, max_norm / (total + 1e-6)))


def _wrong_clip_unit_norm(grads, max_norm):
    total = float(_global_norm(grads))
    return _scaled(grads, 1.0 / total if total > max_norm else 1.0)


def _clip_cases(gen: torch.Generator) -> list[Case]:
    def grads(*shapes, scale=1.0, dtype=torch.float32):
        return [_randn(gen, *s, scale=scale, dtype=dtype) for s in shapes]
    one_large = grads((4, 3), (5,), (2, 2)) + grads((3, 6), scale=20.0)
    return [
        Case("3 tensors of different shapes, norm above max_norm",
             (grads((4, 3), (5,), (2, 3, 2), scale=2.0), 1.0)),
        Case("already within max_norm (must come back unchanged)",
             (grads((3, 2), (4,), scale=0.2), 5.0)),
        Case("float64 gradients", (grads((3, 3), (6,), scale=3.0, dtype=torch.float64), 2.0)),
        Case("a single tensor", (grads((5, 4), scale=2.0), 3.0)),
        Case("one large tensor among small ones", (one_large, 10.0)),
        Case("max_norm given as an int", (grads((4, 4), (3,), scale=2.0), 2)),
        Case("all-zero gradients", ([torch.zeros(3, 2), torch.zeros(4)], 1.0)),
        Case("an empty list", ([], 1.0)),
    ]


register(Exercise(
    id="clip_grad_norm",
    title="gradient clipping by global norm",
    reference=_clip_grad_norm,
    cases=_clip_cases,
    mistakes=[
        Mistake("you clipped each tensor by its own norm",
                "compute ONE norm over all the gradients together, as if they were "
                "concatenated into a single vector, and scale every tensor by the same "
                "factor", _wrong_clip_per_tensor),
        Mistake("you clipped each element by value (clamped to ±max_norm); that is a "
                "different method, and it changes the direction of the gradient",
                "rescale all gradients by one common factor so their global norm is at "
                "most max_norm", _wrong_clip_by_value),
        Mistake("you also rescaled gradients whose norm is already below max_norm, "
                "scaling them up", "gradients within max_norm are returned unchanged: "
                "the scaling factor is never above 1", _wrong_clip_always_rescale),
        Mistake("you added up the norms of the tensors; the global norm is not their sum",
                "the global L2 norm is the square root of the sum of the squares of "
                "every element of every tensor", _wrong_clip_sum_of_norms),
        Mistake("you used the L1 norm (a sum of absolute values)",
                "use the L2 norm: the square root of the sum of squares",
                _wrong_clip_l1),
        Mistake("you used the squared norm: the square root is missing",
                "the L2 norm is the square root of the sum of squares", _wrong_clip_squared_norm),
        Mistake("you scaled the gradients to norm 1 rather than to norm max_norm",
                "after clipping, the global norm equals max_norm", _wrong_clip_unit_norm),
    ],
    error_hints={
        "division by zero": "when every gradient is zero the global norm is 0 and "
                            "nothing needs clipping; avoid dividing by it",
        "must be a non-empty list": "an empty list of gradients has nothing to clip: "
                                    "return an empty list",
        "expected a non-empty list": "an empty list of gradients has nothing to clip: "
                                     "return an empty list",
    },
    inplace_message=(
        "your function changed the gradient tensors it was given in place. This exercise "
        "asks you to leave them untouched and return new tensors (unlike "
        "torch.nn.utils.clip_grad_norm_, whose trailing underscore marks an in-place "
        "operation). Hint: g * factor makes a new tensor; g.mul_(factor) and g *= factor "
        "change g"),
    passed_message="All cases pass: one global L2 norm, scaled down only when above max_norm.",
))


# ---------------------------------------------------------------------------
# sample_next_token(logits (V,) or (B, V), temperature, top_k, generator) -> ids (,) or (B,)
#
# The exact rule (lmcourse.generate.sample_next without top-p): temperature 0 is the
# argmax; otherwise divide the logits by the temperature, keep the top_k largest of
# each row (None keeps all), softmax, and draw once per row with
# torch.multinomial(..., generator=generator). An answer that ignores the generator
# draws from the global one, which no wrong variant can reproduce: _sample_diagnose
# recognises it (valid ids, other draws). torch.multinomial draws the same ids
# for any positive rescaling of a row and for one batched call or a loop over rows,
# so every correct form gives the same ids from the same seeded generator. The
# cases' logits are continuous random numbers: no two tie at the k-th value.


def _sample_next_token(logits, temperature, top_k, generator):
    return sample_next(logits, temperature=temperature, top_k=top_k, generator=generator)


def _draw(probs, generator):
    """One id per row of (unnormalised) probabilities, as the exercise prescribes."""
    rows = probs.reshape(-1, probs.shape[-1])
    ids = torch.multinomial(rows, num_samples=1, generator=generator).squeeze(-1)
    return ids.reshape(probs.shape[:-1])


def _keep_top(z, k, *, dim=-1, fill=float("-inf"), shift=0):
    """Keep the entries >= the (k + shift)-th largest along ``dim`` (shift=0 is right)."""
    if k is None or k >= z.shape[dim]:
        return z
    kth = z.sort(dim=dim, descending=True).values.narrow(dim, k - 1 + shift, 1)
    return z.masked_fill(z < kth, fill)


def _sampler(*, scale=lambda z, t: z / t, top=_keep_top, probs=lambda z: torch.softmax(z, -1)):
    """A sampler with one step swapped for a wrong one; the defaults are the right answer."""
    def sample(logits, temperature, top_k, generator):
        if temperature == 0:
            return logits.argmax(dim=-1)
        return _draw(probs(top(scale(logits, temperature), top_k)), generator)
    return sample


def _keep_one_too_many(z, k):
    return _keep_top(z, k, shift=1)


def _keep_one_too_few(z, k):
    kth = None if k is None or k >= z.shape[-1] else z.sort(-1, descending=True).values[..., k - 1:k]
    return z if kth is None else z.masked_fill(z <= kth, float("-inf"))


def _removed_set_to_zero(z, k):
    return _keep_top(z, k, fill=0.0)


def _top_k_over_batch(z, k):
    return _keep_top(z, k, dim=0) if z.dim() == 2 else _keep_top(z, k)


def _wrong_probs_divided_by_t(logits, temperature, top_k, generator):
    if temperature == 0:
        return logits.argmax(dim=-1)
    return _draw(torch.softmax(_keep_top(logits, top_k), -1) / temperature, generator)


def _wrong_softmax_twice(logits, temperature, top_k, generator):
    if temperature == 0:
        return logits.argmax(dim=-1)
    return _draw(torch.softmax(torch.softmax(_keep_top(logits, top_k), -1) / temperature, -1),
                 generator)


def _sample_cases(gen: torch.Generator) -> list[Case]:
    def logits(*shape, scale=2.0, dtype=torch.float32, shift=0.0):
        return (_randn(gen, *shape, scale=scale, dtype=torch.float64) + shift).to(dtype)

    def seeded(seed):
        return torch.Generator().manual_seed(seed)
    return [
        Case("one row (V,) of 12 logits, temperature 1", (logits(12), 1.0, None, seeded(1))),
        Case("batch of 64 rows, V=20, temperature 0.7", (logits(64, 20), 0.7, None, seeded(2))),
        Case("temperature 2 (flatter)", (logits(64, 20), 2.0, None, seeded(3))),
        Case("top_k=5 of V=30, temperature 1", (logits(64, 30), 1.0, 5, seeded(4))),
        Case("top_k=3 and temperature 0.5", (logits(64, 30), 0.5, 3, seeded(5))),
        Case("top_k=1 (always the most likely token)", (logits(32, 15), 1.3, 1, seeded(6))),
        Case("top_k equal to V (no token removed)", (logits(32, 10), 1.0, 10, seeded(7))),
        Case("temperature 0 (greedy) with top_k=4", (logits(16, 25), 0.0, 4, seeded(8))),
        Case("temperature 0 on one row (V,)", (logits(40), 0, None, seeded(9))),
        Case("positive logits (all > 0), temperature 0.8",
             (logits(64, 20, scale=0.5, shift=3.0), 0.8, None, seeded(10))),
        Case("float64 logits, top_k=10 of 40", (logits(48, 40, dtype=torch.float64), 1.0, 10,
                                                seeded(11))),
        Case("large logits (±1000)", (logits(32, 20, scale=400.0), 1.0, None, seeded(12))),
        Case("batch of one (1, V)", (logits(1, 16), 0.9, 6, seeded(13))),
    ]


def _sample_diagnose(got, case: Case) -> str | None:
    logits, temperature, top_k, _ = case.args
    if not isinstance(got, torch.Tensor) or got.shape != logits.shape[:-1]:
        return None
    probs = sampling_probs(logits, temperature=temperature, top_k=top_k)
    ids = got.long().reshape(-1, 1)
    if (ids < 0).any() or (ids >= logits.shape[-1]).any():
        return None
    if bool((probs.reshape(-1, probs.shape[-1]).gather(1, ids) > 0).all()):
        return ("Every id you drew is one the distribution allows, but they are not the draws "
                "the seeded generator gives. Looks like the generator was not used: pass it "
                "to torch.multinomial (the same seed must give the same tokens). If you did, "
                "check the probabilities you sample from")
    return None


_PROBS_ERROR = ("torch.multinomial needs finite, non-negative weights: sample from the "
                "softmax of the scaled logits (torch.softmax stays finite for huge logits), "
                "and treat temperature 0 before dividing by it: it means the most likely token")

register(Exercise(
    id="sample_next_token",
    title="sampling the next token: temperature and top-k",
    reference=_sample_next_token,
    cases=_sample_cases,
    mistakes=[
        Mistake("the temperature is applied to the probabilities, after the softmax: "
                "dividing probabilities by T changes nothing once they are renormalised, so "
                "every temperature samples as T = 1",
                "the temperature rescales the logits, before the softmax",
                _wrong_probs_divided_by_t),
        Mistake("the temperature is applied after a first softmax (softmax of probabilities / T)",
                "one softmax, of the logits divided by the temperature", _wrong_softmax_twice),
        Mistake("you multiplied the logits by the temperature instead of dividing: T = 2 came "
                "out sharper and T = 0.5 flatter",
                "a temperature above 1 must flatten the distribution", _sampler(
                    scale=lambda z, t: z * t)),
        Mistake("top-k kept one token too many (k + 1): the threshold is the value ranked "
                "after the k-th", "the k-th largest value itself is the smallest one kept",
                _sampler(top=_keep_one_too_many)),
        Mistake("top-k kept one token too few (k - 1): the k-th largest value was removed too",
                "keep every logit greater than or equal to the k-th largest",
                _sampler(top=_keep_one_too_few)),
        Mistake("the tokens outside the top k were set to 0 instead of -inf, so they can still "
                "be drawn", "a removed token needs probability exactly 0: set its logit to "
                "float('-inf')", _sampler(top=_removed_set_to_zero)),
        Mistake("you sampled from the raw logits: torch.multinomial treats them as weights",
                "turn the scaled logits into probabilities with a softmax first",
                _sampler(probs=lambda z: z)),
        Mistake("the softmax runs over the batch (dim 0) instead of over the vocabulary",
                "each row is one distribution over the V tokens: softmax along the last axis",
                _sampler(probs=lambda z: torch.softmax(z, 0))),
        Mistake("top-k ranks the logits down the batch (dim 0) instead of along each row",
                "each row keeps its own k largest logits: rank along the last axis",
                _sampler(top=_top_k_over_batch)),
    ],
    diagnose=_sample_diagnose,
    error_hints={
        "probability tensor contains": _PROBS_ERROR,
        "invalid multinomial distribution": _PROBS_ERROR,
        "division by zero": "temperature 0 means greedy decoding: return the most likely "
                            "token of each row without dividing by the temperature",
    },
    passed_message="All cases pass: your draws match the seeded generator's, with temperature, "
                   "top-k and greedy decoding as specified.",
))
