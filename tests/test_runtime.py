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
