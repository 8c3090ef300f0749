"""Weights moved between PyTorch and Keras recurrent LMs give the same logits."""
import numpy as np
import pytest
import torch
from torch import nn

import lmcourse  # noqa: F401  (quiet TensorFlow before it is imported)
from lmcourse.models.keras_rnn import build_keras_lm
from lmcourse.models.porting import keras_to_torch, torch_to_keras
from lmcourse.models.rnn import RecurrentLM

V, E, H = 13, 6, 8
TORCH_LAYER = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class TwinLM(nn.Module):
    """The bare parts the porting code reads, written independently of RecurrentLM."""

    def __init__(self, cell, n_layer, vocab=V, n_embd=E, hidden=H):
        super().__init__()
        self.embedding = nn.Embedding(vocab, n_embd)
        self.rnn = TORCH_LAYER[cell](n_embd, hidden, num_layers=n_layer, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, idx, state=None):
        out, state = self.rnn(self.embedding(idx), state)
        return self.head(out), state


def randomize(module: nn.Module, seed: int) -> nn.Module:
    """Every parameter, biases included, random and of order 1, so no mistake hides behind a zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return module.eval()


def randomize_keras(model, seed: int):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.normal(0, 0.5, tuple(w.shape)).astype("float32"))
    return model


def ids(seed=0, shape=(3, 11)):
    return np.random.default_rng(seed).integers(0, V, shape)


def torch_logits(model, x):
    with torch.no_grad():
        return model(torch.as_tensor(x))[0].numpy()


def keras_logits(model, x):
    return np.asarray(model(x.astype("int32"), training=False))


CASES = [(cell, n) for cell in ("rnn", "lstm", "gru") for n in (1, 2)]


@pytest.mark.parametrize("cell,n_layer", CASES)
def test_torch_to_keras_gives_the_same_logits(cell, n_layer):
    tm = randomize(TwinLM(cell, n_layer), seed=1)
    km = torch_to_keras(tm, build_keras_lm(V, E, H, n_layer=n_layer, cell=cell))
    x = ids()
    assert np.abs(torch_logits(tm, x) - keras_logits(km, x)).max() <= 1e-5


@pytest.mark.parametrize("cell,n_layer", CASES)
def test_keras_to_torch_gives_the_same_logits(cell, n_layer):
    km = randomize_keras(build_keras_lm(V, E, H, n_layer=n_layer, cell=cell), seed=2)
    tm = keras_to_torch(km, TwinLM(cell, n_layer)).eval()
    x = ids(1)
    assert np.abs(torch_logits(tm, x) - keras_logits(km, x)).max() <= 1e-5
    if cell != "gru":  # one Keras bias: all of it lands in bias_ih
        assert not tm.rnn.bias_hh_l0.any()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_round_trip_restores_the_weights(cell):
    original = randomize(TwinLM(cell, 2), seed=3)
    back = keras_to_torch(torch_to_keras(original, build_keras_lm(V, E, H, 2, cell)),
                          TwinLM(cell, 2))
    for (name, a), b in zip(original.named_parameters(), back.parameters()):
        if cell == "lstm" and name.startswith("rnn.bias"):
            continue  # the two biases come back summed into one (checked below)
        torch.testing.assert_close(a, b, msg=name)
    if cell == "lstm":
        torch.testing.assert_close(original.rnn.bias_ih_l1 + original.rnn.bias_hh_l1,
                                   back.rnn.bias_ih_l1)
    x = ids(2)
    assert np.abs(torch_logits(original, x) - torch_logits(back, x)).max() <= 1e-5


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_works_with_the_course_recurrent_lm(cell):
    tm = randomize(RecurrentLM(V, E, H, n_layer=2, cell=cell), seed=4)
    km = torch_to_keras(tm, build_keras_lm(V, E, H, n_layer=2, cell=cell))
    x = ids(3)
    assert np.abs(torch_logits(tm, x) - keras_logits(km, x)).max() <= 1e-5
    back = keras_to_torch(km, RecurrentLM(V, E, H, n_layer=2, cell=cell)).eval()
    assert np.abs(torch_logits(back, x) - keras_logits(km, x)).max() <= 1e-5


def test_gru_gate_order_matters():
    # Copying the GRU blocks without swapping r and z must break agreement:
    # this is the mistake the porting code guards against.
    tm = randomize(TwinLM("gru", 1), seed=5)
    km = torch_to_keras(tm, build_keras_lm(V, E, H, cell="gru"))
    cell = km.layers[1].cell
    cell.kernel.assign(tm.rnn.weight_ih_l0.detach().numpy().T)
    x = ids(4)
    assert np.abs(torch_logits(tm, x) - keras_logits(km, x)).max() > 1e-3


@pytest.mark.parametrize("keras_kwargs,match", [
    (dict(vocab_size=V + 1, n_embd=E, hidden_size=H), "size mismatch at embedding"),
    (dict(vocab_size=V, n_embd=E, hidden_size=H + 2), "size mismatch"),
    (dict(vocab_size=V, n_embd=E + 1, hidden_size=H), "size mismatch"),
    (dict(vocab_size=V, n_embd=E, hidden_size=H, n_layer=2), "layer count differs"),
    (dict(vocab_size=V, n_embd=E, hidden_size=H, cell="gru"), "must be LSTM"),
])
def test_mismatched_models_are_refused(keras_kwargs, match):
    tm = TwinLM("lstm", 1)
    km = build_keras_lm(**keras_kwargs)
    with pytest.raises(ValueError, match=match):
        torch_to_keras(tm, km)
    with pytest.raises(ValueError, match=match):
        keras_to_torch(km, tm)


def test_keras_gru_with_reset_before_is_refused():
    import keras

    km = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(V, E),
                           keras.layers.GRU(H, return_sequences=True, reset_after=False),
                           keras.layers.Dense(V)])
    with pytest.raises(ValueError, match="reset_after"):
        torch_to_keras(TwinLM("gru", 1), km)


def test_torch_model_without_the_expected_parts_is_refused():
    with pytest.raises(TypeError, match="torch_model.embedding must be an nn.Embedding"):
        torch_to_keras(nn.Module(), build_keras_lm(V, E, H))
    no_rnn = TwinLM("lstm", 1)
    no_rnn.rnn = nn.Linear(E, H)
    with pytest.raises(TypeError, match="torch_model.rnn must be an nn.RNN, nn.LSTM or nn.GRU"):
        keras_to_torch(build_keras_lm(V, E, H), no_rnn)
