"""The terminal drill: a scripted practice run, EOF, a mock interview against a fake clock,
Chinese output, class mode, and a smoke run on the real bank."""
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lmcourse.drills import bank, classroom, terminal
from lmcourse.drills.progress import DrillProgress

ROOT = Path(__file__).resolve().parents[1]


def _q(qid, lesson, kind, difficulty="easy", **extra):
    lines = [f"  - id: {qid}", f'    lesson: "{lesson}"', "    tags: [tiny]",
             f"    difficulty: {difficulty}", f"    kind: {kind}"]
    lines += [f"    {line}" for line in extra.pop("body", [])]
    lines += [f"    question: {{en: 'Question {qid} n={{n}}?', zh: '问题 {qid} n={{n}}？'}}"
              if kind == "numeric" else
              f"    question: {{en: 'Question {qid}?', zh: '问题 {qid}？'}}",
              f"    answer: {{en: 'Answer of {qid}.', zh: '{qid} 的答案。'}}",
              f"    explanation: {{en: 'Because {qid}.', zh: '因为 {qid}。'}}",
              f"    reference: Lesson {lesson}, {qid}"]
    return "\n".join(lines)


CHOICE = ["choices:", "  - {en: right, zh: 对}", "  - {en: wrong, zh: 错}", "correct: 0"]
NUMERIC = ["numeric:", "  formula: 2 * n", "  values: {n: 3}", "  unit: {en: things, zh: 个}",
           "  package: 2 * n"]
CODE = ["code:", "  exercise: softmax", "  function: softmax", "  broken: |",
        "    def softmax(logits, dim=-1):", "        e = torch.exp(logits)",
        "        return e / e.sum(dim=dim, keepdim=True)", "  fixed: |",
        "    def softmax(logits, dim=-1):",
        "        e = torch.exp(logits - logits.max(dim=dim, keepdim=True).values)",
        "        return e / e.sum(dim=dim, keepdim=True)"]
FIXED = ["def softmax(logits, dim=-1):",
         "    e = torch.exp(logits - logits.max(dim=dim, keepdim=True).values)",
         "    return e / e.sum(dim=dim, keepdim=True)", "."]
SHORT = ["short: {en: 'Quick version.', zh: '简短版本。'}"]


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("LMCOURSE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "tiny.yaml"
    path.write_text("questions:\n" + "\n".join([
        _q("c1", "01", "choice", body=CHOICE),
        _q("n1", "07", "numeric", "medium", body=NUMERIC),
        _q("k1", "01", "code", "hard", body=CODE),
        _q("s1", "06", "short", "medium", body=SHORT),
        _q("c2", "06", "choice", "hard", body=CHOICE),
        _q("n2", "08", "numeric", body=NUMERIC),
    ]) + "\n", encoding="utf-8")
    assert [q.id for q in bank.load_questions([path])] == ["c1", "n1", "k1", "s1", "c2", "n2"]
    return path


def feed(monkeypatch, lines, on_read=None):
    """Answer input() with ``lines``, then EOF; ``on_read(prompt)`` runs before each answer."""
    lines = list(lines)
    prompts = []

    def fake_input(prompt=""):
        print(prompt, end="")
        prompts.append(prompt)
        if on_read:
            on_read(prompt)
        if not lines:
            raise EOFError
        return lines.pop(0)

    monkeypatch.setattr("builtins.input", fake_input)
    return prompts


def test_scripted_practice(tiny, monkeypatch, capsys):
    # choice right, numeric wrong, code fixed, short self-assessed, skip, quit
    feed(monkeypatch, ["a", "7"] + FIXED + ["", "y", "s", "q"])
    assert terminal.main(["--bank", str(tiny)]) == 0
    out = capsys.readouterr().out
    assert "  a) right" in out and "  b) wrong" in out
    assert "Not quite: the answer is 6 things" in out
    assert "e = torch.exp(logits)" in out  # the broken snippet is shown
    assert re.search(r"Right: passes \d+/\d+ checks", out)
    assert "Model answer: Answer of s1." in out and "In 30 seconds: Quick version." in out
    assert "Why: Because n1." in out and "Reference: Lesson 07, n1" in out
    assert "Skipped." in out
    assert "You got 3 of 4 right (1 skipped)." in out
    assert "  01 language modelling basics: 2/2" in out and "  07 training larger models: 0/1" in out
    cards = DrillProgress().cards()
    assert {k: c.box for k, c in cards.items()} == {"c1": 2, "n1": 1, "k1": 2, "s1": 2}
    assert "Due now: 1 card(s)" in out  # n1, answered wrong, is due again at once


def test_due_questions_come_first_and_answered_ones_wait(tiny, monkeypatch, capsys):
    DrillProgress().record("c2", False)
    DrillProgress().record("c1", True)  # not due for a day: left out
    feed(monkeypatch, ["a", "6"])
    terminal.main(["--bank", str(tiny), "--count", "2"])
    out = capsys.readouterr().out
    assert out.index("Question c2?") < out.index("Question n1 n=3?")
    assert "Question c1?" not in out
    assert "You got 2 of 2 right" in out


def test_bad_letters_and_numbers_are_asked_again(tiny, monkeypatch, capsys):
    feed(monkeypatch, ["z", "a", "lots", "6e0"])
    terminal.main(["--bank", str(tiny), "--count", "2"])
    out = capsys.readouterr().out
    assert "Type one letter from a to b" in out and "expected a number such as 1.5e9" in out
    assert "You got 2 of 2 right" in out


def test_eof_ends_cleanly(tiny, monkeypatch, capsys):
    feed(monkeypatch, ["a"])  # then the input ends in the middle of the numeric question
    assert terminal.main(["--bank", str(tiny)]) == 0
    out = capsys.readouterr().out
    assert "You got 1 of 1 right (0 skipped)." in out
    assert set(DrillProgress().cards()) == {"c1"}


def test_eof_inside_a_code_answer(tiny, monkeypatch, capsys):
    feed(monkeypatch, FIXED[:2])
    assert terminal.main(["--bank", str(tiny), "--kind", "code"]) == 0
    assert "You got 0 of 0 right" in capsys.readouterr().out
    assert DrillProgress().cards() == {}


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_mock_interview_runs_out_of_time(tiny, monkeypatch, capsys, tmp_path):
    clock = FakeClock()

    def answer_takes_25_seconds(prompt):
        clock.t += 25

    def right_answer(prompt):
        return "a" if "a-b" in prompt else "6"

    prompts = []

    def fake_input(prompt=""):
        print(prompt, end="")
        prompts.append(prompt)
        answer_takes_25_seconds(prompt)
        return right_answer(prompt)

    monkeypatch.setattr("builtins.input", fake_input)
    report = tmp_path / "mock.md"
    args = ["--bank", str(tiny), "--mock", "--minutes", "1", "--kind", "choice", "--kind",
            "numeric", "--seed", "4", "--report", str(report)]
    assert terminal.main(args, clock=clock) == 0
    out = capsys.readouterr().out
    # 0-25 s and 25-50 s answered; the third answer comes at 75 s, after the minute; no fourth
    assert len(prompts) == 3
    assert "time left 01:00" in out and "time left 00:35" in out and "time left 00:10" in out
    assert "Time was up before this answer" in out and "Time is up." in out
    assert "Right." not in out and "Not quite" not in out.split("# Mock interview report")[0]
    text = report.read_text(encoding="utf-8")
    assert "Score: 2 / 4" in text
    assert text.count("(not answered)") == 2
    assert "## By kind:" in text and "## By lesson:" in text
    assert text.count(": 25 s") == 3
    assert "- Why: Because " in text and "- Model answer: Answer of " in text
    assert text in out  # the printed report is the file
    assert sum(c.reviews for c in DrillProgress().cards().values()) == 2


def test_mock_short_answers_are_self_assessed_at_the_end(tiny, monkeypatch, capsys):
    feed(monkeypatch, ["it is parallel", "n"])
    assert terminal.main(["--bank", str(tiny), "--mock", "--kind", "short"]) == 0
    out = capsys.readouterr().out
    assessed = out.split("Self-assessment of your short answers:")[1]
    assert "Your answer: it is parallel" in assessed and "Model answer: Answer of s1." in assessed
    assert "Score: 0 / 1" in out
    assert DrillProgress().card("s1").box == 1


def test_mock_questions_mix_kinds_lessons_and_are_seeded(tiny):
    pool = bank.load_questions([tiny])
    picks = terminal.mock_questions(pool, 3, random.Random(0))
    assert {q.kind for q in picks} == {"choice", "numeric", "code"}
    five = terminal.mock_questions(pool, 5, random.Random(1))
    assert len({q.id for q in five}) == 5 and len({q.lesson for q in five}) >= 3
    assert [q.id for q in terminal.mock_questions(pool, 5, random.Random(1))] == [
        q.id for q in five]
    assert len(terminal.mock_questions(pool, 50, random.Random(0))) == len(pool)


def test_chinese(tiny, monkeypatch, capsys):
    feed(monkeypatch, ["b"])
    terminal.main(["--bank", str(tiny), "--count", "1", "--lang", "zh"])
    out = capsys.readouterr().out
    assert "问题 c1？" in out and "你的答案" in out and "不对：正确答案是 a) 对" in out
    assert "共答对 0 / 1 题" in out and "因为 c1。" in out
    assert "第 01 课 · 简单 · 选择题" in out


def test_list_tags_and_bad_options(tiny, monkeypatch, capsys):
    assert terminal.main(["--bank", str(tiny), "--list-tags"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"01\s+2\s+language modelling basics", out)
    assert re.search(r"tiny\s+6", out)
    assert terminal.main(["--bank", str(tiny), "--tag", "nosuchtag"]) == 2
    assert "unknown tag ['nosuchtag']" in capsys.readouterr().err
    for bad in (["--count", "0"], ["--lesson", "99"], ["--name", "ada"], ["--report", "x.md"]):
        with pytest.raises(SystemExit):
            terminal.main(["--bank", str(tiny)] + bad)


def test_class_mode(tiny, monkeypatch, capsys, tmp_path):
    questions = bank.load_questions([tiny])
    class_set = classroom.make_set(questions, name="week1", kinds=["choice", "numeric"])
    set_file = tmp_path / "week1.json"
    classroom.save_set(set_file, class_set)
    assert list(class_set.question_ids) == ["c1", "n1", "c2", "n2"]
    feed(monkeypatch, ["b", "s", "a", "6"])
    assert terminal.main(["--bank", str(tiny), "--set", str(set_file), "--name", "ada"]) == 0
    out = capsys.readouterr().out
    assert "Not quite" not in out and "Right" not in out  # no marks in class mode
    assert "3 of 4 answers kept in drills-week1-ada.json" in out
    results = classroom.read_results(tmp_path / "drills-week1-ada.json")
    assert {k: v["answer"] for k, v in results["answers"].items()} == {
        "c1": "b", "c2": "a", "n2": "6"}
    assert DrillProgress().cards() == {}  # class mode keeps no boxes


def test_real_bank_smoke(tmp_path):
    env = dict(os.environ, LMCOURSE_HOME=str(tmp_path))
    run = subprocess.run([sys.executable, "-m", "lmcourse", "drill", "--all", "--seed", "0",
                          "--count", "2", "--kind", "choice"], input="a\nq\n", text=True,
                         capture_output=True, cwd=ROOT, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "[1/2] lesson" in run.stdout and "You got" in run.stdout
    listed = subprocess.run([sys.executable, "-m", "lmcourse", "drill", "--list-tags"],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert listed.returncode == 0 and "seed" in listed.stdout


def test_nothing_due_says_so(tiny, monkeypatch, capsys):
    for question in bank.load_questions([tiny]):
        DrillProgress().record(question.id, True)
    feed(monkeypatch, [])
    assert terminal.main(["--bank", str(tiny)]) == 0
    out = capsys.readouterr().out
    assert "Nothing is due now" in out and "Use --all" in out and "Question" not in out


def test_command_line_dispatch_with_stdin(tiny, tmp_path):
    env = dict(os.environ, LMCOURSE_HOME=str(tmp_path / "home"))
    run = subprocess.run([sys.executable, "-m", "lmcourse", "drill", "--bank", str(tiny),
                          "--count", "2"], input="a\n", text=True, capture_output=True,
                         cwd=ROOT, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "Right." in run.stdout and "You got 1 of 1 right (0 skipped)." in run.stdout
    assert DrillProgress(tmp_path / "home" / "drills.json").card("c1").box == 2
