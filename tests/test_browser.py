"""Lesson 12's quiz in a real browser: JupyterLab, headless Chromium, a click, the feedback.

The test starts JupyterLab on a free port with every Jupyter and home directory
under ``tmp_path``, opens the drills notebook, runs its cells up to the quiz,
clicks an answer and waits for the feedback to show. The screenshot goes to
``$LMCOURSE_BROWSER_SHOTS`` when set, else to ``tmp_path``.

While ``notebooks/12_interview_drills.ipynb`` does not exist yet, the test writes a
scratch notebook (see ``browser_helpers.scratch_notebook``) so the harness itself
is exercised end to end.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest

from browser_helpers import (CHOICE_CLASS, FEEDBACK_CLASS, JS_KERNEL_READY, JS_RUN_THROUGH,
                             LESSON, QUIZ_MODULE, SKIP_REASON, find_browser, make_driver,
                             quiz_cell_index, scratch_notebook, start_lab)

NOTEBOOK_NAME = "12_interview_drills.ipynb"
FEEDBACK_WORDS = ("Right", "Not quite", "正确", "不对")


@pytest.fixture
def browser_paths():
    found = find_browser()
    if found is None:
        pytest.skip(SKIP_REASON)
    return found


@pytest.fixture
def lab(tmp_path, browser_paths):
    server = start_lab(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def driver(tmp_path, lab, browser_paths):
    browser, chromedriver = browser_paths
    chrome = make_driver(browser, chromedriver, tmp_path, lab.env)
    yield chrome
    chrome.quit()


def place_notebook(root: Path) -> nbformat.NotebookNode:
    """Copy lesson 12 into the server's root, or write the scratch notebook when it is missing."""
    if LESSON.exists():
        notebook = nbformat.read(LESSON, as_version=4)
    else:
        notebook = scratch_notebook(use_real_quiz=QUIZ_MODULE.exists())
    nbformat.write(notebook, root / NOTEBOOK_NAME)
    return notebook


def shots_dir(tmp_path: Path) -> Path:
    where = os.environ.get("LMCOURSE_BROWSER_SHOTS")
    path = Path(where) if where else tmp_path
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait_for(what: str, condition, timeout: float, interval: float = 0.25):
    """Poll condition() until it returns something truthy; AssertionError naming what after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def page_report(chrome, lab) -> str:
    """The page's visible text, the browser console and the server log, for a failure message."""
    parts = []
    try:
        parts.append("--- page text ---\n" + chrome.find_element("tag name", "body").text[-4000:])
    except Exception as err:  # the page may be gone; say so instead of hiding the real failure
        parts.append(f"--- page text unavailable: {err!r}")
    try:
        console = [entry["message"] for entry in chrome.get_log("browser")][-30:]
        parts.append("--- browser console ---\n" + "\n".join(console))
    except Exception as err:
        parts.append(f"--- browser console unavailable: {err!r}")
    parts.append("--- server log (tail) ---\n" + lab.log_tail())
    return "\n".join(parts)


def visible_texts(chrome, css_class: str) -> list[str]:
    return [element.text for element in chrome.find_elements("css selector", f".{css_class}")
            if element.is_displayed()]


@pytest.mark.timeout(240)
def test_quiz_click_shows_feedback(tmp_path, lab, driver, capsys):
    notebook = place_notebook(lab.root)
    quiz_index = quiz_cell_index(notebook)
    started = time.monotonic()
    try:
        driver.set_script_timeout(60)
        driver.get(f"{lab.url}lab/tree/{NOTEBOOK_NAME}?token={lab.token}")
        # The lab's shell, then the notebook panel with a started, idle kernel (up to 60 s).
        wait_for("JupyterLab to load", lambda: driver.execute_script(
            "return !!(window.jupyterapp && window.jupyterapp.shell "
            "&& document.querySelector('.jp-Notebook'))"), 60)
        wait_for("the kernel to start", lambda: driver.execute_async_script(JS_KERNEL_READY)
                 == "ready", 60, interval=0.5)
        assert not driver.find_elements("css selector", f".{CHOICE_CLASS}"), \
            "a choice button is on the page before any cell ran (saved widget output?)"

        queued = driver.execute_async_script(JS_RUN_THROUGH, quiz_index)
        assert queued == "queued", f"running the cells through the quiz failed: {queued}"

        buttons = wait_for(f"a button with class {CHOICE_CLASS}", lambda: [
            element for element in driver.find_elements("css selector",
                                                        f"button.{CHOICE_CLASS}")
            if element.is_displayed()], 90)
        feedback_before = visible_texts(driver, FEEDBACK_CLASS)
        assert all(not text.strip() for text in feedback_before), \
            f"feedback shows before any answer: {feedback_before}"

        choice = buttons[0]
        choice_label = choice.text
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", choice)
        choice.click()
        shown = wait_for(f"text in the element with class {FEEDBACK_CLASS}", lambda: [
            text for text in visible_texts(driver, FEEDBACK_CLASS) if text.strip()], 30)
        assert any(word in text for text in shown for word in FEEDBACK_WORDS), \
            f"the feedback after clicking {choice_label!r} is neither right nor wrong: {shown}"

        shot = shots_dir(tmp_path) / "lesson12_quiz_feedback.png"
        assert driver.save_screenshot(str(shot)), f"could not save the screenshot to {shot}"
        with capsys.disabled():
            print(f"\nbrowser test: clicked {choice_label!r}, feedback {shown[0]!r}; "
                  f"{time.monotonic() - started:.1f} s in the browser; screenshot {shot}")
    except Exception as err:
        try:
            driver.save_screenshot(str(shots_dir(tmp_path) / "lesson12_quiz_failure.png"))
        except Exception:
            pass
        raise AssertionError(f"{err}\n{page_report(driver, lab)}") from err
