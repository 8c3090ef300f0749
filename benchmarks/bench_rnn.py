"""Recurrent language models: the figures of issue 3, measured side by side.

1. Training loop. lmcourse's LSTM language model (``RecurrentLM``, trained by
   ``lmcourse.train.train``) against the least a loop can be: a bare
   Embedding + LSTM + Linear trained with zero_grad, forward, loss, backward,
   AdamW step. Same sizes, same starting weights, same batches (those of
   ``bench_train.py``). The course loop clips gradients by default and the bare
   loop does not, so the course loop is timed with and without clipping.
2. Python loop vs fused layer. An LSTM cell written out in a few lines and
   unrolled over time in Python, against ``nn.LSTM`` holding the same weights:
   forward + backward on one batch. Their outputs and gradients are checked
   to agree before anything is timed.
3. Keras vs PyTorch. ``build_keras_lm`` + ``compile_for_lm`` + ``fit`` on a
   ``make_lm_dataset`` pipeline against the PyTorch loops, same model sizes,
   after a warm-up fit that traces the Keras training step.
4. A real run: the character-level LSTM on tiny-shakespeare at the ``cpu``
   budget's sizes; its validation loss and wall time. The full 1500 steps take
   about 8 minutes on a busy 2-core machine; ``--quick`` runs a fifth of them.

Timed contestants run in rotating rounds (A B C, B C A, ...), so drifts in the
machine's speed hit all alike; a ratio is the median of per-round ratios.

    .venv/bin/python benchmarks/bench_rnn.py --threads 1 [--quick]

``main()`` returns the figures as a dict.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import BATCH, BLOCK, VOCAB, CharLSTM, bare_loop, make_get_batch  # noqa: E402
from timing import alternate, report, speed_ratio  # noqa: E402

from lmcourse import runtime  # noqa: E402  (before TensorFlow: keeps its logs quiet)
from lmcourse.models.rnn import RecurrentLM  # noqa: E402
from lmcourse.train import TrainConfig, train  # noqa: E402

EMBD, HIDDEN = 64, 256  # bench_train.CharLSTM's default sizes: one model for parts 1-3
LR = 2e-3


# ---------------------------------------------------------------------------
# Shared helpers


def set_threads(threads: int | None) -> None:
    """CPU threads for torch and TensorFlow (TF's must be set before it runs any op)."""
    if threads is None:
        return
    torch.set_num_threads(threads)
    tf = runtime.setup_tensorflow()
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def course_model() -> RecurrentLM:
    torch.manual_seed(0)
    return RecurrentLM(VOCAB, EMBD, HIDDEN, n_layer=1, cell="lstm")


def as_bare(model: RecurrentLM) -> CharLSTM:
    """bench_train's bare CharLSTM holding ``model``'s weights (same layers, other names)."""
    bare = CharLSTM(VOCAB, EMBD, HIDDEN)
    names = {"embedding": "embed", "rnn": "lstm", "head": "head"}
    bare.load_state_dict({names[k.split(".")[0]] + k[k.index("."):]: v
                          for k, v in model.state_dict().items()})
    return bare


# ---------------------------------------------------------------------------
# 1. The course loop vs a bare loop


def bench_loop(steps: int, rounds: int, tokens: torch.Tensor) -> dict:
    dev = torch.device("cpu")
    get_batch = make_get_batch(tokens, dev)
    base = course_model()
    bare = as_bare(base)
    config = TrainConfig(steps=steps, lr=LR, eval_batches=0, progress=False)
    no_clip = dataclasses.replace(config, grad_clip=None)
    times = alternate({
        "course (clip)": lambda: train(copy.deepcopy(base), get_batch, config, device=dev),
        "course (no clip)": lambda: train(copy.deepcopy(base), get_batch, no_clip, device=dev),
        "bare": lambda: bare_loop(copy.deepcopy(bare), get_batch, steps, LR, config.seed, dev),
    }, rounds)
    print(f"\n1. training loop: RecurrentLM + lmcourse.train vs a bare nn.LSTM loop "
          f"(vocab {VOCAB}, embd {EMBD}, hidden {HIDDEN}, batch {BATCH}x{BLOCK}; "
          f"{rounds} rounds of {steps} steps)")
    rates = report(times, steps * BATCH * BLOCK)
    result = {"course_tokens_per_s": rates["course (clip)"],
              "course_no_clip_tokens_per_s": rates["course (no clip)"],
              "bare_tokens_per_s": rates["bare"],
              "course_ratio": speed_ratio(times["course (clip)"], times["bare"]),
              "course_no_clip_ratio": speed_ratio(times["course (no clip)"], times["bare"])}
    print(f"  course / bare: {result['course_ratio']:.3f}x with clipping, "
          f"{result['course_no_clip_ratio']:.3f}x without (target >= 0.95x)")
    return result


# ---------------------------------------------------------------------------
# 2. An LSTM cell unrolled in Python vs the fused layer


def lstm_cell(x, h, c, W_x, W_h, b):
    """One LSTM step, gates in PyTorch's order i, f, g, o (Hochreiter & Schmidhuber, 1997)."""
    i, f, g, o = (x @ W_x + h @ W_h + b).chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


def unrolled_lstm(lstm: torch.nn.LSTM, x: torch.Tensor) -> torch.Tensor:
    """``lstm(x)[0]`` for a one-layer, batch-first LSTM, one Python-level step at a time."""
    W_x, W_h = lstm.weight_ih_l0.T, lstm.weight_hh_l0.T  # (D, 4H), (H, 4H): x @ W convention
    b = lstm.bias_ih_l0 + lstm.bias_hh_l0  # only the sum of PyTorch's two biases matters
    h = c = x.new_zeros(x.shape[0], lstm.hidden_size)
    outputs = []
    for t in range(x.shape[1]):
        h, c = lstm_cell(x[:, t], h, c, W_x, W_h, b)
        outputs.append(h)
    return torch.stack(outputs, dim=1)


def bench_cell(rounds: int) -> dict:
    lstm = course_model().rnn
    x = torch.randn(BATCH, BLOCK, EMBD, generator=torch.Generator().manual_seed(1))

    def forward_backward(forward):
        lstm.zero_grad(set_to_none=True)
        out = forward(x)
        out.square().mean().backward()  # any scalar of every output will do
        return out.detach(), [p.grad.clone() for p in lstm.parameters()]

    fused_out, fused_grads = forward_backward(lambda x: lstm(x)[0])
    loop_out, loop_grads = forward_backward(lambda x: unrolled_lstm(lstm, x))
    assert torch.allclose(fused_out, loop_out, atol=1e-5), "the unrolled cell disagrees with nn.LSTM"
    for g_fused, g_loop in zip(fused_grads, loop_grads):
        assert torch.allclose(g_fused, g_loop, atol=1e-6, rtol=1e-4), "gradients disagree"
    max_diff = (fused_out - loop_out).abs().max().item()

    repeats = 5  # forward+backward passes per timed run
    times = alternate({
        "fused nn.LSTM": lambda: [forward_backward(lambda x: lstm(x)[0]) for _ in range(repeats)],
        "Python loop": lambda: [forward_backward(lambda x: unrolled_lstm(lstm, x))
                                for _ in range(repeats)],
    }, rounds)
    print(f"\n2. LSTM cell unrolled in Python vs fused nn.LSTM, forward+backward "
          f"(batch {BATCH}x{BLOCK}, {EMBD}->{HIDDEN}; outputs agree to {max_diff:.1e})")
    rates = report(times, repeats * BATCH * BLOCK)
    slowdown = speed_ratio(times["fused nn.LSTM"], times["Python loop"])
    print(f"  the Python loop is {slowdown:.2f}x slower (aim <= 3x on CPU)")
    return {"fused_tokens_per_s": rates["fused nn.LSTM"], "loop_tokens_per_s": rates["Python loop"],
            "loop_slowdown": slowdown, "max_abs_diff": max_diff}


# ---------------------------------------------------------------------------
# 3. Keras vs PyTorch


def bench_keras(steps: int, rounds: int, tokens: torch.Tensor) -> dict:
    from lmcourse.models.keras_rnn import build_keras_lm, compile_for_lm, make_lm_dataset

    import keras  # after lmcourse's TensorFlow set-up

    dev = torch.device("cpu")
    runtime.seed_everything(0)
    # Exactly `steps` batches per epoch: one fit() call is one epoch of `steps` steps.
    dataset = make_lm_dataset(tokens[: steps * BATCH * BLOCK + 1].numpy(), BLOCK, BATCH)
    keras_model = compile_for_lm(build_keras_lm(VOCAB, EMBD, HIDDEN, n_layer=1, cell="lstm"), lr=LR)
    get_batch = make_get_batch(tokens, dev)
    base = course_model()
    bare = as_bare(base)
    config = TrainConfig(steps=steps, lr=LR, eval_batches=0, progress=False)
    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start

    timer = EpochTimer()

    def keras_epoch() -> float:
        keras_model.fit(dataset, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
        return timer.seconds

    # Each fit() continues training the same model. The warm-up call in alternate()
    # traces the training step, and the timer leaves out fit()'s set-up (about 3 s
    # a call here), so the timed epochs are steady state.
    times = alternate({
        "keras epoch": keras_epoch,
        "pytorch course (clip)": lambda: train(copy.deepcopy(base), get_batch, config, device=dev),
        "pytorch bare": lambda: bare_loop(copy.deepcopy(bare), get_batch, steps, LR, config.seed, dev),
    }, rounds)
    print(f"\n3. Keras vs PyTorch LSTM training (same sizes as 1; Keras clips each gradient "
          f"to norm 1 like the course loop; {rounds} rounds of one {steps}-step epoch)")
    rates = report(times, steps * BATCH * BLOCK)
    result = {"keras_tokens_per_s": rates["keras epoch"],
              "keras_vs_course": speed_ratio(times["keras epoch"], times["pytorch course (clip)"]),
              "keras_vs_bare": speed_ratio(times["keras epoch"], times["pytorch bare"])}
    print(f"  keras / pytorch tokens/s: {result['keras_vs_course']:.2f}x the course loop, "
          f"{result['keras_vs_bare']:.2f}x the bare loop")
    return result


# ---------------------------------------------------------------------------
# 4. The char-level LSTM on tiny-shakespeare at the cpu budget


def shakespeare_run(quick: bool) -> dict:
    from lmcourse.data.batching import LMBatches
    from lmcourse.data.corpora import load_text

    B = runtime.budget("cpu")
    steps = B.train_steps // 5 if quick else B.train_steps
    text = load_text("tiny_shakespeare").text[: B.corpus_chars]
    chars = sorted(set(text))
    index = {ch: i for i, ch in enumerate(chars)}
    ids = torch.tensor([index[ch] for ch in text])
    batches = LMBatches.from_tokens(ids, B.batch_size, B.block_size, device="cpu")
    torch.manual_seed(0)
    model = RecurrentLM(len(chars), B.n_embd, B.rnn_hidden, B.n_layer, cell="lstm")
    config = TrainConfig(steps=steps, lr=B.learning_rate, eval_interval=B.eval_interval,
                         eval_batches=B.eval_batches, progress=False)
    start = time.perf_counter()
    history = train(model, batches, config, device="cpu")
    wall = time.perf_counter() - start
    result = {"run": "quick" if quick else "full", "steps": steps, "vocab": len(chars),
              "params": model.param_count(), "best_val_loss": history.best_val_loss,
              "final_val_loss": history.val[-1]["loss"], "wall_s": wall}
    print(f"\n4. char-level LSTM on tiny-shakespeare, cpu budget sizes ({result['run']} run: "
          f"{steps} steps of {B.batch_size}x{B.block_size}; {B.n_layer} layers, embd {B.n_embd}, "
          f"hidden {B.rnn_hidden}, {result['params']:,} parameters, vocab {len(chars)})")
    print(f"  validation loss {result['final_val_loss']:.3f} nats/char "
          f"({result['final_val_loss'] / math.log(2):.2f} bits/char; uniform guess "
          f"{math.log(len(chars)):.2f} nats), best {result['best_val_loss']:.3f}; "
          f"wall time {wall:.0f} s")
    return result


# ---------------------------------------------------------------------------


def main(steps: int = 40, rounds: int = 7, threads: int | None = None, quick: bool = False,
         skip_training: bool = False) -> dict:
    """Run parts 1-4 (4 unless ``skip_training``); print and return the figures."""
    set_threads(threads)
    print(f"machine: {os.cpu_count()} cores; torch uses {torch.get_num_threads()} threads")
    torch.manual_seed(0)
    tokens = torch.randint(VOCAB, (200_000,))  # random ids: speed does not depend on the text
    result = {"cores": os.cpu_count(), "threads": torch.get_num_threads(),
              "loop": bench_loop(steps, rounds, tokens),
              "cell": bench_cell(rounds),
              "keras": bench_keras(steps, rounds, tokens)}
    if not skip_training:
        result["shakespeare"] = shakespeare_run(quick)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps per timed run")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch and TensorFlow (1 is steadiest on a busy machine)")
    parser.add_argument("--quick", action="store_true",
                        help="part 4 with a fifth of the cpu budget's training steps")
    parser.add_argument("--skip-training", action="store_true", help="leave out part 4")
    args = parser.parse_args()
    main(args.steps, args.rounds, args.threads, args.quick, args.skip_training)
