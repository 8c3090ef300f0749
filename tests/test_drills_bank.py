"""The question bank: every shipped question is valid, numeric items agree with the package,
spot-the-bug snippets fail their exercise's check and their fixes pass it, and a broken file
is reported by file, question and field."""
import math
import textwrap

import pytest

from lmcourse import drills
from lmcourse.drills import bank
from lmcourse.drills.answers import format_number, mark, parse_number

QUESTIONS = bank.load_questions()
SEED_TAGS = [f"seed-a{i}" for i in range(1, 8)] + [f"seed-b{i}" for i in range(1, 7)]


def test_the_bank_is_big_and_covers_every_lesson():
    assert len(QUESTIONS) >= 150
    lessons = {q.lesson for q in QUESTIONS}
    assert set(bank.LESSONS) <= lessons, f"lessons without questions: {set(bank.LESSONS) - lessons}"
    kinds = {q.kind for q in QUESTIONS}
    assert kinds == set(bank.KINDS)
    assert {q.difficulty for q in QUESTIONS} == set(bank.DIFFICULTIES)


def test_every_seed_question_is_there_once_with_a_30_second_answer():
    seed = [q for q in QUESTIONS if "seed" in q.tags]
    tags = sorted(t for q in seed for t in q.tags if t.startswith("seed-"))
    assert tags == sorted(SEED_TAGS)
    assert all(q.short for q in seed)


def test_spot_the_error_items_come_from_the_seed_answers():
    items = [q for q in QUESTIONS if "spot-the-error" in q.tags]
    assert len(items) >= 10
    from_seed = {t for q in items for t in q.tags if t.startswith("seed-")}
    assert len(from_seed) >= 5


def test_choice_answers_are_spread_over_positions():
    positions = [q.correct / (len(q.choices) - 1) for q in QUESTIONS if q.kind == "choice"]
    assert sum(p == 0 for p in positions) < 0.5 * len(positions)
    assert sum(p == 1 for p in positions) < 0.5 * len(positions)


NUMERIC = [q for q in QUESTIONS if q.kind == "numeric"]
CODE = [q for q in QUESTIONS if q.kind == "code"]


@pytest.mark.parametrize("question", NUMERIC, ids=[q.id for q in NUMERIC])
def test_numeric_formula_equals_the_package(question):
    expected = bank.package_value(question)
    assert math.isclose(question.numeric.result, expected, rel_tol=1e-3), (
        f"{question.id}: formula {question.numeric.formula} = {question.numeric.result}, "
        f"package {question.numeric.package} = {expected}")
    # and the learner who types the shown answer is marked right, in both languages
    for language in drills.LANGUAGES:
        assert mark(question, format_number(question.numeric.result), language).correct


@pytest.mark.parametrize("question", CODE, ids=[q.id for q in CODE])
def test_spot_the_bug_snippets_fail_and_their_fixes_pass(question):
    assert mark(question, question.code.broken).correct is False
    assert mark(question, question.code.fixed).correct is True


def test_enough_numeric_and_code_items():
    assert len(NUMERIC) >= 15 and len(CODE) >= 12
    exercises = {q.code.exercise for q in CODE}
    from lmcourse.grading import known_exercises
    assert exercises <= set(known_exercises())
    assert len(exercises) >= 10


def test_numeric_texts_have_their_values_filled_in():
    for q in NUMERIC:
        names = list(q.numeric.values) + ["result"]
        for language in drills.LANGUAGES:
            for name in ("question", "answer", "explanation", "short"):
                text = q.text(name, language)
                assert not any("{" + n in text for n in names), (q.id, name, language, text)


def test_select_filters_and_rejects_unknown_values():
    seed = bank.select(QUESTIONS, tags=["seed"])
    assert seed and all("seed" in q.tags for q in seed)
    l06 = bank.select(QUESTIONS, lessons="06", difficulties=["easy", "medium"])
    assert l06 and all(q.lesson == "06" and q.difficulty != "hard" for q in l06)
    with pytest.raises(ValueError, match="unknown lesson"):
        bank.select(QUESTIONS, lessons=["6"])
    with pytest.raises(ValueError, match="unknown tag"):
        bank.select(QUESTIONS, tags=["no-such-tag"])


# ---- a broken file names the file, the question and the field -------------------------------

GOOD = {
    "id": "t-one", "lesson": "01", "tags": ["basics"], "difficulty": "easy", "kind": "choice",
    "question": {"en": "Pick b.", "zh": "选 b。"}, "choices": [{"en": "a", "zh": "a"},
                                                             {"en": "b", "zh": "b"}],
    "correct": 1, "answer": {"en": "b", "zh": "答案是 b"},
    "explanation": {"en": "Because.", "zh": "因为。"}, "reference": "Lesson 01",
}


def _write(tmp_path, questions):
    import yaml

    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"questions": questions}, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize("change, field, expected", [
    ({"lesson": 6}, "lesson", "one of 00"),
    ({"difficulty": "trivial"}, "difficulty", "one of easy, medium, hard"),
    ({"kind": "essay"}, "kind", "one of choice"),
    ({"correct": 2}, "correct", "an index from 0 to 1"),
    ({"answer": {"en": "b"}}, "answer", "exactly the keys 'en' and 'zh'"),
    ({"answer": {"en": "b", "zh": "b"}}, "answer.zh", "Chinese text"),
    ({"tags": []}, "tags", "non-empty list"),
    ({"colour": "red"}, "colour", "one of the fields"),
    ({"numeric": {"formula": "1"}}, "numeric", "no 'numeric' on a choice question"),
    ({"id": "Bad Id"}, "id", "lower-case"),
])
def test_a_broken_question_is_named(tmp_path, change, field, expected):
    broken = dict(GOOD, **change)
    with pytest.raises(bank.BankError) as info:
        bank.load_questions([_write(tmp_path, [GOOD | {"id": "t-zero"}, broken])])
    message = str(info.value)
    assert "t.yaml" in message and f"field {field!r}" in message and expected in message
    assert repr(broken["id"]) in message or field == "id"


def test_missing_field_duplicate_id_and_seed_without_short(tmp_path):
    no_reference = {k: v for k, v in GOOD.items() if k != "reference"}
    with pytest.raises(bank.BankError, match="'t-one', field 'reference'.*required"):
        bank.load_questions([_write(tmp_path, [no_reference])])
    with pytest.raises(bank.BankError, match="unique id"):
        bank.load_questions([_write(tmp_path, [GOOD, GOOD])])
    with pytest.raises(bank.BankError, match="field 'short'.*30-second"):
        bank.load_questions([_write(tmp_path, [GOOD | {"tags": ["seed"]}])])


def test_numeric_items_are_checked_when_they_load(tmp_path):
    numeric = {k: v for k, v in GOOD.items() if k not in ("choices", "correct")} | {
        "kind": "numeric", "question": {"en": "Bytes for {n} floats?", "zh": "{n} 个浮点数占多少字节？"},
        "numeric": {"formula": "4 * n", "values": {"n": 10}, "unit": {"en": "bytes", "zh": "字节"},
                    "package": "4 * n"}}
    (q,) = bank.load_questions([_write(tmp_path, [numeric])])
    assert q.numeric.result == 40 and q.text("question") == "Bytes for 10 floats?"
    assert mark(q, "40").correct and mark(q, "40 bytes").correct and not mark(q, "80").correct
    assert "2x the answer" in mark(q, "80").feedback
    assert "expected a number" in mark(q, "forty").feedback
    bad = [({"formula": "__import__('os')"}, "only arithmetic"),
           ({"formula": "4 * m"}, "unknown name"),
           ({"formula": "1 / 0"}, "arithmetic over the values")]
    for change, expected in bad:
        item = numeric | {"numeric": numeric["numeric"] | change}
        with pytest.raises(bank.BankError, match=expected):
            bank.load_questions([_write(tmp_path, [item])])
    unused = numeric | {"question": {"en": "Bytes?", "zh": "多少字节？"}}
    with pytest.raises(bank.BankError, match="every value as a"):
        bank.load_questions([_write(tmp_path, [unused])])


def test_formulas_allow_arithmetic_and_a_few_functions_only():
    assert bank.evaluate_formula("log(v)", {"v": 65}) == pytest.approx(4.1744, abs=1e-4)
    assert bank.evaluate_formula("exp(1 - r / c) * sqrt(4) + log2(8)", {"r": 20, "c": 16}) \
        == pytest.approx(2 * 0.7788 + 3, abs=1e-4)
    for formula in ("open('x')", "log(2, 10)", "math.log(2)", "log(x=2)", "(lambda: 1)()"):
        with pytest.raises(ValueError, match="only arithmetic"):
            bank.evaluate_formula(formula, {})


def test_not_yaml_and_wrong_top_level(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("questions: [unclosed", encoding="utf-8")
    with pytest.raises(bank.BankError, match="t.yaml: not valid YAML"):
        bank.load_questions([path])
    path.write_text("- just a list", encoding="utf-8")
    with pytest.raises(bank.BankError, match="one key, 'questions'"):
        bank.load_questions([path])


@pytest.mark.parametrize("text, value", [
    ("112e9", 112e9), ("112,000,000,000", 112e9), ("112 GB", 112e9), ("1.5 GiB", 1.5 * 2**30),
    ("7B", 7e9), ("70亿", 7e9), ("16k", 16_000), ("-3.5", -3.5), (" 2e-3 ", 2e-3),
    ("4096 bytes", 4096),
])
def test_parse_number(text, value):
    assert parse_number(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "abc", "1..2", "12 parsecs", "1e"])
def test_parse_number_rejects(text):
    with pytest.raises(ValueError, match="expected a number"):
        parse_number(text)


def test_choice_marking_accepts_letters_and_indices_and_explains_bad_input(tmp_path):
    (q,) = bank.load_questions([_write(tmp_path, [GOOD])])
    assert mark(q, "b").correct and mark(q, 1).correct and mark(q, "B").correct
    wrong = mark(q, "a", "zh")
    assert wrong.correct is False and "b) b" in wrong.feedback and "正确答案" in wrong.feedback
    assert "expected an option from a to b, got 'z'" in mark(q, "z").feedback
    assert mark(q, True).correct is False


def test_code_answers_that_do_not_run_say_why():
    q = CODE[0]
    broken = mark(q, "def oops(:\n")
    assert broken.correct is False and "SyntaxError" in broken.feedback
    nothing = mark(q, "x = 1\n")
    assert nothing.correct is False and f"{q.code.function}()" in nothing.feedback
