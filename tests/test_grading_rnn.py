"""The recurrent-network checks: references agree with PyTorch's modules, every
correct form passes, the classic mistakes are named."""
import pytest
import torch

from grading_helpers import assert_fails_naming, run, text

from lmcourse.grading import get_exercise
from lmcourse.grading.exercises_rnn import _clip_grad_norm, _gru_cell, _lstm_cell


pytestmark = pytest.mark.usefixtures("home")


# ---------------------------------------------------------------------------
# The references are PyTorch's own cells, in the exercises' (in, out) layout


def test_lstm_reference_matches_nn_lstmcell():
    torch.manual_seed(0)
    cell = torch.nn.LSTMCell(3, 5).double()
    with torch.no_grad():
        cell.bias_hh.zero_()
    x, h, c = torch.randn(4, 3).double(), torch.randn(4, 5).double(), torch.randn(4, 5).double()
    want_h, want_c = cell(x, (h, c))
    got_h, got_c = _lstm_cell(x, h, c, cell.weight_ih.T, cell.weight_hh.T, cell.bias_ih)
    torch.testing.assert_close(got_h, want_h)
    torch.testing.assert_close(got_c, want_c)


def test_gru_reference_matches_nn_grucell():
    torch.manual_seed(0)
    cell = torch.nn.GRUCell(3, 5).double()
    x, h = torch.randn(4, 3).double(), torch.randn(4, 5).double()
    got = _gru_cell(x, h, cell.weight_ih.T, cell.weight_hh.T, cell.bias_ih, cell.bias_hh)
    torch.testing.assert_close(got, cell(x, h))


def test_clip_reference_matches_torch_clip_grad_norm_():
    torch.manual_seed(0)
    grads = [torch.randn(4, 3) * 3, torch.randn(7) * 3]
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    torch.nn.utils.clip_grad_norm_(params, 1.5)
    for got, p in zip(_clip_grad_norm(grads, 1.5), params):
        torch.testing.assert_close(got, p.grad)


# ---------------------------------------------------------------------------
# Every correct form passes: loops, split weights, slicing, the fused modules


def rnn_loop(x, h, W_xh, W_hh, b_h):
    rows = []
    for b in range(x.shape[0]):
        rows.append(torch.tanh(x[b] @ W_xh + h[b] @ W_hh + b_h))
    return torch.stack(rows)


def rnn_one_matmul(x, h, W_xh, W_hh, b_h):
    return torch.tanh(torch.cat([x, h], dim=1) @ torch.cat([W_xh, W_hh], dim=0) + b_h)


def rnn_addmm(x, h, W_xh, W_hh, b_h):
    return torch.tanh(torch.addmm(b_h, x, W_xh) + torch.mm(h, W_hh))


def lstm_slicing(x, h, c, W_x, W_h, b):
    H = h.shape[1]
    z = x @ W_x + h @ W_h + b
    i, f = torch.sigmoid(z[:, :H]), torch.sigmoid(z[:, H:2 * H])
    g, o = torch.tanh(z[:, 2 * H:3 * H]), torch.sigmoid(z[:, 3 * H:])
    c_next = f * c + i * g
    return [o * torch.tanh(c_next), c_next]  # a list is accepted too


def lstm_split_weights(x, h, c, W_x, W_h, b):
    def gate(k, act):
        return act(x @ W_x.chunk(4, 1)[k] + h @ W_h.chunk(4, 1)[k] + b.chunk(4)[k])
    i, f, g, o = (gate(k, a) for k, a in enumerate(
        [torch.sigmoid, torch.sigmoid, torch.tanh, torch.sigmoid]))
    c_next = torch.addcmul(f * c, i, g)
    return o * c_next.tanh(), c_next


def lstm_module(x, h, c, W_x, W_h, b):
    # functional_call runs the module with our tensors as its weights, so gradients flow.
    cell = torch.nn.LSTMCell(W_x.shape[0], h.shape[1]).to(x.dtype)
    weights = {"weight_ih": W_x.T, "weight_hh": W_h.T, "bias_ih": b,
               "bias_hh": torch.zeros_like(b)}
    return torch.func.functional_call(cell, weights, (x, (h, c)))


def gru_slicing(x, h, W_x, W_h, b_x, b_h):
    H = h.shape[1]
    gx, gh = x @ W_x + b_x, h @ W_h + b_h
    r = torch.sigmoid(gx[:, :H] + gh[:, :H])
    z = torch.sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
    n = torch.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
    return n + z * (h - n)  # the same interpolation, rearranged


def gru_module(x, h, W_x, W_h, b_x, b_h):
    cell = torch.nn.GRUCell(W_x.shape[0], h.shape[1]).to(x.dtype)
    weights = {"weight_ih": W_x.T, "weight_hh": W_h.T, "bias_ih": b_x, "bias_hh": b_h}
    return torch.func.functional_call(cell, weights, (x, h))


def clip_no_epsilon(grads, max_norm):
    total = torch.sqrt(sum((g ** 2).sum() for g in grads)) if grads else torch.tensor(0.0)
    if total <= max_norm:
        return list(grads)
    return [g * (max_norm / total) for g in grads]


def clip_concatenated(grads, max_norm):
    if not grads:
        return []
    total = torch.cat([g.flatten().double() for g in grads]).norm()
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    return [(g * coef).to(g.dtype) for g in grads]


def clip_with_torch(grads, max_norm):
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    torch.nn.utils.clip_grad_norm_(params, max_norm)
    return [p.grad for p in params]


CORRECT = [
    ("rnn_cell", rnn_loop), ("rnn_cell", rnn_one_matmul), ("rnn_cell", rnn_addmm),
    ("lstm_cell", lstm_slicing), ("lstm_cell", lstm_split_weights), ("lstm_cell", lstm_module),
    ("gru_cell", gru_slicing), ("gru_cell", gru_module),
    ("clip_grad_norm", clip_no_epsilon), ("clip_grad_norm", clip_concatenated),
    ("clip_grad_norm", clip_with_torch),
]


@pytest.mark.parametrize("exercise, answer", CORRECT, ids=[f.__name__ for _, f in CORRECT])
def test_every_correct_form_passes(exercise, answer):
    result = run(exercise, answer)
    assert result.passed, str(result)


# ---------------------------------------------------------------------------
# The classic mistakes, written as a learner would, are named


def rnn_transposed_input_weight(x, h, W_xh, W_hh, b_h):
    return torch.tanh(x @ W_xh.T + h @ W_hh + b_h)


def rnn_returns_transposed(x, h, W_xh, W_hh, b_h):
    return torch.tanh(x @ W_xh + h @ W_hh + b_h).T


def lstm_returns_h_only(x, h, c, W_x, W_h, b):
    i, f, g, o = (x @ W_x + h @ W_h + b).chunk(4, 1)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_next)


def lstm_keras_style_swap(x, h, c, W_x, W_h, b):
    f, i, g, o = (x @ W_x + h @ W_h + b).chunk(4, 1)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_next), c_next


def gru_textbook_interpolation(x, h, W_x, W_h, b_x, b_h):
    r_x, z_x, n_x = (x @ W_x + b_x).chunk(3, 1)
    r_h, z_h, n_h = (h @ W_h + b_h).chunk(3, 1)
    r, z = torch.sigmoid(r_x + r_h), torch.sigmoid(z_x + z_h)
    return z * torch.tanh(n_x + r * n_h) + (1 - z) * h


def clip_in_place(grads, max_norm):
    total = torch.sqrt(sum((g ** 2).sum() for g in grads)) if grads else 0.0
    for g in grads:
        g.mul_(min(1.0, max_norm / (float(total) + 1e-6)))
    return grads


def clip_python_division(grads, max_norm):
    total = sum(float((g ** 2).sum()) for g in grads) ** 0.5
    return [g * min(1.0, max_norm / total) for g in grads]


def clip_each_tensor(grads, max_norm):
    return [g * min(1.0, max_norm / float(g.norm())) if float(g.norm()) > 0 else g
            for g in grads]


WRONG = [
    ("rnn_cell", rnn_transposed_input_weight, "transposed w_xh"),
    ("rnn_cell", rnn_returns_transposed, "expected shape (4, 5), got shape (5, 4)"),
    ("lstm_cell", lstm_returns_h_only, "tuple of 2 tensors (h_next, c_next)"),
    ("lstm_cell", lstm_keras_style_swap, "input and forget gates are swapped"),
    ("gru_cell", gru_textbook_interpolation, "interpolation is flipped"),
    ("clip_grad_norm", clip_in_place, "clip_grad_norm_"),
    ("clip_grad_norm", clip_python_division, "norm is 0"),
    ("clip_grad_norm", clip_each_tensor, "each tensor by its own norm"),
]


@pytest.mark.parametrize("exercise, answer, keyword", WRONG,
                         ids=[f.__name__ for _, f, _ in WRONG])
def test_classic_mistakes_are_named(exercise, answer, keyword):
    assert_fails_naming(exercise, answer, keyword)


def test_a_transpose_with_d_not_h_names_the_shapes():
    result = run("rnn_cell", rnn_transposed_input_weight)
    # The D != H cases raise; the feedback quotes PyTorch's shapes and explains them.
    assert "cannot be multiplied" in text(result) and "(d, h)" in text(result)
    assert result.score == 0


def test_the_clip_exercise_says_which_norm_it_clips_to():
    # A reference that scales to norm 1 passes only where max_norm is 1.
    ex = get_exercise("clip_grad_norm")
    assert {c.args[1] for c in ex.build_cases()} >= {1.0, 2, 5.0, 10.0}


# ---------------------------------------------------------------------------
# sample_next_token: every correct form draws the same tokens from the same seed


def sample_topk_threshold(logits, temperature, top_k, generator):
    if temperature == 0:
        return logits.argmax(-1)
    z = logits / temperature
    if top_k is not None:
        kth = torch.topk(z, min(top_k, z.shape[-1]), dim=-1).values[..., -1:]
        z = z.masked_fill(z < kth, float("-inf"))
    probs = torch.softmax(z, dim=-1)
    if probs.dim() == 1:
        return torch.multinomial(probs, 1, generator=generator)[0]
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def sample_row_by_row_unnormalised(logits, temperature, top_k, generator):
    # exp() without normalising, masking the probabilities, one multinomial call per row
    rows = logits.reshape(-1, logits.shape[-1]).double()
    out = []
    for row in rows:
        if temperature == 0:
            out.append(row.argmax())
            continue
        weights = torch.exp((row - row.max()) / temperature)
        if top_k is not None and top_k < len(row):
            order = row.argsort(descending=True)
            weights[order[top_k:]] = 0.0
        out.append(torch.multinomial(weights, 1, generator=generator)[0])
    return torch.stack(out).reshape(logits.shape[:-1])


def sample_with_the_package(logits, temperature, top_k, generator):
    from lmcourse.generate import sample_next
    return sample_next(logits, temperature, top_k=top_k, generator=generator)


@pytest.mark.parametrize("answer", [sample_topk_threshold, sample_row_by_row_unnormalised,
                                    sample_with_the_package], ids=lambda f: f.__name__)
def test_every_correct_sampler_passes(answer):
    result = run("sample_next_token", answer)
    assert result.passed, str(result)


def test_every_call_of_a_case_gets_the_same_seeded_generator():
    # The check hands each call a copy of the case's generator: the reference drawn
    # twice gives the same tokens, and the case's own generator is not consumed.
    ex = get_exercise("sample_next_token")
    case = ex.build_cases()[1]
    gen = case.args[-1]
    before = gen.get_state()
    from lmcourse.grading.checks import _clone_inputs
    first = ex.reference(*_clone_inputs(case.args))
    second = ex.reference(*_clone_inputs(case.args))
    assert torch.equal(first, second) and torch.equal(gen.get_state(), before)
    assert len(set(first.tolist())) > 1  # the draws are random, not all the argmax


def sample_temperature_on_probs(logits, temperature, top_k, generator):
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits, -1) / temperature
    if top_k is not None:
        kth = torch.topk(probs, top_k, dim=-1).values[..., -1:]
        probs = torch.where(probs < kth, torch.zeros_like(probs), probs)
    return torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1,
                             generator=generator).reshape(logits.shape[:-1])


def sample_times_temperature(logits, temperature, top_k, generator):
    return sample_topk_threshold(logits * temperature * temperature, temperature, top_k, generator)


def sample_k_plus_one(logits, temperature, top_k, generator):
    if temperature == 0:
        return logits.argmax(-1)
    z = logits / temperature
    if top_k is not None and top_k < z.shape[-1]:
        kth = z.sort(-1, descending=True).values[..., top_k:top_k + 1]  # off by one
        z = z.masked_fill(z < kth, float("-inf"))
    return torch.multinomial(torch.softmax(z, -1).reshape(-1, z.shape[-1]), 1,
                             generator=generator).reshape(logits.shape[:-1])


def sample_k_minus_one(logits, temperature, top_k, generator):
    if temperature == 0:
        return logits.argmax(-1)
    z = logits / temperature
    if top_k is not None and top_k < z.shape[-1]:
        kth = torch.topk(z, top_k, dim=-1).values[..., -1:]
        z = z.masked_fill(z <= kth, float("-inf"))  # drops the k-th too
    return torch.multinomial(torch.softmax(z, -1).reshape(-1, z.shape[-1]), 1,
                             generator=generator).reshape(logits.shape[:-1])


def sample_raw_logits(logits, temperature, top_k, generator):
    if temperature == 0:
        return logits.argmax(-1)
    z = logits / temperature
    return torch.multinomial(z.reshape(-1, z.shape[-1]), 1,
                             generator=generator).reshape(logits.shape[:-1])


def sample_divides_by_zero(logits, temperature, top_k, generator):
    z = logits * (1 / temperature)
    return torch.multinomial(torch.softmax(z, -1).reshape(-1, z.shape[-1]), 1,
                             generator=generator).reshape(logits.shape[:-1])


def sample_softmax_over_batch(logits, temperature, top_k, generator):
    if temperature == 0:
        return logits.argmax(-1)
    z = logits / temperature
    if top_k is not None:
        kth = torch.topk(z, min(top_k, z.shape[-1]), dim=-1).values[..., -1:]
        z = z.masked_fill(z < kth, float("-inf"))
    probs = torch.softmax(z, dim=0)
    return torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1,
                             generator=generator).reshape(logits.shape[:-1])


def sample_ignores_generator(logits, temperature, top_k, generator):
    return sample_topk_threshold(logits, temperature, top_k, None)


SAMPLING_MISTAKES = [
    (sample_temperature_on_probs, "after the softmax"),
    (sample_times_temperature, "multiplied the logits by the temperature"),
    (sample_k_plus_one, "one token too many"),
    (sample_k_minus_one, "one token too few"),
    (sample_raw_logits, "raw logits"),
    (sample_divides_by_zero, "temperature 0 means greedy decoding"),
    (sample_softmax_over_batch, "over the batch (dim 0)"),
    (sample_ignores_generator, "generator was not used"),
]


@pytest.mark.parametrize("answer, keyword", SAMPLING_MISTAKES,
                         ids=[f.__name__ for f, _ in SAMPLING_MISTAKES])
def test_classic_sampling_mistakes_are_named(answer, keyword):
    assert_fails_naming("sample_next_token", answer, keyword)
