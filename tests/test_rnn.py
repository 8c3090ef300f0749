"""RecurrentLM: shapes, the interface other code relies on, its state, and that it learns."""
import math

import pytest
import torch
from torch import nn

from lmcourse.data.batching import LMBatches
from lmcourse.data.synthetic import MarkovSource
from lmcourse.generate import beam_search, generate, greedy
from lmcourse.models import RecurrentLM
from lmcourse.train import TrainConfig, train

CELLS = ["rnn", "lstm", "gru"]


def tiny(cell, vocab_size=7, seed=0, **kwargs):
    torch.manual_seed(seed)
    options = dict(n_embd=8, hidden_size=12, n_layer=2) | kwargs
    return RecurrentLM(vocab_size, cell=cell, **options)


def tokens(shape, vocab_size=7, seed=1):
    return torch.randint(vocab_size, shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("cell", CELLS)
def test_shapes_and_state(cell):
    model = tiny(cell)
    logits, state = model(tokens((3, 5)))
    assert logits.shape == (3, 5, 7)
    h = state[0] if cell == "lstm" else state
    assert isinstance(state, tuple) == (cell == "lstm")
    assert h.shape == (2, 3, 12)  # (n_layer, B, hidden): batch on dim 1


def test_attribute_interface():
    model = RecurrentLM(11, n_embd=6, hidden_size=9, n_layer=3, cell="gru", dropout=0.25)
    assert isinstance(model.embedding, nn.Embedding) and model.embedding.weight.shape == (11, 6)
    assert isinstance(model.rnn, nn.GRU)
    assert (model.rnn.input_size, model.rnn.hidden_size, model.rnn.num_layers) == (6, 9, 3)
    assert model.rnn.batch_first and model.rnn.bias and model.rnn.dropout == 0.25
    assert isinstance(model.drop, nn.Dropout) and model.drop.p == 0.25
    assert isinstance(model.head, nn.Linear) and model.head.weight.shape == (11, 9)
    assert model.param_count() == sum(p.numel() for p in model.parameters())
    assert type(RecurrentLM(5, 4, 4, cell="rnn").rnn) is nn.RNN
    assert type(RecurrentLM(5, 4, 4, cell="lstm").rnn) is nn.LSTM
    assert RecurrentLM(5, 4, 4, dropout=0.5).rnn.dropout == 0  # one layer: nothing between layers


def test_initialisation():
    model = tiny("lstm", hidden_size=5)
    H = 5
    for layer in range(2):
        b_ih = getattr(model.rnn, f"bias_ih_l{layer}")
        b_hh = getattr(model.rnn, f"bias_hh_l{layer}")
        forget = (b_ih + b_hh)[H:2 * H]  # gate order i, f, g, o
        assert torch.equal(forget, torch.ones(H))
        assert torch.count_nonzero(b_ih + b_hh) == H
        w_hh = getattr(model.rnn, f"weight_hh_l{layer}").detach()
        for g in range(4):
            block = w_hh[g * H:(g + 1) * H]
            assert torch.allclose(block @ block.T, torch.eye(H), atol=1e-5)
    gru = tiny("gru")
    assert torch.count_nonzero(gru.rnn.bias_ih_l0) == 0  # the forget bias is an LSTM thing


@pytest.mark.parametrize("cell", CELLS)
def test_carrying_the_state_equals_one_long_pass(cell):
    model = tiny(cell).eval()
    x = tokens((2, 9))
    full, _ = model(x)
    first, state = model(x[:, :4])
    rest, _ = model(x[:, 4:], state)
    assert torch.allclose(torch.cat([first, rest], dim=1), full, atol=1e-6)
    fresh, _ = model(x[:, 4:])  # without the state the model has forgotten the prefix
    assert not torch.allclose(fresh, rest, atol=1e-3)


@pytest.mark.parametrize("cell", CELLS)
def test_select_state_picks_and_repeats_batch_entries(cell):
    model = tiny(cell).eval()
    x = tokens((3, 4))
    _, state = model(x)
    index = torch.tensor([2, 0, 2])
    picked = model.select_state(state, index)
    expected = model(x[index])[1]
    pairs = zip(picked, expected) if cell == "lstm" else [(picked, expected)]
    for a, b in pairs:
        assert torch.allclose(a, b, atol=1e-6)


def test_dropout_only_in_training_mode():
    model = tiny("lstm", dropout=0.5)
    x = tokens((2, 6))
    model.train()
    assert not torch.equal(model(x)[0], model(x)[0])
    model.eval()
    assert torch.equal(model(x)[0], model(x)[0])


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(cell="transformer"), ValueError, "unknown cell 'transformer'"),
    (dict(cell="LSTM"), ValueError, "choose one of 'rnn', 'lstm', 'gru'"),
    (dict(hidden_size=0), ValueError, "hidden_size must be an integer >= 1"),
    (dict(n_layer=True), TypeError, "n_layer must be an integer >= 1, got True"),
    (dict(n_embd=4.0), TypeError, "n_embd must be an integer >= 1"),
    (dict(dropout=1.0), ValueError, "dropout must be in"),
])
def test_bad_construction(kwargs, error, message):
    options = dict(vocab_size=5, n_embd=4, hidden_size=4) | kwargs
    with pytest.raises(error, match=message):
        RecurrentLM(**options)


@pytest.mark.parametrize("idx, error, message", [
    (torch.tensor([1, 2, 3]), ValueError, r"shape \(B, T\).*idx\[None\]"),
    (torch.zeros(2, 0, dtype=torch.long), ValueError, "T >= 1"),
    (torch.ones(2, 3), TypeError, "int64"),
    (torch.ones(2, 3, dtype=torch.int32), TypeError, "int64"),
    ([[1, 2]], TypeError, "torch.LongTensor"),
    (torch.tensor([[1, 7]]), ValueError, r"in \[0, 6\].*found 7"),
    (torch.tensor([[-1, 2]]), ValueError, "found -1"),
])
def test_bad_input_gets_a_clear_error(idx, error, message):
    with pytest.raises(error, match=message):
        tiny("gru")(idx)


# -- generation with the real models ------------------------------------------------

def rerun_greedy(model, prompt, steps):
    """Greedy decoding the slow way: re-read the whole prefix for every new token."""
    seq = prompt.clone()
    with torch.no_grad():
        for _ in range(steps):
            logits, _ = model(seq)
            seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return seq


@pytest.mark.parametrize("cell", CELLS)
def test_stateful_generation_equals_rerunning_the_prefix(cell):
    model = tiny(cell).double().eval()  # float64: no near-ties between the two paths
    prompt = tokens((3, 4))
    out = generate(model, prompt, 12, temperature=0)
    assert out.shape == (3, 16) and torch.equal(out[:, :4], prompt)
    assert torch.equal(out, rerun_greedy(model, prompt, 12))
    one = tokens((1,), seed=5)  # a prompt of one token, 1-D in, 1-D out
    assert torch.equal(greedy(model, one, 6), rerun_greedy(model, one[None], 6)[0])


def test_generate_counts_forward_calls_and_restores_training_mode():
    model = tiny("lstm", dropout=0.3).train()
    calls = []
    model.register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    generate(model, tokens((2, 5)), 4)
    assert calls == [(2, 5), (2, 1), (2, 1), (2, 1)]  # prompt once, then one token per step
    assert model.training and model.drop.training


def test_sampling_is_reproducible_with_a_seeded_generator():
    model = tiny("gru")
    prompt = tokens((2, 3))
    draw = lambda seed: generate(model, prompt, 20, temperature=1.5, top_k=5,
                                 generator=torch.Generator().manual_seed(seed))
    assert torch.equal(draw(3), draw(3))
    assert not torch.equal(draw(3), draw(4))


def sequence_log_prob(model, seq, n_prompt):
    """log p(seq[n_prompt:] | seq[:n_prompt]) from one full forward pass."""
    with torch.no_grad():
        logits, _ = model(seq[None, :-1])
    log_probs = torch.log_softmax(logits[0].double(), -1)
    targets = seq[1:]
    return float(log_probs[torch.arange(len(targets)), targets][n_prompt - 1:].sum())


@pytest.mark.parametrize("cell", CELLS)
def test_beam_search_on_recurrent_models(cell):
    model = tiny(cell, vocab_size=3).double().eval()
    prompt = tokens((3,), vocab_size=3, seed=2)
    seq, score = beam_search(model, prompt, 5, beam_width=1)
    assert torch.equal(seq, greedy(model, prompt, 5))
    for width in (3, 81):  # 81 = 3 ** 4: every continuation of 5 tokens is kept, so it is exact
        seq, score = beam_search(model, prompt, 5, beam_width=width)
        assert len(seq) == 8 and torch.equal(seq[:3], prompt)
        # The score matches a recomputation: so the states were reordered with their beams.
        assert math.isclose(score, sequence_log_prob(model, seq, 3), abs_tol=1e-9)
    all_continuations = torch.cartesian_prod(*[torch.arange(3)] * 5)
    best = max(sequence_log_prob(model, torch.cat([prompt, c]), 3) for c in all_continuations)
    assert math.isclose(score, best, abs_tol=1e-9)


# -- it learns ------------------------------------------------------------------------

def test_a_tiny_lstm_learns_a_markov_source_with_the_training_loop():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        source = MarkovSource(vocab_size=8, order=1, branching=2, seed=0)
        batches = LMBatches.from_tokens(source.sample(20_000, seed=1), batch_size=16,
                                        block_size=16, device="cpu")
        torch.manual_seed(0)
        model = RecurrentLM(8, n_embd=16, hidden_size=32, cell="lstm")
        config = TrainConfig(steps=100, lr=1e-2, eval_batches=0, progress=False)
        history = train(model, batches, config, device="cpu")  # the model returns (logits, state)
    finally:
        torch.set_num_threads(threads)
    # A uniform guess costs log V = 2.08 nats; the source's floor is its entropy rate.
    assert history.train[0]["loss"] > 0.9 * math.log(8)
    assert history.final_train_loss < 0.5 * math.log(8)
    assert history.final_train_loss < source.entropy_rate + 0.25
