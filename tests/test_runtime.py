import os
import random
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from lmcourse import runtime


def test_device_is_cpu_without_accelerators(monkeypatch):
    monkeypatch.delenv("LMCOURSE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert runtime.device().type == expected


def test_device_can_be_forced(monkeypatch):
    monkeypatch.setenv("LMCOURSE_DEVICE", "cpu")
    assert runtime.device() == torch.device("cpu")


def test_cuda_preferred_over_mps(monkeypatch):
    monkeypatch.delenv("LMCOURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.device().type == "cuda"


def test_budget_presets_and_override(monkeypatch):
    monkeypatch.setenv("LMCOURSE_BUDGET", "cpu")
    assert runtime.budget().name == "cpu"
    assert runtime.budget("smoke").name == "smoke"
    monkeypatch.setenv("LMCOURSE_BUDGET", "SMOKE")
    assert runtime.budget().name == "smoke"


def test_budget_defaults(monkeypatch):
    monkeypatch.delenv("LMCOURSE_BUDGET", raising=False)
    monkeypatch.setenv("CI", "true")
    assert runtime.budget().name == "smoke"
    monkeypatch.delenv("CI")
    assert runtime.budget().name == ("gpu" if torch.cuda.is_available() else "cpu")


def test_unknown_budget_lists_valid_names(monkeypatch):
    monkeypatch.setenv("LMCOURSE_BUDGET", "huge")
    with pytest.raises(ValueError, match="huge.*cpu, gpu, smoke"):
        runtime.budget()


def test_budgets_grow_from_smoke_to_gpu():
    smoke, cpu, gpu = (runtime.BUDGETS[n] for n in ("smoke", "cpu", "gpu"))
    for field in ("corpus_chars", "markov_tokens", "train_steps", "n_embd", "block_size"):
        assert getattr(smoke, field) <= getattr(cpu, field) <= getattr(gpu, field), field
    assert smoke.replace(train_steps=7).train_steps == 7
    assert smoke.train_steps != 7  # replace() copies, the preset is untouched


def test_seed_everything_repeats_python_numpy_torch():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    runtime.seed_everything(123)
    first = draw()
    runtime.seed_everything(123)
    assert draw() == first
    runtime.seed_everything(124)
    assert draw() != first


def test_precision_is_full_on_cpu():
    p = runtime.precision("cpu")
    assert p.dtype is None and p.name == "fp32"
    assert not p.grad_scaler().is_enabled()
    with p.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_precision_on_cuda_picks_bf16_or_fp16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert runtime.precision("cuda").dtype == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert runtime.precision("cuda").dtype == torch.bfloat16
    assert runtime.precision("cuda", enabled=False).dtype is None


def test_environment_report_names_versions():
    report = runtime.environment_report()
    assert report["torch"] == torch.__version__
    assert report["device"] in {"cpu", "cuda", "mps"}


def test_tensorflow_imports_quietly_and_seeds():
    """Importing lmcourse first keeps TF's timestamped C++ log lines out of notebooks."""
    code = (
        "import lmcourse\n"
        "from lmcourse.runtime import seed_everything, setup_tensorflow\n"
        "seed_everything(7)\n"
        "tf = setup_tensorflow()\n"
        "a = float(tf.random.uniform(()))\n"
        "seed_everything(7)\n"
        "b = float(tf.random.uniform(()))\n"
        "print('same' if a == b else 'different')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "KERAS_"))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "same"
    noise = [line for line in out.stderr.splitlines()
             if re.match(r"^(\d{4}-\d\d-\d\d \d\d:\d\d|[IWE]\d{4} )", line) or "oneDNN" in line]
    assert noise == [], noise


# ---------------------------------------------------------------------------
# CPU threads


@pytest.fixture
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    runtime._threads = None


@pytest.mark.parametrize("n_params, cores, idle, expected", [
    (800_000, 16, 16.0, 1),          # a lesson-sized model: one thread, however many cores
    (4_999_999, 2, 2.0, 1),
    (20_000_000, 8, 8.0, 8),         # a big model on an idle machine: every core
    (20_000_000, 8, 3.2, 3),         # ... only the cores other programs leave
    (20_000_000, 2, 0.3, 1),         # a busy 2-core machine: one
    (20_000_000, 4, 9.0, 4),         # never more than this process may use
])
def test_choose_threads(n_params, cores, idle, expected):
    threads, why = runtime.choose_threads(n_params, cores, idle)
    assert threads == expected and why


def test_configure_threads_sets_torch_and_says_why(monkeypatch, capsys, keep_threads):
    monkeypatch.delenv("LMCOURSE_THREADS", raising=False)
    monkeypatch.setenv("LMCOURSE_DEVICE", "cpu")
    monkeypatch.setattr(runtime, "cpu_cores", lambda: 8)
    monkeypatch.setattr(runtime, "idle_cores", lambda: 6.0)
    assert runtime.configure_threads(100_000) == 1 == torch.get_num_threads()
    assert "CPU threads: 1 (models of up to 0.1 M parameters" in capsys.readouterr().out
    assert runtime.configure_threads(50_000_000, verbose=False) == 6 == torch.get_num_threads()
    assert capsys.readouterr().out == ""


def test_configure_threads_default_size_is_the_budget_gpt(monkeypatch, keep_threads):
    monkeypatch.delenv("LMCOURSE_THREADS", raising=False)
    monkeypatch.setenv("LMCOURSE_DEVICE", "cpu")
    seen = []
    monkeypatch.setattr(runtime, "choose_threads",
                        lambda n, cores, idle: (seen.append(n), (1, "test"))[1])
    runtime.configure_threads(verbose=False)
    b = runtime.budget()
    assert seen == [12 * b.n_layer * b.n_embd ** 2]


def test_configure_threads_override_and_bad_values(monkeypatch, keep_threads):
    monkeypatch.setenv("LMCOURSE_THREADS", "3")
    assert runtime.configure_threads(verbose=False) == 3 == torch.get_num_threads()
    monkeypatch.setenv("LMCOURSE_THREADS", "0")
    with pytest.raises(ValueError, match="LMCOURSE_THREADS must be an integer >= 1"):
        runtime.configure_threads()
    monkeypatch.delenv("LMCOURSE_THREADS")
    monkeypatch.setenv("LMCOURSE_DEVICE", "cpu")
    with pytest.raises(TypeError, match="n_params must be an integer"):
        runtime.configure_threads(2.5)


def test_tensorflow_gets_the_same_threads():
    # In a fresh process: TensorFlow's thread pools are fixed once it has run an op.
    code = ("import os; os.environ['LMCOURSE_THREADS'] = '1'\n"
            "from lmcourse import runtime\n"
            "runtime.configure_threads(verbose=False)\n"
            "tf = runtime.setup_tensorflow()\n"
            "print(tf.config.threading.get_intra_op_parallelism_threads(),"
            " tf.config.threading.get_inter_op_parallelism_threads())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1"]
