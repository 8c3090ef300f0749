"""Fixtures shared by the unit tests."""
import pytest
import torch


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh LMCOURSE_HOME, so each test has its own progress file."""
    monkeypatch.setenv("LMCOURSE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: a second torch thread buys nothing and, on a busy machine, costs a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
