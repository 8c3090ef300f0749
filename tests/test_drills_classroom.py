"""Class mode: fixed question sets, learners' results files, and grading that re-marks them."""
from __future__ import annotations

import csv
import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from lmcourse.drills import classroom, load_questions
from lmcourse.drills.classroom import ClassError, ClassSet
from lmcourse.grading.sandbox import Limits, choose_mode

pytestmark = pytest.mark.usefixtures("home")

MODE = choose_mode(os.environ.get("LMCOURSE_TEST_SANDBOX", "auto"))
LIMITS = Limits(cell_seconds=20, notebook_seconds=90, call_seconds=5)

BANK = """\
questions:
  - id: t-choice
    lesson: "01"
    tags: [perplexity, seed]
    difficulty: easy
    kind: choice
    question: {en: "Uniform over V tokens: the perplexity?", zh: "均匀分布在 V 个词元上：困惑度是多少？"}
    choices:
      - {en: "1", zh: "1"}
      - {en: log V, zh: log V}
      - {en: V, zh: V}
    correct: 2
    answer: {en: "V: exp(log V).", zh: "V，因为 exp(log V) = V。"}
    explanation: {en: "log V is the cross-entropy, <b>not</b> the perplexity.", zh: "log V 是交叉熵，不是困惑度。"}
    reference: Lesson 01, perplexity
    short: {en: "V.", zh: "等于 V。"}
  - id: t-numeric
    lesson: "07"
    tags: [memory]
    difficulty: medium
    kind: numeric
    question: {en: "Bytes of AdamW mixed-precision state for {n:,} parameters?", zh: "{n:,} 个参数的 AdamW 混合精度训练状态占多少字节？"}
    numeric:
      formula: 16 * n
      values: {n: 1000}
      unit: {en: bytes, zh: 字节}
      package: sum(memory.training_memory(int(n)).values())
    answer: {en: "16 bytes each: {result:,.0f}.", zh: "每个 16 字节：{result:,.0f}。"}
    explanation: {en: "2 + 2 + 4 + 4 + 4.", zh: "权重、梯度各 2 字节，主权重和两个动量各 4 字节。"}
    reference: Lesson 07, memory
  - id: t-code
    lesson: "01"
    tags: [spot-the-bug]
    difficulty: easy
    kind: code
    question: {en: "This softmax overflows. Fix it.", zh: "这个 softmax 会溢出。请修复。"}
    code:
      exercise: softmax
      function: softmax
      broken: |
        def softmax(logits, dim=-1):
            e = torch.exp(logits)
            return e / e.sum(dim=dim, keepdim=True)
      fixed: |
        def softmax(logits, dim=-1):
            e = torch.exp(logits - logits.max(dim=dim, keepdim=True).values)
            return e / e.sum(dim=dim, keepdim=True)
    answer: {en: Subtract the maximum first., zh: 先减去最大值。}
    explanation: {en: exp(1000) is inf., zh: exp(1000) 是 inf。}
    reference: Lesson 01, exercise softmax
  - id: t-short
    lesson: "06"
    tags: [transformers, seed]
    difficulty: medium
    kind: short
    question: {en: "Why did Transformers replace RNNs?", zh: "为什么 Transformer 取代了 RNN？"}
    answer: {en: Parallel training over positions., zh: 各位置可并行训练。}
    short: {en: Parallel., zh: 并行。}
    explanation: {en: An RNN runs step by step., zh: RNN 必须逐步计算。}
    reference: Lesson 06, why Transformers
"""


@pytest.fixture
def bank(tmp_path):
    path = tmp_path / "bank.yaml"
    path.write_text(BANK, encoding="utf-8")
    return [path]


def questions(bank):
    return load_questions(bank)


def rows_of(gradebook: Path) -> list[dict]:
    with open(gradebook, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# ---- sets ---------------------------------------------------------------------------------------

def test_make_save_load_round_trip(tmp_path, bank):
    qs = questions(bank)
    made = classroom.make_set(qs, name="week3", tags=["seed"])
    assert made.question_ids == ("t-choice", "t-short")  # bank order
    classroom.save_set(tmp_path / "s.json", made)
    loaded = classroom.load_set(tmp_path / "s.json")
    assert loaded == made
    assert [q.id for q in loaded.questions(qs)] == ["t-choice", "t-short"]
    assert not loaded.bank_changed(qs)


def test_seeded_choice_is_deterministic_and_seed_matters(bank):
    qs = questions(bank)
    draws = {classroom.make_set(qs, name="w", count=2, seed=s).question_ids for s in range(20)}
    assert len(draws) > 1  # the seed decides which questions
    for seed in (0, 1, 7):
        a = classroom.make_set(qs, name="w", count=3, seed=seed, shuffle=True)
        assert a == classroom.make_set(qs, name="w", count=3, seed=seed, shuffle=True)
        plain = classroom.make_set(qs, name="w", count=3, seed=seed)
        order = [q.id for q in qs]
        assert list(plain.question_ids) == sorted(plain.question_ids, key=order.index)
        assert sorted(a.question_ids) == sorted(plain.question_ids)


def test_missing_id_and_changed_bank_are_reported(tmp_path, bank):
    qs = questions(bank)
    made = classroom.make_set(qs, name="w")
    gone = ClassSet("w", made.question_ids + ("t-gone",), made.bank_sha256)
    with pytest.raises(ClassError, match="no question 't-gone'"):
        gone.questions(qs)
    edited = tmp_path / "edited.yaml"
    edited.write_text(BANK.replace("Subtract the maximum first.", "Subtract the max."),
                      encoding="utf-8")
    assert made.bank_changed(load_questions([edited]))


def test_bad_sets_and_filters_are_clear(tmp_path, bank):
    qs = questions(bank)
    with pytest.raises(ClassError, match="only 4 questions match"):
        classroom.make_set(qs, name="w", count=5)
    with pytest.raises(ClassError, match="no question matches"):
        classroom.make_set(qs, name="w", lessons=["12"])
    with pytest.raises(ClassError, match="set name"):
        classroom.make_set(qs, name="../x")
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "name": "w", "question_ids": "t-choice"}')
    with pytest.raises(ClassError, match="not a set file"):
        classroom.load_set(bad)


# ---- the learner's results file ---------------------------------------------------------------

def _answer_many(path, class_set_dict, worker, n):
    class_set = ClassSet(**class_set_dict)
    for i in range(n):
        classroom.record_answer(path, class_set, "ada", class_set.question_ids[worker * n + i],
                                f"{worker}-{i}", seconds=0.5)


def test_record_answer_two_processes_lose_nothing(tmp_path):
    ids = tuple(f"q{i}" for i in range(40))
    class_set = ClassSet("w", ids, "0" * 64)
    path = tmp_path / "results.json"
    ctx = multiprocessing.get_context("spawn" if os.name == "nt" else "fork")
    procs = [ctx.Process(target=_answer_many,
                         args=(path, {"name": "w", "question_ids": ids, "bank_sha256": "0" * 64},
                               w, 20)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    data = classroom.read_results(path)
    assert set(data["answers"]) == set(ids)  # without the lock, updates are lost
    assert data["answers"]["q25"]["answer"] == "1-5"
    assert data["set_sha256"] == class_set.sha256 and data["student"] == "ada"
    classroom.record_answer(path, class_set, "ada", "q0", "again")
    assert classroom.read_results(path)["answers"]["q0"]["answer"] == "again"  # replaced
    with pytest.raises(ClassError, match="not in set"):
        classroom.record_answer(path, class_set, "ada", "nope", "x")
    with pytest.raises(ClassError, match="answers of 'ada', not of 'bob'"):
        classroom.record_answer(path, class_set, "bob", "q0", "x")
    other = ClassSet("other", ids, "0" * 64)
    with pytest.raises(ClassError, match="answers to set 'w'"):
        classroom.record_answer(path, other, "ada", "q0", "x")


def test_damaged_results_file_is_set_aside(tmp_path):
    class_set = ClassSet("w", ("q0",), "0" * 64)
    path = tmp_path / "r.json"
    path.write_text("{half a file")
    with pytest.warns(UserWarning, match="renamed"):
        classroom.record_answer(path, class_set, "ada", "q0", "b")
    assert list(tmp_path.glob("r.json.corrupt-*"))
    assert classroom.read_results(path)["answers"]["q0"]["answer"] == "b"


# ---- grading ----------------------------------------------------------------------------------

def _results(tmp_path, bank, answers: dict, student="ada", name="w", **extra):
    class_set = classroom.make_set(questions(bank), name="w")
    set_path = tmp_path / "set.json"
    classroom.save_set(set_path, class_set)
    path = tmp_path / f"{student}-{len(list(tmp_path.glob('*.json')))}.json"
    for qid, answer in answers.items():
        classroom.record_answer(path, class_set, student, qid, answer)
    if extra:
        data = json.loads(path.read_text())
        data.update(extra)
        path.write_text(json.dumps(data))
    return set_path, path


def test_choice_numeric_short_remarked_and_forged_score_ignored(tmp_path, bank):
    set_path, right = _results(tmp_path, bank, {"t-choice": "c", "t-numeric": "16,000",
                                                "t-short": "<script>x</script> parallel"})
    _, wrong = _results(tmp_path, bank, {"t-choice": "b", "t-numeric": "8000"}, student="bob")
    # a forged file: it claims a score, and an answer says it is right
    _, forged = _results(tmp_path, bank, {"t-choice": "a"}, student="eve", score=100,
                         total=100)
    data = json.loads(forged.read_text())
    data["answers"]["t-choice"].update(correct=True, score=1)
    forged.write_text(json.dumps(data))
    gradebook = tmp_path / "out" / "drills.csv"
    classroom.grade([right, wrong, forged], set_path, gradebook, bank_paths=bank, sandbox=MODE)
    rows = {(r["student"], r["exercise"]): r for r in rows_of(gradebook)}
    assert rows["ada", "t-choice"]["status"] == "right" and rows["ada", "t-choice"]["score"] == "1"
    assert rows["ada", "t-numeric"]["status"] == "right"
    assert rows["ada", "t-short"]["status"] == "not marked"
    assert (rows["ada", "t-short"]["score"], rows["ada", "t-short"]["max_score"]) == ("0", "0")
    assert rows["ada", "t-code"]["status"] == "not answered"
    assert rows["bob", "t-choice"]["status"] == "wrong" and rows["bob", "t-choice"]["score"] == "0"
    assert rows["bob", "t-numeric"]["status"] == "wrong"
    assert rows["eve", "t-choice"]["status"] == "wrong"
    class_set = classroom.load_set(set_path)
    choice = {q.id: q for q in questions(bank)}["t-choice"]
    data = classroom.record_answer(tmp_path / "idx.json", class_set, "ida", choice, 2)
    assert data["answers"]["t-choice"]["answer"] == "c"  # an index is kept as its letter
    with open(gradebook.with_name("drills_totals.csv"), encoding="utf-8") as f:
        totals = {r["student"]: (r["score"], r["max_score"]) for r in csv.DictReader(f)}
    assert totals == {"ada": ("2", "3"), "bob": ("0", "3"), "eve": ("0", "3")}
    feedback = {p.name: p.read_text(encoding="utf-8")
                for p in gradebook.with_name("drills_feedback").iterdir()}
    ada = next(text for name, text in feedback.items() if name.startswith("ada"))
    assert "&lt;script&gt;" in ada and "<script>" not in ada  # the learner's text is escaped
    assert "not marked" in ada and "Parallel training over positions." in ada
    assert "&lt;b&gt;not&lt;/b&gt;" in ada  # and the bank's text too


def test_unreadable_other_set_and_duplicate_student(tmp_path, bank, capsys):
    set_path, first = _results(tmp_path, bank, {"t-choice": "c"})
    _, second = _results(tmp_path, bank, {"t-choice": "b"})  # ada again
    broken = tmp_path / "broken.json"
    broken.write_text("not json")
    other_set = ClassSet("other", ("t-choice",), "0" * 64)
    elsewhere = tmp_path / "elsewhere.json"
    classroom.record_answer(elsewhere, other_set, "cy", "t-choice", "c")
    gradebook = tmp_path / "drills.csv"
    classroom.grade([first, broken, elsewhere, second], set_path, gradebook, bank_paths=bank,
                    sandbox=MODE)
    err = capsys.readouterr().err
    assert "not a results file" in err and "answers to set 'other'" in err
    assert "graded as 'ada-2'" in err
    rows = rows_of(gradebook)
    by = {(r["student"], r["exercise"]): r["status"] for r in rows}
    assert by["broken", "*"] == "unreadable" and by["cy", "*"] == "unreadable"
    assert by["ada", "t-choice"] == "right" and by["ada-2", "t-choice"] == "wrong"


def test_code_answers_graded_in_the_sandbox(tmp_path, bank):
    qs = {q.id: q for q in questions(bank)}
    code = qs["t-code"].code
    set_path, fixed = _results(tmp_path, bank, {"t-code": code.fixed})
    _, broken = _results(tmp_path, bank, {"t-code": code.broken}, student="bob")
    gradebook = tmp_path / "drills.csv"
    started = time.monotonic()
    classroom.grade([fixed, broken], set_path, gradebook, bank_paths=bank, sandbox=MODE,
                    limits=LIMITS)
    seconds = time.monotonic() - started
    by = {(r["student"], r["exercise"]): r for r in rows_of(gradebook)}
    assert by["ada", "t-code"]["status"] == "right" and by["ada", "t-code"]["score"] == "1"
    assert by["bob", "t-code"]["status"] == "wrong" and by["bob", "t-code"]["score"] == "0"
    feedback = "".join(p.read_text(encoding="utf-8")
                       for p in gradebook.with_name("drills_feedback").iterdir())
    assert "hidden cases included" in feedback
    assert "FAIL large logits" in feedback  # the check's own feedback, for the broken one
    assert seconds < 60, f"two sandboxed runs took {seconds:.1f} s"


def test_command_line_make_and_grade(tmp_path, bank, capsys):
    from lmcourse.__main__ import main

    out = tmp_path / "week.json"
    assert main(["drill-class", "make", "--tag", "seed", "--count", "1", "--seed", "1",
                 "--name", "week", "--out", str(out), "--bank", str(bank[0])]) == 0
    class_set = classroom.load_set(out)
    assert len(class_set.question_ids) == 1
    results = tmp_path / "r.json"
    classroom.record_answer(results, class_set, "ada", class_set.question_ids[0], "c")
    gradebook = tmp_path / "g.csv"
    assert main(["drill-class", "grade", str(results), "--set", str(out), "--gradebook",
                 str(gradebook), "--bank", str(bank[0])]) == 0
    assert rows_of(gradebook)[0]["student"] == "ada"
    assert main(["drill-class", "grade", str(results), "--set", str(tmp_path / "none.json"),
                 "--gradebook", str(gradebook)]) == 2
    assert "cannot read a set file" in capsys.readouterr().err


def test_real_bank_seed_set():
    bank = load_questions()
    seed = [q for q in bank if "seed" in q.tags]
    if not seed:
        pytest.skip("the shipped bank has no seed questions yet")
    count = min(5, len(seed))
    made = classroom.make_set(bank, name="seed", tags=["seed"], count=count, seed=3)
    assert len(made.question_ids) == count and not made.bank_changed(bank)
    assert all("seed" in q.tags for q in made.questions(bank))


def test_rerun_skips_unchanged_files_and_regrades_changed_ones(tmp_path, bank, monkeypatch):
    set_path, path = _results(tmp_path, bank, {"t-choice": "b"})
    gradebook = tmp_path / "drills.csv"
    classroom.grade([path], set_path, gradebook, bank_paths=bank, sandbox=MODE)
    calls = []
    real = classroom.grade_results
    monkeypatch.setattr(classroom, "grade_results",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    classroom.grade([path], set_path, gradebook, bank_paths=bank, sandbox=MODE)
    assert calls == []  # unchanged: the saved result is used
    classroom.record_answer(path, classroom.load_set(set_path), "ada", "t-choice", "c")
    classroom.grade([path], set_path, gradebook, bank_paths=bank, sandbox=MODE)
    assert calls == [1] and rows_of(gradebook)[0]["status"] == "right"
    classroom.grade([path], set_path, gradebook, bank_paths=bank, sandbox=MODE, force=True)
    assert calls == [1, 1]
