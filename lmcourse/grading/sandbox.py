"""Run one student's notebook in a process of its own, and end everything it started.

Two modes, and what each protects (the README's instructors section says the same):

``bwrap``
    Debian's bubblewrap (``apt-get install bubblewrap``), used when it is
    installed and works. The notebook runs in new user, PID, network, IPC and
    mount namespaces: no network; it sees the Python installation, the
    ``lmcourse`` package without its grading code (the references, checks and
    the grader are replaced by empty files), the course data cache read-only,
    and its own scratch folder, and nothing else of the machine (no other
    submission, no grade book, no home folder, not the course's solutions).
    It cannot see or signal the grader's processes, and when it ends, or the
    grader dies, the kernel kills every process it started.
``process``
    A plain process of the instructor's own user, for machines without
    bubblewrap. It runs in its own session and process group, in a scratch
    folder holding only a copy of its notebook, with its own HOME,
    LMCOURSE_HOME and TMPDIR, and is killed with everything it started
    (process group, session and any orphaned descendant: the grader is their
    sub-reaper). This is not a sandbox: the code can read and write any file
    the instructor's user can by absolute path, open network connections,
    and signal the grader. The grade book survives even that (see
    ``lmcourse.grading.grade``), but for a class you do not trust, install
    bubblewrap.

Both modes apply the limits in ``Limits``: the wall time of each cell and of
the whole notebook (kept by the grader's clock, not the student's), and the
memory (address space, ``RLIMIT_AS``) and file sizes of the process.
"""
from __future__ import annotations

import ctypes
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lmcourse.grading import wire
from lmcourse.grading.worker import ALLOWED
from lmcourse.validate import number, positive_int

WORKER = Path(__file__).resolve().parent / "worker.py"
GRADING_DIR = WORKER.parent
# The grading modules a sandboxed notebook needs; bwrap blanks out all the others.
WORKER_MODULES = {"__init__.py"} | {name.rsplit(".", 1)[1] + ".py" for name in ALLOWED}
MODES = ("auto", "bwrap", "process")


@dataclass(frozen=True)
class Limits:
    """What one submission may use. Every value must be positive."""

    cell_seconds: float = 120.0  # wall time of one notebook cell
    notebook_seconds: float = 900.0  # wall time of the whole submission, grading included
    memory_mb: int = 4096  # address space of the notebook's process (RLIMIT_AS)
    call_seconds: float = 5.0  # one call of a graded function on one case
    file_mb: int = 512  # largest file the notebook may write

    def __post_init__(self):
        for name in ("cell_seconds", "notebook_seconds", "call_seconds"):
            number(name, getattr(self, name), low=0, low_open=True)
        for name in ("memory_mb", "file_mb"):
            positive_int(name, getattr(self, name))


def bwrap_works() -> bool:
    """True if bubblewrap is installed and can make its namespaces here."""
    if shutil.which("bwrap") is None:
        return False
    try:
        done = subprocess.run(["bwrap", "--unshare-all", "--ro-bind", "/", "/", "true"],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def choose_mode(requested: str = "auto") -> str:
    """The sandbox mode to use: ``bwrap`` where it works (``auto``), else ``process``."""
    if requested not in MODES:
        raise ValueError(f"sandbox must be one of {', '.join(MODES)}, got {requested!r}")
    if requested == "process":
        return "process"
    if bwrap_works():
        return "bwrap"
    if requested == "bwrap":
        raise RuntimeError("--sandbox bwrap was asked for, but bubblewrap is not installed or "
                           "cannot create namespaces here (install it: apt-get install "
                           "bubblewrap; in a container it may need --privileged)")
    return "process"


class Dead(Exception):
    """The notebook's process ended (or was killed) while the grader waited for it."""


class SandboxBroken(RuntimeError):
    """The worker died before running any notebook code: a problem of this machine or
    of the limits (too little memory to start Python and torch), not of a submission."""


class Worker:
    """One sandboxed process running one copy of a notebook (``worker.py``)."""

    def __init__(self, name: str, notebook: bytes, limits: Limits, mode: str, *, budget: str,
                 data_dir: Path | None = None):
        self.limits, self.mode = limits, mode
        self.root = Path(tempfile.mkdtemp(prefix="lmcourse-grade-"))  # 0700: ours alone
        work, home, tmp = (self.root / name for name in ("work", "home", "tmp"))
        for folder in (work, home, tmp):
            folder.mkdir()
        (work / Path(name).name).write_bytes(notebook)  # the grader's copy, read at the start
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home), "TMPDIR": str(tmp), "LMCOURSE_HOME": str(home / ".lmcourse"),
            "LMCOURSE_BUDGET": budget, "LMCOURSE_CHECK_TIME_LIMIT": str(limits.call_seconds),
            "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0", "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": "1", "LMCOURSE_THREADS": "1",
        }
        if data_dir is not None:
            env["LMCOURSE_DATA"] = str(data_dir)
        command = [sys.executable, "-I", str(WORKER)]
        if mode == "bwrap":
            command = self._bwrap(data_dir) + command
        self.started = time.monotonic()
        # Until the worker hands its stderr to /dev/null (before any notebook code
        # runs), start-up errors go to this log, for startup_error().
        self.log = self.root / "worker.log"
        with open(self.log, "wb") as log, _SPAWN:  # not taken for an orphan while it starts
            self.proc = subprocess.Popen(
                command, cwd=work, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=log, start_new_session=True, preexec_fn=self._set_limits,
                close_fds=True)
            _ACTIVE.add(self)
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _bwrap(self, data_dir: Path | None) -> list[str]:
        args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session",
                "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for path in ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc"):
            args += ["--ro-bind-try", path, path]
        for path in _python_paths():
            args += ["--ro-bind", path, path]
        # The references, checks and grader stay outside: blank files in their place.
        for path in sorted(GRADING_DIR.iterdir()):
            if path.suffix == ".py" and path.name not in WORKER_MODULES:
                args += ["--ro-bind", "/dev/null", str(path)]
        if (GRADING_DIR / "__pycache__").is_dir():  # their compiled copies too
            args += ["--tmpfs", str(GRADING_DIR / "__pycache__")]
        if Path("/etc/shadow").exists():
            args += ["--ro-bind", "/dev/null", "/etc/shadow"]
        if data_dir is not None and data_dir.is_dir():
            args += ["--ro-bind", str(data_dir), str(data_dir)]
        args += ["--bind", str(self.root), str(self.root), "--chdir", str(self.root / "work")]
        return args

    def _set_limits(self) -> None:  # runs in the child, before the notebook's process starts
        import resource

        memory = self.limits.memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        size = self.limits.file_mb * 2**20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    def _read(self) -> None:
        """Move the worker's message lines into a queue; None marks its end."""
        stream = self.proc.stdout
        try:
            while True:
                line = stream.readline(wire.MAX_MESSAGE_BYTES + 1)
                if not line:
                    break
                self._lines.put(line)
        except (OSError, ValueError):
            pass
        self._lines.put(None)

    # -- talking -----------------------------------------------------------

    def send(self, **message) -> None:
        try:
            self.proc.stdin.write(wire.dumps(message))
            self.proc.stdin.flush()
        except (OSError, ValueError):
            raise Dead(self.why_dead()) from None

    def receive(self, seconds: float) -> dict | None:
        """The next message, or None if none came within ``seconds``; ``Dead`` if it ended."""
        try:
            line = self._lines.get(timeout=max(seconds, 0.0))
        except queue.Empty:
            return None
        if line is None:
            raise Dead(self.why_dead())
        try:
            return wire.loads(line)
        except wire.WireError as exc:
            self.kill()
            raise Dead(f"it wrote a message the grader cannot read ({exc})") from None

    def startup_error(self) -> str:
        """The last lines the worker wrote before the notebook started, if any."""
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-3:])

    def seconds_left(self) -> float:
        return self.limits.notebook_seconds - (time.monotonic() - self.started)

    def why_dead(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "it stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            return f"its process was killed by signal {name}"
        error = self.startup_error()  # the worker's own last words, if it failed itself
        return f"its process exited with code {code}" + (f": {error[-300:]}" if error else "")

    # -- ending ------------------------------------------------------------

    def kill(self) -> None:
        """End the notebook's process and everything it started; remove the scratch folder."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        _ACTIVE.discard(self)
        kill_orphans()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


_ACTIVE: set[Worker] = set()  # running workers, so that Ctrl-C can end them all
_SPAWN = threading.Lock()  # a worker being started is not yet in _ACTIVE


def kill_all_workers() -> None:
    for worker in list(_ACTIVE):
        worker.kill()


def _python_paths() -> list[str]:
    """Folders the notebook's Python needs: the installation, the venv, lmcourse."""
    import sysconfig

    import lmcourse

    paths = {sys.base_prefix, sys.prefix, str(Path(lmcourse.__file__).resolve().parent)}
    paths |= {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths |= {p for p in sys.path if p and "site-packages" in p}
    # Both each path and its real target (pyenv and venvs are full of symlinks).
    existing = {p for p in paths if Path(p).is_dir()}
    existing |= {str(Path(p).resolve()) for p in existing}
    # Binding a folder binds what is below it; keep only the outermost ones.
    keep = sorted(existing, key=len)
    return [p for i, p in enumerate(keep)
            if not any(p.startswith(q.rstrip("/") + "/") for q in keep[:i])]


# ---------------------------------------------------------------------------
# Orphans: processes a notebook detached (double fork, setsid) to outlive it

_PR_SET_CHILD_SUBREAPER = 36
_known_children: set[int] | None = None  # None: not adopting


def adopt_orphans(on: bool) -> None:
    """Make this process the sub-reaper of its descendants (Linux), or stop.

    A detached grandchild is then re-parented to the grader instead of to
    init, so ``kill_orphans`` can find and end it.
    """
    global _known_children
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)
    _known_children = set(_children()) if on else None


def _children() -> list[int]:
    me = str(os.getpid())
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[1] == me:
            found.append(int(entry.name))
    return found


def kill_orphans() -> None:
    """Kill every child adopted since ``adopt_orphans(True)``, until none is left."""
    if _known_children is None:
        return
    for _ in range(100):
        with _SPAWN:
            running = {worker.proc.pid for worker in list(_ACTIVE)}
            strays = [pid for pid in _children() if pid not in _known_children | running]
        if not strays:
            return
        for pid in strays:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (OSError, ChildProcessError):
                pass
        time.sleep(0.02)
