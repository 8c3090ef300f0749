"""Where the course runs: device, seeds, run budget, mixed precision, Colab, TensorFlow.

Every notebook starts with ``device()`` and ``budget()``. Nothing else in the
project picks a device or a size: one code path serves a 2-core CPU, a laptop
and a Colab GPU, and only the budget changes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import sys
from dataclasses import dataclass

import numpy as np
import torch

# TensorFlow reads these when it is first imported; lmcourse/__init__.py sets
# them too, so importing lmcourse before tensorflow keeps notebooks free of
# timestamped C++ log lines.
QUIET_TF_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",  # drop INFO and WARNING lines from TF's C++ core
    "TF_ENABLE_ONEDNN_OPTS": "0",  # no "oneDNN custom operations are on" banner
    "KERAS_BACKEND": "tensorflow",
}


def quiet_tensorflow_env() -> None:
    for key, value in QUIET_TF_ENV.items():
        os.environ.setdefault(key, value)


# ---------------------------------------------------------------------------
# Devices


def device() -> torch.device:
    """The best available accelerator: CUDA, then Apple MPS, then the CPU.

    ``LMCOURSE_DEVICE=cpu`` (or ``cuda``, ``mps``) forces a choice.
    """
    forced = os.environ.get("LMCOURSE_DEVICE")
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def in_colab() -> bool:
    return "google.colab" in sys.modules


# ---------------------------------------------------------------------------
# Seeds

_last_seed: int | None = None


def seed_everything(seed: int = 0) -> int:
    """Seed Python, NumPy, PyTorch (all devices) and TensorFlow.

    TensorFlow is slow to import, so it is seeded here only if it is already
    imported; ``setup_tensorflow()`` applies the last seed when it imports it.
    """
    global _last_seed
    _last_seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if "tensorflow" in sys.modules:
        sys.modules["tensorflow"].random.set_seed(seed)
    return seed


# ---------------------------------------------------------------------------
# Run budgets


@dataclass(frozen=True)
class Budget:
    """Every size a notebook needs. Notebooks read sizes from here, never literals.

    ``smoke`` runs the whole course in minutes on 2 CPU cores (tests and CI),
    ``cpu`` is a laptop's worth, ``gpu`` is for a Colab GPU.
    """

    name: str
    corpus_chars: int  # characters of a real corpus a lesson works on
    markov_tokens: int  # length of a synthetic training sequence
    eval_tokens: int  # held-out tokens for measuring cross-entropy
    bpe_vocab_size: int  # vocabulary size when a lesson trains a BPE tokenizer
    batch_size: int
    block_size: int  # context length of a training window
    train_steps: int
    eval_interval: int  # steps between validation measurements
    eval_batches: int  # batches averaged per validation measurement
    n_embd: int  # model width
    n_layer: int
    n_head: int
    learning_rate: float
    sample_chars: int  # characters to generate when a lesson samples text
    rnn_hidden: int  # hidden size of the recurrent models (lessons 03-05)
    memory_task_len: int  # sequence length of the long-range memory task (lesson 04)
    memory_task_steps: int  # training steps on that task
    gpt_learning_rate: float  # peak learning rate of the GPT (lessons 06-09); small Transformers take more than RNNs
    keras_steps: int  # training steps of the Keras models (lessons 03 and 04): Keras is slower on a CPU
    memory_task_batch: int  # batch size of the long-range memory task (lesson 04)
    memory_task_hidden: int  # hidden size of the memory-task models (lesson 04): the task needs little width
    compare_steps: int  # updates per optimiser or schedule run in the comparisons (lesson 05)
    overfit_chars: int  # training characters of the overfitting experiment (lesson 05)
    overfit_steps: int  # its updates: many passes over that slice (lesson 05)
    markov_steps: int  # LSTM updates on the source of known entropy rate (lesson 05)
    lm_hidden: int  # width of lesson 05's LSTM and GRU language models
    lm_layers: int  # their recurrent layers (lesson 05)
    overfit_hidden: int  # width of the LSTM that overfits a tiny slice (lesson 05): capacity to memorise it
    mlp_steps: int  # updates of lesson 01's neural n-gram (the Bengio-style MLP)
    scaling_shapes: tuple  # (n_layer, n_embd) of each GPT in the scaling sweep (lesson 08)
    scaling_steps: tuple  # training steps of each sweep run; tokens D = steps * batch * block (lesson 08)
    dist_steps: int  # data-parallel training steps, DDP/FSDP runs and the MirroredStrategy fit (lesson 07)
    transfer_sizes: tuple  # training-set sizes of the MiniLM fine-tuning learning curve (lesson 07, transfer)
    transfer_steps: int  # updates per fine-tuning run, full, from scratch or LoRA (lesson 07, transfer)
    transfer_test: int  # held-out test sentences of the transfer task (lesson 07, transfer)
    privacy_examples: int  # training examples of the DP-SGD classifier (lesson 07, privacy)
    privacy_steps: int  # DP-SGD updates of that classifier and of the canary char LM (lesson 07, privacy)
    privacy_chars: int  # training characters of the canary char LM (lesson 07, privacy)
    canary_copies: int  # times the secret is planted in those characters (lesson 07, privacy)
    precision_steps: int  # updates of each fp32 / 16-bit run (lesson 07, memory): CPU bf16 is slow
    augment_pairs: int  # parallel pairs of the low-resource translation task (lesson 07, augmentation)
    augment_steps: int  # updates of each translator trained on it (lesson 07, augmentation)
    compress_steps: int  # updates of the teacher GPT and of each student (lesson 07, compression)
    lit_pretrain_images: int  # clean labelled images the image tower is pretrained on (lesson 10, LiT)
    lit_pretrain_steps: int  # its supervised updates (lesson 10, LiT)
    lit_pairs: int  # noisy image-caption pairs of the contrastive training (lesson 10, LiT)
    lit_steps: tuple  # contrastive step counts evaluated, in one run per setting (lesson 10, LiT)
    lit_batch: int  # pairs per contrastive batch, and images per pretraining batch (lesson 10, LiT)
    lit_width: int  # width of both towers and of the shared embedding (lesson 10, LiT)
    lit_test_images: int  # images in each zero-shot / retrieval test set (lesson 10, LiT)
    icl_steps: int  # updates of the two-layer GPT, with and without the examples (lesson 11, in-context)
    icl_embd: int  # its width (lesson 11, in-context)
    icl_test: int  # held-out-mapping sequences it is scored on (lesson 11, in-context)
    diversity_model: tuple  # (n_layer, n_head, n_embd) of the char GPT whose samples are measured (lesson 11, diversity)
    diversity_steps: int  # its training updates (lesson 11, diversity)
    diversity_samples: int  # continuations drawn per decoding setting (lesson 11, diversity)
    dialogue_model: tuple  # (n_layer, n_head, n_embd) of the tiny assistant GPT (lesson 11, dialogue)
    dialogue_steps: int  # its updates, with the assistant-only loss and on every token (lesson 11, dialogue)
    dialogue_test: int  # held-out prompts its replies are scored on (lesson 11, dialogue)
    lit_minilm_steps: tuple  # LU's step counts: a fine-tuned MiniLM step costs many Lu steps (lesson 10, MiniLM)
    lit_minilm_batch: int  # pairs per LU batch, for the same reason (lesson 10, MiniLM)
    lit_minilm_lr: float  # LU's learning rate: the lesson's rate wrecks pretrained MiniLM in a few steps (lesson 10, MiniLM)
    xling_model: tuple  # (n_layer, n_head, n_embd) of the GPTs trained on the two languages (lesson 11, cross-lingual)
    xling_sentences: tuple  # (language A, language B) training sentences: B is the small one (lesson 11, cross-lingual)
    xling_pretrain_steps: int  # updates of the GPT pretrained on language A (lesson 11, cross-lingual)
    xling_steps: int  # updates on B of each model: pretrained or from scratch (lesson 11, cross-lingual)
    rl_model: tuple  # (n_layer, n_head, n_embd) of the GPT that learns addition (lesson 11, RL)
    rl_sft_steps: int  # supervised updates of its start (lesson 11, RL)
    rl_steps: int  # GRPO updates, and the continued-SFT baseline's (lesson 11, RL)
    rl_prompts: int  # problems per GRPO update (lesson 11, RL)
    rl_group: int  # answers sampled per problem, the group (lesson 11, RL)
    rl_test: int  # held-out problems, never trained on (lesson 11, RL)
    xling_batch: tuple  # (sequences, block size, learning rate) of its GPTs: not the shared batch_size, so the
    # few-steps-on-little-B regime is the same at every budget (lesson 11, cross-lingual)

    def replace(self, **changes) -> "Budget":
        """A copy with some sizes changed, e.g. ``budget().replace(train_steps=50)``."""
        return dataclasses.replace(self, **changes)


BUDGETS: dict[str, Budget] = {
    "smoke": Budget(
        name="smoke", corpus_chars=200_000, markov_tokens=50_000, eval_tokens=10_000,
        bpe_vocab_size=300, batch_size=16, block_size=32, train_steps=60,
        eval_interval=30, eval_batches=4, n_embd=32, n_layer=1, n_head=2,
        learning_rate=3e-3, sample_chars=200, rnn_hidden=64, memory_task_len=20,
        memory_task_steps=150, gpt_learning_rate=4e-3,
        keras_steps=40, memory_task_batch=32, memory_task_hidden=64,
        compare_steps=40, overfit_chars=640, overfit_steps=60, markov_steps=500, lm_hidden=64, lm_layers=1,
        overfit_hidden=128,
        mlp_steps=150,  # lesson 01
        scaling_shapes=((1, 8), (1, 16), (1, 32)), scaling_steps=(40, 80, 160),  # lesson 08
        dist_steps=10,  # lesson 07
        transfer_sizes=(16, 64), transfer_steps=4, transfer_test=60,  # lesson 07, transfer
        privacy_examples=2000, privacy_steps=150, privacy_chars=20_000, canary_copies=8,  # lesson 07, privacy
        precision_steps=40,  # lesson 07, memory
        augment_pairs=100, augment_steps=300,  # lesson 07, augmentation
        compress_steps=60,  # lesson 07, compression
        lit_pretrain_images=2000, lit_pretrain_steps=150, lit_pairs=600, lit_steps=(40, 80), lit_batch=64,
        lit_width=32, lit_test_images=150,  # lesson 10, LiT
        icl_steps=150, icl_embd=32, icl_test=500,  # lesson 11, in-context
        diversity_model=(1, 2, 64), diversity_steps=100, diversity_samples=40,  # lesson 11, diversity
        dialogue_model=(1, 2, 32), dialogue_steps=80, dialogue_test=40,  # lesson 11, dialogue
        lit_minilm_steps=(3,), lit_minilm_batch=16, lit_minilm_lr=1e-4,  # lesson 10, MiniLM
        xling_model=(1, 2, 32), xling_sentences=(3000, 100), xling_pretrain_steps=120, xling_steps=60,  # lesson 11, cross-lingual
        rl_model=(1, 4, 64), rl_sft_steps=400, rl_steps=80, rl_prompts=24, rl_group=8, rl_test=500,  # lesson 11, RL
        xling_batch=(16, 32, 4e-3),  # lesson 11, cross-lingual
    ),
    "cpu": Budget(
        name="cpu", corpus_chars=1_000_000, markov_tokens=500_000, eval_tokens=50_000,
        bpe_vocab_size=1000, batch_size=32, block_size=64, train_steps=1500,
        eval_interval=250, eval_batches=20, n_embd=128, n_layer=4, n_head=4,
        learning_rate=2e-3, sample_chars=500, rnn_hidden=256, memory_task_len=50,
        memory_task_steps=1500, gpt_learning_rate=4e-3,
        keras_steps=500, memory_task_batch=64, memory_task_hidden=128,
        compare_steps=250, overfit_chars=3200, overfit_steps=300, markov_steps=750, lm_hidden=192, lm_layers=1,
        overfit_hidden=128,
        mlp_steps=2000,  # lesson 01
        scaling_shapes=((1, 8), (1, 16), (2, 24), (2, 32)),
        scaling_steps=(75, 150, 300, 600),  # lesson 08
        dist_steps=50,  # lesson 07
        transfer_sizes=(16, 64, 256), transfer_steps=30, transfer_test=300,  # lesson 07, transfer
        privacy_examples=10_000, privacy_steps=600, privacy_chars=100_000, canary_copies=8,  # lesson 07, privacy
        precision_steps=100,  # lesson 07, memory
        augment_pairs=200, augment_steps=600,  # lesson 07, augmentation
        compress_steps=300,  # lesson 07, compression
        lit_pretrain_images=6000, lit_pretrain_steps=600, lit_pairs=1500, lit_steps=(150, 300, 600),
        lit_batch=128, lit_width=64, lit_test_images=300,  # lesson 10, LiT
        icl_steps=800, icl_embd=64, icl_test=2000,  # lesson 11, in-context
        diversity_model=(2, 4, 64), diversity_steps=800, diversity_samples=120,  # lesson 11, diversity
        dialogue_model=(2, 2, 64), dialogue_steps=600, dialogue_test=200,  # lesson 11, dialogue
        lit_minilm_steps=(40, 120), lit_minilm_batch=32, lit_minilm_lr=1e-4,  # lesson 10, MiniLM
        xling_model=(1, 2, 32), xling_sentences=(5000, 100), xling_pretrain_steps=150, xling_steps=40,  # lesson 11, cross-lingual
        rl_model=(2, 2, 48), rl_sft_steps=1200, rl_steps=300, rl_prompts=32, rl_group=8, rl_test=1000,  # lesson 11, RL
        xling_batch=(32, 64, 4e-3),  # lesson 11, cross-lingual
    ),
    "gpu": Budget(
        name="gpu", corpus_chars=5_000_000, markov_tokens=2_000_000, eval_tokens=200_000,
        bpe_vocab_size=4000, batch_size=64, block_size=256, train_steps=5000,
        eval_interval=500, eval_batches=50, n_embd=384, n_layer=6, n_head=6,
        learning_rate=1e-3, sample_chars=1000, rnn_hidden=512, memory_task_len=100,
        memory_task_steps=3000, gpt_learning_rate=1e-3,
        keras_steps=2000, memory_task_batch=64, memory_task_hidden=128,
        compare_steps=800, overfit_chars=16000, overfit_steps=1000, markov_steps=2500, lm_hidden=512, lm_layers=2,
        overfit_hidden=256,
        mlp_steps=5000,  # lesson 01
        scaling_shapes=((2, 64), (2, 128), (4, 128), (4, 256), (6, 384)),
        scaling_steps=(60, 120, 240, 480),  # lesson 08
        dist_steps=500,  # lesson 07
        transfer_sizes=(16, 64, 256, 1024), transfer_steps=150, transfer_test=1000,  # lesson 07, transfer
        privacy_examples=50_000, privacy_steps=2000, privacy_chars=500_000, canary_copies=8,  # lesson 07, privacy
        precision_steps=800,  # lesson 07, memory
        augment_pairs=400, augment_steps=2000,  # lesson 07, augmentation
        compress_steps=1000,  # lesson 07, compression
        lit_pretrain_images=20_000, lit_pretrain_steps=2000, lit_pairs=4000, lit_steps=(300, 1000, 2000),
        lit_batch=256, lit_width=128, lit_test_images=1000,  # lesson 10, LiT
        icl_steps=4000, icl_embd=128, icl_test=5000,  # lesson 11, in-context
        diversity_model=(4, 4, 256), diversity_steps=3000, diversity_samples=400,  # lesson 11, diversity
        dialogue_model=(4, 4, 128), dialogue_steps=2000, dialogue_test=400,  # lesson 11, dialogue
        lit_minilm_steps=(300, 1000), lit_minilm_batch=128, lit_minilm_lr=1e-4,  # lesson 10, MiniLM
        xling_model=(1, 2, 32), xling_sentences=(5000, 100), xling_pretrain_steps=150, xling_steps=40,  # lesson 11, cross-lingual: cpu's
        rl_model=(2, 4, 64), rl_sft_steps=800, rl_steps=500, rl_prompts=64, rl_group=16, rl_test=2000,  # lesson 11, RL
        xling_batch=(32, 64, 4e-3),  # lesson 11, cross-lingual
    ),
}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no")


def budget_name() -> str:
    """The preset in force: $LMCOURSE_BUDGET, else smoke on CI, else gpu or cpu."""
    name = os.environ.get("LMCOURSE_BUDGET", "").strip().lower()
    if name:
        return name
    if _truthy(os.environ.get("CI")):
        return "smoke"
    return "gpu" if torch.cuda.is_available() else "cpu"


def budget(name: str | Budget | None = None) -> Budget:
    """The run budget: ``budget("smoke")``, or the preset chosen by ``budget_name()``.

    A ``Budget`` passed in comes back as it is, so a function with a
    ``budget=`` argument can take a preset name, a ``budget().replace(...)``
    copy, or nothing, and hand it here.
    """
    if isinstance(name, Budget):
        return name
    if name is not None and not isinstance(name, str):
        raise TypeError(
            f"budget() takes a preset name string ({_preset_names()}) or a Budget, "
            f"got {name!r} ({type(name).__name__})"
        )
    from_env = not name and bool(os.environ.get("LMCOURSE_BUDGET", "").strip())
    name = (name or budget_name()).strip().lower()
    if name not in BUDGETS:
        where = ("it comes from the LMCOURSE_BUDGET environment variable: change or unset it"
                 if from_env else "set it with budget(name) or the LMCOURSE_BUDGET "
                 "environment variable")
        raise ValueError(f"unknown budget {name!r}: choose one of {_preset_names()} ({where})")
    return BUDGETS[name]


def _preset_names() -> str:
    return ", ".join(sorted(BUDGETS))


# ---------------------------------------------------------------------------
# CPU threads

# Below this many parameters a model's matrix products take microseconds, and
# splitting each one over threads costs more in hand-offs than it saves: every
# operation waits for its slowest thread, and on a busy machine a thread that
# loses its core stalls all the others (measured in lesson 06 at 17x slower).
SMALL_MODEL_PARAMS = 5_000_000
_threads: int | None = None


def cpu_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def idle_cores() -> float:
    """Cores left over by other programs: this process's cores minus the 1-minute load."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows
        load = 0.0
    return max(0.0, cpu_cores() - load)


def choose_threads(n_params: int, cores: int, idle: float) -> tuple[int, str]:
    """How many CPU threads a model of ``n_params`` parameters should get, and why."""
    if n_params < SMALL_MODEL_PARAMS:
        size = f"{n_params / 1e6:.1f} M" if n_params >= 100_000 else f"{n_params:,}"
        return 1, (f"models of up to {size} parameters (< {SMALL_MODEL_PARAMS / 1e6:.0f} M) "
                   "run small matrix products, where extra threads cost more than they save")
    usable = max(1, min(cores, int(idle + 0.5)))
    if usable == 1:
        return 1, f"other programs keep the {cores} core(s) busy (about {idle:.1f} idle)"
    return usable, f"a {n_params / 1e6:.0f} M-parameter model on {usable} idle of {cores} core(s)"


def configure_threads(n_params: int | None = None, *, verbose: bool = True) -> int:
    """Set the CPU thread count for this notebook from the model size and the machine.

    ``n_params`` is the largest model the lesson trains (default: the budget's
    GPT, about 12 * n_layer * n_embd**2). Models under ``SMALL_MODEL_PARAMS``
    get one thread; larger ones get the cores that other programs leave idle.
    ``LMCOURSE_THREADS=N`` overrides the choice. On a GPU the CPU only feeds
    the device, so the count is left as PyTorch set it. TensorFlow gets the
    same count when ``setup_tensorflow()`` first imports it. Prints what it
    chose and why; returns the count.
    """
    global _threads
    from lmcourse.validate import positive_int

    forced = os.environ.get("LMCOURSE_THREADS", "").strip()
    if forced:
        threads, why = positive_int("LMCOURSE_THREADS", int(forced)), "LMCOURSE_THREADS is set"
    elif device().type != "cpu":
        threads, why = torch.get_num_threads(), f"the model runs on {device().type}; the CPU only feeds it"
    else:
        if n_params is None:
            b = budget()
            n_params = 12 * b.n_layer * b.n_embd ** 2
        n_params = positive_int("n_params", n_params)
        threads, why = choose_threads(n_params, cpu_cores(), idle_cores())
    torch.set_num_threads(threads)
    _threads = threads
    if "tensorflow" in sys.modules:
        _set_tensorflow_threads(sys.modules["tensorflow"], threads)
    if verbose:
        print(f"CPU threads: {threads} ({why})")
    return threads


def _set_tensorflow_threads(tf, threads: int) -> None:
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # TensorFlow already ran an op: its thread pools are fixed for this process


# ---------------------------------------------------------------------------
# Mixed precision


@dataclass(frozen=True)
class Precision:
    """How a forward pass runs on ``device``: full precision, bf16 or fp16 autocast.

    ``precision()`` chooses: by default bf16 on a CUDA GPU that supports it
    (fp32's 8 exponent bits, so no loss scaling), else fp16 with a gradient
    scaler, and fp32 on CPU and MPS; ``precision(dev, "bf16")`` asks for one.
    """

    device_type: str
    dtype: torch.dtype | None  # None means full precision

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        # Only fp16 needs loss scaling: its 5-bit exponent underflows small gradients.
        return torch.amp.GradScaler(self.device_type, enabled=self.dtype == torch.float16)


PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def precision(dev: torch.device | str | None = None, dtype: str = "auto", *, enabled: bool = True) -> Precision:
    """The precision of forward passes on ``dev`` (default: ``device()``).

    ``dtype="auto"``: bf16 autocast on a CUDA GPU with bf16, fp16 (with a grad
    scaler) on an older one, fp32 elsewhere; ``enabled=False`` forces fp32.
    "fp32", "bf16" or "fp16" ask for that one: bf16 and fp16 autocast run on
    CUDA and on the CPU (where bf16 matmuls may well be slower than fp32: most
    CPUs have no 16-bit matrix units); other devices run fp32 only.
    """
    dev = torch.device(dev) if dev is not None else device()
    if dtype not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {dtype!r}")
    if dtype == "auto":
        if not enabled or dev.type != "cuda":
            return Precision(dev.type, None)
        return Precision(dev.type, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    if dtype != "fp32":
        if dev.type not in ("cuda", "cpu"):
            raise ValueError(f"{dtype} autocast is supported here on CUDA and the CPU, not on {dev.type}: "
                             "use precision 'fp32' or 'auto'")
        if dtype == "bf16" and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("this GPU has no bf16 support (it arrived with Ampere, compute capability 8.0): "
                             "use precision 'fp16', which trains with a gradient scaler, or 'auto'")
    return Precision(dev.type, _DTYPES[dtype])


# ---------------------------------------------------------------------------
# TensorFlow


def setup_tensorflow():
    """Import TensorFlow quietly, let it grow GPU memory as needed, apply the seed.

    Returns the ``tensorflow`` module. Without memory growth TensorFlow grabs
    all GPU memory at start and PyTorch in the same notebook gets none.
    """
    quiet_tensorflow_env()
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    if _threads is not None:
        _set_tensorflow_threads(tf, _threads)
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass  # already initialised: growth can only be set before first use
    if _last_seed is not None:
        tf.random.set_seed(_last_seed)
    return tf


def environment_report() -> dict[str, str]:
    """Versions and hardware, for the welcome notebook and bug reports."""
    import platform

    report = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": str(device()),
        "cuda": torch.version.cuda or "none",
        "budget": budget_name(),
        "colab": str(in_colab()),
        "cpu threads": str(torch.get_num_threads()),
    }
    if torch.cuda.is_available():
        report["gpu"] = torch.cuda.get_device_name(0)
    return report
