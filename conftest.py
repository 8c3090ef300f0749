"""Test-wide settings for unit tests and notebook runs (nbval).

Notebook kernels are child processes: they inherit the environment set here,
so every lesson runs at the `smoke` budget under tests.
"""
import os
import tempfile
import time
from collections import defaultdict

os.environ.setdefault("LMCOURSE_BUDGET", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
# Quiz progress and grade books go to a throw-away home, not the learner's.
os.environ.setdefault("LMCOURSE_HOME", tempfile.mkdtemp(prefix="lmcourse-home-"))

_notebook_seconds: dict[str, float] = defaultdict(float)
_session_start = time.perf_counter()


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        _notebook_seconds[path] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _notebook_seconds:
        return
    tr = terminalreporter
    tr.section("wall time per notebook")
    for path, seconds in sorted(_notebook_seconds.items()):
        tr.write_line(f"{seconds:7.1f} s  {path}")
    total = sum(_notebook_seconds.values())
    tr.write_line(f"{total:7.1f} s  all notebooks "
                  f"(whole run {time.perf_counter() - _session_start:.0f} s)")
