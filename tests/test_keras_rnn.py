"""The Keras recurrent LMs: shapes, the tf.data pipeline, stateful sampling, a short fit."""
import numpy as np
import pytest
import torch

import lmcourse  # noqa: F401  (quiet TensorFlow before it is imported)
from lmcourse.generate import sample_next
from lmcourse.models.keras_rnn import (build_keras_lm, compile_for_lm, keras_generate,
                                       make_lm_dataset, recurrent_layers)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402


@pytest.mark.parametrize("cell,layer", [("rnn", keras.layers.SimpleRNN),
                                        ("lstm", keras.layers.LSTM), ("gru", keras.layers.GRU)])
def test_model_maps_ids_to_logits_at_every_position(cell, layer):
    model = build_keras_lm(vocab_size=11, n_embd=4, hidden_size=6, n_layer=2, cell=cell,
                           dropout=0.1)
    assert model(np.zeros((3, 7), "int32")).shape == (3, 7, 11)
    rnns = recurrent_layers(model)
    assert len(rnns) == 2 and all(type(l) is layer and l.return_sequences for l in rnns)
    if cell == "gru":
        assert all(l.cell.reset_after for l in rnns)  # PyTorch's formulation


@pytest.mark.parametrize("kwargs,match", [
    (dict(cell="transformer"), "cell must be one of"),
    (dict(n_layer=0), "n_layer must be an integer >= 1"),
    (dict(hidden_size=2.5), "hidden_size must be an integer >= 1"),
    (dict(dropout=1.0), r"dropout must be a number in \[0, 1\)"),
])
def test_bad_arguments_are_refused(kwargs, match):
    args = dict(vocab_size=5, n_embd=3, hidden_size=4) | kwargs
    with pytest.raises((TypeError, ValueError), match=match):
        build_keras_lm(**args)


def test_dataset_windows_are_targets_shifted_by_one():
    tokens = np.arange(1, 42) * 3  # distinct values, so any misalignment shows
    batches = list(make_lm_dataset(tokens, block_size=5, batch_size=2, shuffle=False))
    assert len(batches) == 4  # 8 windows of 5 cover tokens[0:41]
    x = np.concatenate([b[0].numpy() for b in batches])
    y = np.concatenate([b[1].numpy() for b in batches])
    assert x.dtype == np.int32 and x.shape == (8, 5)
    np.testing.assert_array_equal(x, tokens[:40].reshape(8, 5))
    np.testing.assert_array_equal(y, tokens[1:41].reshape(8, 5))


def test_dataset_shuffle_is_seeded_and_covers_every_window():
    tokens = np.arange(201)
    first = [x.numpy() for x, _ in make_lm_dataset(tokens, 4, 5, seed=1)]
    again = [x.numpy() for x, _ in make_lm_dataset(tokens, 4, 5, seed=1)]
    other = [x.numpy() for x, _ in make_lm_dataset(tokens, 4, 5, seed=2)]
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))
    assert not np.array_equal(np.concatenate(first), np.concatenate(other))
    starts = sorted(np.concatenate(first)[:, 0])
    assert starts == list(range(0, 200, 4))  # a permutation of the 50 windows


def test_dataset_refuses_bad_input():
    with pytest.raises(ValueError, match="fewer than one batch"):
        make_lm_dataset(np.arange(20), block_size=4, batch_size=8)
    with pytest.raises(TypeError, match="integer ids"):
        make_lm_dataset(np.linspace(0, 1, 50), block_size=4, batch_size=2)
    with pytest.raises(ValueError, match="block_size must be an integer >= 1"):
        make_lm_dataset(np.arange(50), block_size=0, batch_size=2)
    short = list(make_lm_dataset(np.arange(20), 4, 8, shuffle=False, drop_remainder=False))
    assert [len(x) for x, _ in short] == [4]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_stateful_generation_equals_rerunning_the_prefix(cell):
    keras.utils.set_random_seed(0)
    model = build_keras_lm(vocab_size=17, n_embd=8, hidden_size=16, n_layer=2, cell=cell,
                           dropout=0.2)
    # Larger weights than the initialiser's so the argmax is not flat; biases too.
    rng = np.random.default_rng(0)
    for w in model.weights:
        w.assign(rng.normal(0, 0.6, tuple(w.shape)).astype("float32"))
    prompt = [3, 1, 4]
    out = keras_generate(model, prompt, max_new_tokens=12, temperature=0)

    ids = list(prompt)
    for _ in range(12):  # the slow way: the whole sequence through the model for every token
        logits = model(np.array([ids], dtype="int32"), training=False)
        ids.append(int(np.argmax(logits[0, -1])))
    assert out == ids

    # Sampled, the continuation varies, and must still match the slow way draw for draw.
    sampled = keras_generate(model, prompt, max_new_tokens=12, temperature=1.0, seed=3)
    generator = torch.Generator().manual_seed(3)
    ids = list(prompt)
    for _ in range(12):
        logits = model(np.array([ids], dtype="int32"), training=False)
        ids.append(int(sample_next(torch.tensor(np.asarray(logits[0, -1])), 1.0,
                                   generator=generator)))
    assert sampled == ids
    assert len(set(sampled[3:])) > 2


def test_sampling_is_reproducible_and_valid():
    model = build_keras_lm(vocab_size=9, n_embd=4, hidden_size=8, cell="lstm")
    a = keras_generate(model, np.array([2]), 30, temperature=1.5, seed=7)
    b = keras_generate(model, np.array([2]), 30, temperature=1.5, seed=7)
    c = keras_generate(model, np.array([2]), 30, temperature=1.5, seed=8)
    assert a == b and a != c
    assert len(a) == 31 and a[0] == 2 and all(0 <= i < 9 for i in a)
    assert keras_generate(model, [2, 5], 0) == [2, 5]
    top1 = keras_generate(model, [2], 10, temperature=1.0, top_k=1)
    assert top1 == keras_generate(model, [2], 10, temperature=0)


def test_generation_refuses_bad_prompts():
    model = build_keras_lm(vocab_size=9, n_embd=4, hidden_size=8, cell="gru")
    with pytest.raises(ValueError, match="non-empty"):
        keras_generate(model, [], 5)
    with pytest.raises(ValueError, match=r"\[0, 9\)"):
        keras_generate(model, [3, 9], 5)
    with pytest.raises(ValueError, match="max_new_tokens"):
        keras_generate(model, [3], -1)


def test_fit_learns_a_repeating_sequence():
    # Period 7 over 7 symbols: a working pipeline + model drives the loss near 0
    # and the generator continues the cycle; a misaligned target could not.
    keras.utils.set_random_seed(0)
    tokens = np.tile(np.array([0, 3, 1, 6, 2, 5, 4]), 60)
    model = compile_for_lm(build_keras_lm(7, 8, 32, cell="lstm"), lr=2e-2)
    history = model.fit(make_lm_dataset(tokens, block_size=14, batch_size=8), epochs=15,
                        shuffle=False, verbose=0)
    assert history.history["loss"][-1] < 0.1 < history.history["loss"][0]
    out = keras_generate(model, [0, 3, 1], 11, temperature=0)
    np.testing.assert_array_equal(out, np.tile([0, 3, 1, 6, 2, 5, 4], 2))


def test_the_broken_interview_answer_fails_as_documented():
    # The module docstring quotes this error; if Keras changes it, update the docstring.
    with pytest.raises(ValueError, match="can only have a single required positional argument"):
        keras.Sequential([keras.Input((10,), dtype="int32"), keras.layers.Embedding(20, 4),
                          keras.layers.SimpleRNNCell(8), keras.layers.Dense(20)])
    with pytest.raises(TypeError, match="missing a required argument: 'states'"):
        keras.layers.LSTMCell(8)(tf.zeros((2, 10, 4)))
