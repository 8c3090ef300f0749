"""Checks for the recurrent-network exercises (lessons 03 and 04): the RNN,
LSTM and GRU cells written by hand, and gradient clipping by global norm.

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
