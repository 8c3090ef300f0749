"""Recurrent language models in TensorFlow/Keras 3: model, tf.data pipeline, stateful sampling.

    import lmcourse
    from lmcourse.models.keras_rnn import build_keras_lm, compile_for_lm, make_lm_dataset, keras_generate

    model = compile_for_lm(build_keras_lm(vocab_size=65, n_embd=32, hidden_size=128, cell="lstm"))
    model.fit(make_lm_dataset(train_ids, block_size=64, batch_size=32), epochs=3, shuffle=False)
    keras_generate(model, prompt_ids, max_new_tokens=200, temperature=0.8)

Import ``lmcourse`` before this module: it keeps TensorFlow's start-up logs quiet.

The classic broken answer
-------------------------
"Write an RNN in Keras that generates text" is a favourite interview question,
and the first attempt often looks like this::

    model = keras.Sequential([
        keras.layers.Embedding(vocab_size, 32),
        keras.layers.SimpleRNNCell(128),        # a *cell*: one time step, not a sequence
        keras.layers.Dense(vocab_size, activation="softmax"),
    ])
    model.fit(dataset, epochs=10)               # `dataset` was never built

It fails twice. A cell is the function for a single step,
``(x_t, states) -> (h_t, new_states)``; it needs the previous state as a second
argument, so it cannot stand in a ``Sequential`` model. Keras 3.15 says so
when the model is built::

    ValueError: Layers added to a Sequential model can only have a single required
    positional argument, the input tensor. Layer SimpleRNNCell has multiple required
    positional arguments: [<Parameter "sequence">, <Parameter "states">]

(called directly on a ``(B, T, D)`` tensor, ``LSTMCell(128)(x)`` raises
``TypeError: missing a required argument: 'states'``). And ``fit`` is handed a
dataset that nothing created: the windows of text with their next-token
targets are the part of a language model that the broken answer skips.

The fix, which this module is:

1. a *layer* that runs the cell over the whole sequence (``SimpleRNN``,
   ``LSTM``, ``GRU``) with ``return_sequences=True``, so every position gets a
   prediction, not only the last one;
2. a real ``tf.data`` pipeline of ``(x, y)`` windows, ``y`` being ``x`` shifted
   by one token (``make_lm_dataset``);
3. logits out of the model and ``from_logits=True`` in the loss (more stable
   than a softmax layer followed by a log);
4. a sampling loop that carries the recurrent state from one step to the next
   (``keras_generate``), instead of re-reading the whole prefix for every token.

On a GPU the ``LSTM`` and ``GRU`` layers use the fused cuDNN kernel as long as
they keep its defaults (tanh/sigmoid activations, no ``recurrent_dropout``,
``unroll=False``, and for the GRU ``reset_after=True``); that is why dropout
here is a separate layer between recurrent layers. The weights of these models
load into, and from, ``lmcourse.models.rnn.RecurrentLM``: see
``lmcourse.models.porting``.
"""
from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch

from lmcourse.data.batching import sequential_windows
from lmcourse.generate import sample_next
from lmcourse.runtime import setup_tensorflow
from lmcourse.validate import non_negative_int, positive_int

tf = setup_tensorflow()  # quiet logs and GPU memory growth, before Keras touches the device
import keras  # noqa: E402  (must come after setup_tensorflow)

__all__ = ["CELLS", "build_keras_lm", "compile_for_lm", "make_lm_dataset", "keras_generate",
           "recurrent_layers"]

CELLS = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


def build_keras_lm(vocab_size: int, n_embd: int, hidden_size: int, n_layer: int = 1,
                   cell: str = "lstm", dropout: float = 0.0) -> keras.Model:
    """Embedding -> ``n_layer`` recurrent layers -> Dense: token ids ``(B, T)`` to logits ``(B, T, V)``.

    ``cell`` is ``"rnn"`` (``SimpleRNN``, tanh), ``"lstm"`` or ``"gru"``. The GRU
    uses ``reset_after=True`` (Keras's default): the reset gate multiplies
    ``h W + b`` after the matrix product, which is PyTorch's formulation, so
    weights port between the two. ``dropout`` is applied, during training, to
    the embeddings and to the output of each recurrent layer, where
    ``lmcourse.models.rnn.RecurrentLM`` applies it. The model is built but not compiled (see
    ``compile_for_lm``).
    """
    vocab_size = positive_int("vocab_size", vocab_size)
    n_embd = positive_int("n_embd", n_embd)
    hidden_size = positive_int("hidden_size", hidden_size)
    n_layer = positive_int("n_layer", n_layer)
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(map(repr, CELLS))}, got {cell!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, Real) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")

    layers = [keras.Input(shape=(None,), dtype="int32", name="ids"),
              keras.layers.Embedding(vocab_size, n_embd, name="embedding")]
    if dropout > 0:
        layers.append(keras.layers.Dropout(dropout, name="dropout_embedding"))
    for i in range(n_layer):
        # return_sequences=True: one output per position, hence one prediction per token.
        layers.append(CELLS[cell](hidden_size, return_sequences=True, name=f"{cell}_{i}"))
        if dropout > 0:
            layers.append(keras.layers.Dropout(dropout, name=f"dropout_{i}"))
    layers.append(keras.layers.Dense(vocab_size, name="head"))  # logits: no softmax here
    return keras.Sequential(layers, name=f"{cell}_lm")


def compile_for_lm(model: keras.Model, lr: float = 1e-3, clipnorm: float | None = 1.0
                   ) -> keras.Model:
    """Compile for next-token prediction: Adam, cross-entropy on logits. Returns ``model``.

    The loss is the mean over every position of every window, so it is the
    per-token cross-entropy in nats, directly comparable with the PyTorch
    models' loss; ``exp(loss)`` is the perplexity. ``clipnorm`` caps the global
    L2 norm of all gradients together (Keras's ``global_clipnorm``), the same
    rule as ``torch.nn.utils.clip_grad_norm_`` in ``lmcourse.train``; recurrent
    networks need it because their gradients can explode.
    ``jit_compile=False`` because XLA makes the recurrent layers *slower* on
    the CPU.
    """
    if isinstance(lr, bool) or not isinstance(lr, Real) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr, global_clipnorm=clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    return model


def make_lm_dataset(tokens, block_size: int, batch_size: int, shuffle: bool = True,
                    seed: int = 0, drop_remainder: bool = True) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(x, y)`` batches, shape ``(batch_size, block_size)``, int32.

    ``tokens`` is one 1-D sequence of ids. It is cut into consecutive windows
    of ``block_size`` tokens, each with its target ``y`` = the same window
    shifted one token to the right, exactly as
    ``lmcourse.data.batching.sequential_windows`` cuts them for PyTorch:
    each token is a target at most once per epoch (the few left over at the
    end, and any windows of a dropped last batch, not at all).

    ``shuffle`` reorders the windows every epoch (reproducibly, from ``seed``);
    turn it off for evaluation. The dataset does its own shuffling, so call
    ``model.fit(ds, shuffle=False)``: Keras 3.15 warns that its ``shuffle=True``
    default is ignored for a ``tf.data.Dataset`` otherwise. ``drop_remainder``
    drops a last, smaller batch, so every batch has the same shape and
    TensorFlow traces the training step once.
    """
    if isinstance(tokens, tf.Tensor):
        tokens = tokens.numpy()
    positive_int("batch_size", batch_size)
    x, y = sequential_windows(tokens, block_size)  # checks ids and block_size
    if drop_remainder and len(x) < batch_size:
        raise ValueError(
            f"{len(tokens)} tokens make {len(x)} windows of block_size {block_size}, fewer than "
            f"one batch of {batch_size}: use more tokens, a smaller block_size or batch_size, "
            f"or drop_remainder=False"
        )
    ds = tf.data.Dataset.from_tensor_slices((x.numpy().astype(np.int32),
                                             y.numpy().astype(np.int32)))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    # prefetch: the next batch is prepared while the model trains on this one.
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def recurrent_layers(model: keras.Model) -> list[keras.layers.RNN]:
    """The model's recurrent layers, in order (``SimpleRNN``, ``LSTM`` or ``GRU``)."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.RNN)]


def keras_generate(model: keras.Model, prompt_ids, max_new_tokens: int,
                   temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = None, seed: int = 0) -> list[int]:
    """Continue ``prompt_ids`` by ``max_new_tokens`` tokens; returns prompt + new ids.

    Stateful: the prompt is read once, then each new token costs one step of
    each layer. Each recurrent layer's *cell* is called directly with the state
    it returned at the previous step, ``cell(x_t, states) -> (h_t, states)``,
    so the step uses the trained weights themselves (nothing is copied) and
    the prefix is never re-run. The result is the same as feeding the whole
    sequence through ``model`` for every token, only ``T`` times cheaper.

    ``temperature=0`` is greedy decoding; ``temperature``, ``top_k`` and
    ``top_p`` mean what they do in ``lmcourse.generate``, which draws the
    tokens (reproducibly, from ``seed``). Works on models from
    ``build_keras_lm`` (Embedding, recurrent layers, Dropout, Dense).
    """
    prompt = [int(i) for i in np.asarray(prompt_ids).reshape(-1)] if np.ndim(prompt_ids) else None
    if not prompt:
        raise ValueError("prompt_ids must be a non-empty 1-D sequence of token ids "
                         "(a recurrent model needs at least one token to start from)")
    max_new_tokens = non_negative_int("max_new_tokens", max_new_tokens)
    head = model.layers[-1]
    vocab_size = head.units if isinstance(head, keras.layers.Dense) else None
    if vocab_size is not None and not all(0 <= i < vocab_size for i in prompt):
        raise ValueError(f"prompt ids must lie in [0, {vocab_size}), got {prompt}")

    step = _step_function(model)
    states = [layer.cell.get_initial_state(batch_size=1) for layer in recurrent_layers(model)]
    generator = torch.Generator().manual_seed(seed)
    out = list(prompt)
    logits = None
    for token in prompt:  # read the prompt once, keeping only the last state and logits
        logits, states = step(token, states)
    for _ in range(max_new_tokens):
        next_id = int(sample_next(torch.tensor(np.asarray(logits)[0]), temperature,
                                  top_k, top_p, generator=generator))
        out.append(next_id)
        logits, states = step(next_id, states)
    return out


def _step_function(model: keras.Model):
    """``step(token, states) -> (logits (1, V), states)``: one token through every layer."""
    for layer in model.layers:
        if not isinstance(layer, (keras.layers.Embedding, keras.layers.RNN,
                                  keras.layers.Dropout, keras.layers.Dense)):
            raise TypeError(f"keras_generate expects Embedding, recurrent, Dropout and Dense "
                            f"layers (a build_keras_lm model); found {type(layer).__name__} "
                            f"{layer.name!r}")

    def step(token: int, states: list):
        x = model.layers[0](np.array([token], dtype=np.int32))  # (1, n_embd)
        new_states, i = [], 0
        for layer in model.layers[1:]:
            if isinstance(layer, keras.layers.RNN):
                x, s = layer.cell(x, states[i], training=False)
                new_states.append(s)
                i += 1
            elif isinstance(layer, keras.layers.Dense):
                x = layer(x)
            # Dropout is the identity at inference: skip it.
        return x, new_states

    return step
