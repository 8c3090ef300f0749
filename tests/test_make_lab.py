"""`make lab` serves the whole course: lessons, exercises and solutions, lesson 00 first."""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.geturl(), response.read()


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    port, token = _free_port(), "course-test-token"
    extra = (f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.port_retries=0 "
             f"--IdentityProvider.token={token}")
    env = os.environ | {"JUPYTER_RUNTIME_DIR": str(tmp_path_factory.mktemp("jupyter-runtime"))}
    # -o: take the venv as installed (the test runs inside it), so make only starts the server.
    server = subprocess.Popen(["make", "-s", "-o", ".venv/.installed", "lab", f"LAB_EXTRA={extra}"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _get(f"{base}/api/status?token={token}")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"make lab did not start a server: {server.stderr.read().decode()[-2000:]}")
                time.sleep(0.5)
        yield base, token
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_the_file_browser_reaches_exercises_and_solutions(lab_server):
    base, token = lab_server
    listing = {}
    for folder in ("", "exercises", "solutions", "notebooks"):
        status, _, body = _get(f"{base}/api/contents/{folder}?token={token}")
        assert status == 200
        listing[folder] = {item["name"] for item in json.loads(body)["content"]}
    assert {"notebooks", "exercises", "solutions", "README.md"} <= listing[""]
    assert {p.name for p in (ROOT / "exercises").glob("*.ipynb")} <= listing["exercises"]
    assert {p.name for p in (ROOT / "solutions").glob("*.ipynb")} <= listing["solutions"]
    assert "00_welcome.ipynb" in listing["notebooks"]


def test_lesson_00_opens_first(lab_server):
    base, token = lab_server
    _, final_url, _ = _get(f"{base}/?token={token}")
    assert final_url.split("?")[0].endswith("/lab/tree/notebooks/00_welcome.ipynb")
