"""A JupyterLab server and a headless Chromium for the browser test of lesson 12's quiz.

Everything lives under one temporary directory: the server's root, its runtime,
config and data dirs, ``HOME``, ``LMCOURSE_HOME`` and the browser's profile, so
the test neither reads a user's Jupyter settings nor writes into anyone's home.

The browser is Debian's ``chromium`` driven through Debian's ``chromedriver``;
the driver's path is always passed, so Selenium Manager never tries to download one.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
LESSON = REPO / "notebooks" / "12_interview_drills.ipynb"
QUIZ_MODULE = REPO / "lmcourse" / "drills" / "quiz.py"
CHOICE_CLASS = "lmcourse-drill-choice"
FEEDBACK_CLASS = "lmcourse-drill-feedback"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
SKIP_REASON = ("no Chromium: install Debian's browser with 'apt-get install chromium "
               "chromium-driver' (and pip install selenium) to run the browser test")


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when either one or selenium is missing."""
    browser = next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None
    if browser is None or driver is None:
        return None
    return browser, driver


def free_port() -> int:
    """A port nothing listens on now (the server retries the next ones if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def isolated_env(base: Path) -> dict[str, str]:
    """The environment for the server, its kernels and the browser: every home-like dir under base."""
    dirs = {
        "HOME": "home", "LMCOURSE_HOME": "lmcourse-home", "IPYTHONDIR": "ipython",
        "JUPYTER_CONFIG_DIR": "jupyter-config", "JUPYTER_DATA_DIR": "jupyter-data",
        "JUPYTER_RUNTIME_DIR": "jupyter-runtime", "JUPYTERLAB_SETTINGS_DIR": "lab-settings",
        "JUPYTERLAB_WORKSPACES_DIR": "lab-workspaces", "XDG_CONFIG_HOME": "xdg-config",
        "XDG_CACHE_HOME": "xdg-cache", "XDG_DATA_HOME": "xdg-data", "MPLCONFIGDIR": "mpl",
    }
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("JUPYTER", "IPYTHON"))}
    for key, name in dirs.items():
        path = base / name
        path.mkdir(parents=True, exist_ok=True)
        env[key] = str(path)
    # No "get notified about Jupyter news?" toast over the page (and no request for news).
    notification = base / "lab-settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True, exist_ok=True)
    (notification / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    env["LMCOURSE_BUDGET"] = "smoke"
    env["MPLBACKEND"] = "Agg"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class LabServer:
    """A running ``jupyter lab``: its base URL, token, log file and process."""
    process: subprocess.Popen
    url: str
    token: str
    root: Path
    log_path: Path
    env: dict[str, str] = field(repr=False)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as err:
            return f"(no server log: {err})"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Interrupt the server (it shuts its kernels down), then kill it if it lingers."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        time.sleep(0.2)
        if self.process.poll() is None:
            # Jupyter asks for confirmation on the first Ctrl-C when attached to a terminal;
            # a second one (or SIGTERM) always stops it.
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_lab(base: Path, timeout: float = 60.0) -> LabServer:
    """Start JupyterLab rooted at base/root and wait until its REST API answers."""
    root = base / "root"
    root.mkdir(parents=True, exist_ok=True)
    env = isolated_env(base)
    token = secrets.token_hex(16)
    log_path = base / "jupyter-lab.log"
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
        f"--port={free_port()}", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
        # window.jupyterapp, so the test can run cells through the lab's own commands.
        "--LabApp.expose_app_in_browser=True",
        # Nothing from the network: no update check, no news feed.
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.news_url=",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = LabServer(process, "", token, root, log_path, env)
    runtime = Path(env["JUPYTER_RUNTIME_DIR"])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {process.returncode}:\n"
                                   f"{server.log_tail()}")
            # The server writes its address (the port it really took) to jpserver-PID.json.
            info_file = runtime / f"jpserver-{process.pid}.json"
            if info_file.exists():
                try:
                    info = json.loads(info_file.read_text())
                except json.JSONDecodeError:
                    info = None  # written as we read it; try again
                if info:
                    url = f"http://127.0.0.1:{info['port']}{info.get('base_url', '/')}"
                    try:
                        with urllib.request.urlopen(f"{url}api/status?token={token}",
                                                    timeout=5) as answer:
                            if answer.status == 200:
                                server.url = url
                                return server
                    except (urllib.error.URLError, OSError):
                        pass
            time.sleep(0.25)
        raise RuntimeError(f"jupyter lab did not answer within {timeout:.0f} s:\n"
                           f"{server.log_tail()}")
    except BaseException:
        server.stop()
        raise


def make_driver(browser: str, driver_path: str, base: Path, env: dict[str, str]):
    """Headless Chromium through the given chromedriver (never a downloaded one)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,1600", "--no-first-run", "--disable-extensions",
                     "--disable-background-networking", "--disable-sync",
                     f"--user-data-dir={base / 'chromium-profile'}"):
        options.add_argument(argument)
    options.binary_location = browser
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=driver_path, env=env,
                      log_output=str(base / "chromedriver.log"))
    return webdriver.Chrome(service=service, options=options)


def quiz_cell_index(notebook: nbformat.NotebookNode) -> int:
    """The index (among all cells) of the first code cell that calls quiz(."""
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and "quiz(" in cell.source:
            return index
    raise ValueError("the notebook has no code cell whose source contains 'quiz('")


def scratch_notebook(use_real_quiz: bool) -> nbformat.NotebookNode:
    """A stand-in for lesson 12 while it is missing: the quiz from lmcourse.drills.quiz when
    that module exists, otherwise a hand-made button and feedback with the same CSS classes."""
    intro = nbformat.v4.new_markdown_cell("Scratch notebook for the browser test.")
    if use_real_quiz:
        code = ("from lmcourse.drills.quiz import quiz\n"
                "quiz(kinds=['choice'], count=1, progress=False)")
    else:
        code = ("import ipywidgets as widgets\n"
                "feedback = widgets.HTML('')\n"
                f"feedback.add_class('{FEEDBACK_CLASS}')\n"
                "def answer(button):\n"
                "    right = button.description == 'b) 4'\n"
                "    feedback.value = ('Right.' if right else 'Not quite: the answer is b) 4')\n"
                "buttons = []\n"
                "for label in ('a) 3', 'b) 4', 'c) 5'):\n"
                "    button = widgets.Button(description=label)\n"
                f"    button.add_class('{CHOICE_CLASS}')\n"
                "    button.on_click(answer)\n"
                "    buttons.append(button)\n"
                "def quiz(question):\n"
                "    return widgets.VBox([widgets.HTML(question), widgets.HBox(buttons), feedback])\n"
                "quiz('2 + 2 = ?')")
    notebook = nbformat.v4.new_notebook(cells=[intro, nbformat.v4.new_code_cell(code)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    return notebook


# JavaScript run in the page (through Selenium's execute_async_script; the last argument
# is the callback). They use window.jupyterapp, which --LabApp.expose_app_in_browser gives.
JS_KERNEL_READY = """
const done = arguments[arguments.length - 1];
const app = window.jupyterapp;
const panel = app && app.shell.currentWidget;
if (!panel || !panel.sessionContext) { done('no notebook panel yet'); return; }
panel.sessionContext.ready.then(() => {
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  done(kernel && kernel.status === 'idle' && panel.content.widgets.length > 0
       ? 'ready' : 'kernel ' + (kernel ? kernel.status : 'missing'));
}, (err) => done('session failed: ' + err));
"""

JS_RUN_THROUGH = """
const index = arguments[0];
const done = arguments[arguments.length - 1];
const app = window.jupyterapp;
const panel = app.shell.currentWidget;
panel.content.activeCellIndex = index;
// Cells above the quiz cell, then the quiz cell itself; the kernel runs them in order.
app.commands.execute('notebook:run-all-above')
  .then(() => app.commands.execute('notebook:run-cell'))
  .then(() => done('queued'), (err) => done('failed: ' + err));
"""
