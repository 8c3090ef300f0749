"""The batch grader's parts: the wire format, the limits, the grade book files."""
from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from lmcourse.grading import wire
from lmcourse.grading.gradebook import GradeBook, Graded, Row, csv_cell, markdown_text
from lmcourse.grading.sandbox import Limits, choose_mode


# ---------------------------------------------------------------------------
# wire: plain values only, checked on the way in


def roundtrip(value):
    return wire.decode(json.loads(wire.dumps({"v": wire.encode(value)}))["v"])


def test_plain_values_survive_the_wire_exactly():
    gen = torch.Generator().manual_seed(3)
    value = (None, True, 3, 10**400, -0.0, math.inf, "é", [1.5, (2, {"k": [3]})],
             {(1, 2): "tuple key"}, torch.randn(2, 3, dtype=torch.float64),
             torch.arange(6).reshape(2, 3).t(), torch.zeros(0, 4), torch.tensor(True),
             torch.tensor(2.5),
             torch.randn(3).to(torch.bfloat16), gen, 1 + 2j, b"\x00\xff", torch.float16,
             torch.device("cpu"))
    back = roundtrip(value)
    assert back[16:] == value[16:]
    assert back[:9] == value[:9] and type(back[7][1]) is tuple
    for got, sent in zip(back[9:15], value[9:15]):
        assert type(got) is torch.Tensor and got.dtype == sent.dtype and torch.equal(got, sent)
    assert torch.equal(back[15].get_state(), gen.get_state())
    assert math.isnan(roundtrip(math.nan))


class Liar(torch.Tensor):
    pass


@pytest.mark.parametrize("value", [Liar(torch.zeros(2)), torch.zeros(2).to_sparse(),
                                   torch.zeros(2, device="meta"), object(), {1, 2},
                                   type("MyInt", (int,), {})(3), torch.zeros(2**24 + 1)])
def test_what_is_not_plain_cannot_be_sent(value):
    with pytest.raises(wire.WireError):
        wire.encode(value)


@pytest.mark.parametrize("data", [
    {"t": "tensor", "dtype": "float32", "shape": [2], "v": "AAAA"},  # 3 bytes for 8
    {"t": "tensor", "dtype": "object", "shape": [1], "v": ""},
    {"t": "tensor", "dtype": "float32", "shape": [2**20, 2**20], "v": ""},
    {"t": "tensor", "dtype": "float32", "shape": [-1], "v": ""},
    {"t": "pickle", "v": "gASVAAAA"},
    {"t": "int", "v": "1" * 6000},
    {"t": "float", "v": 1.5},
    {"t": "dict", "v": [[{"t": "list", "v": []}, 1]]},  # an unhashable key
    {"t": "generator", "v": "AAAA"},
    [1, 2],
    3.5,
])
def test_decode_refuses_malformed_or_dangerous_data(data):
    with pytest.raises(wire.WireError):
        wire.decode(data)


def test_messages_must_be_json_objects_without_nan_constants():
    assert wire.loads(b'{"a": 1}\n') == {"a": 1}
    for line in (b"[1]", b"not json", b'{"a": NaN}', b"\xff\xfe"):
        with pytest.raises(wire.WireError):
            wire.loads(line)


# ---------------------------------------------------------------------------
# limits and modes


@pytest.mark.parametrize("field,value,error", [
    ("cell_seconds", 0, ValueError), ("notebook_seconds", -5, ValueError),
    ("call_seconds", math.inf, ValueError), ("memory_mb", 0, ValueError),
    ("memory_mb", 1.5, TypeError), ("cell_seconds", "10", TypeError),
])
def test_invalid_limits_are_rejected(field, value, error):
    with pytest.raises(error, match=field):
        Limits(**{field: value})


def test_the_grader_rejects_a_zero_timeout_instead_of_removing_the_limit(capsys):
    from lmcourse.grading.grade import main

    with pytest.raises(SystemExit) as stop:
        main(["x.ipynb", "--gradebook", "g.csv", "--timeout", "0"])
    assert stop.value.code == 2 and "cell_seconds" in capsys.readouterr().err


def test_unknown_sandbox_mode_is_rejected():
    assert choose_mode("process") == "process"
    with pytest.raises(ValueError, match="sandbox must be one of"):
        choose_mode("docker")


# ---------------------------------------------------------------------------
# the grade book


def graded(path="/c/ada/01.ipynb", student="ada", score=3, settings="s"):
    rows = [Row(student, "01.ipynb", "softmax", score, 12, "failed"),
            Row(student, "01.ipynb", "perplexity", 0, 7, "not attempted")]
    return Graded(path, "sha", settings, student, rows, f"# feedback for {student}\n")


def test_saved_results_load_back_only_for_the_same_bytes_and_settings(tmp_path):
    book = GradeBook(tmp_path / "gradebook.csv")
    book.save(graded())
    assert book.load("/c/ada/01.ipynb", "sha", "s") == graded()
    assert book.load("/c/ada/01.ipynb", "other sha", "s") is None
    assert book.load("/c/ada/01.ipynb", "sha", "other settings") is None
    assert book.load("/c/bo/01.ipynb", "sha", "s") is None


def test_a_damaged_or_doctored_saved_result_is_graded_again(tmp_path):
    book = GradeBook(tmp_path / "gradebook.csv")
    book.save(graded())
    entry = next(book.results_dir.glob("*.json"))
    data = json.loads(entry.read_text())
    data["rows"][0]["score"] = 1012
    entry.write_text(json.dumps(data))
    assert book.load("/c/ada/01.ipynb", "sha", "s") is None
    entry.write_text("{ half a file")
    assert book.load("/c/ada/01.ipynb", "sha", "s") is None


def test_unfinished_runs_are_counted_until_the_result_is_saved(tmp_path):
    book = GradeBook(tmp_path / "gradebook.csv")
    assert book.attempts("/c/ada/01.ipynb", "sha") == 0
    book.begin("/c/ada/01.ipynb", "sha")
    book.begin("/c/ada/01.ipynb", "sha")
    assert book.attempts("/c/ada/01.ipynb", "sha") == 2
    assert book.attempts("/c/ada/01.ipynb", "changed") == 0
    book.save(graded())
    assert book.attempts("/c/ada/01.ipynb", "sha") == 0


def test_csv_files_total_every_exercise_and_escape_formulas(tmp_path):
    book = GradeBook(tmp_path / "gradebook.csv")
    book.write([graded(), graded("/c/=1+1/01.ipynb", "=1+1", 12),
                graded("/c/@x/01.ipynb", "@SUM(A1)", 0)])
    rows = list(csv.reader(book.csv_path.open()))
    assert rows[0] == ["student", "notebook", "exercise", "score", "max_score", "status"]
    assert [r[0] for r in rows[1:]] == ["ada", "ada", "'=1+1", "'=1+1", "'@SUM(A1)", "'@SUM(A1)"]
    totals = list(csv.DictReader(book.totals_path.open()))
    assert [(t["student"], t["score"], t["max_score"]) for t in totals] == [
        ("ada", "3", "19"), ("'=1+1", "12", "19"), ("'@SUM(A1)", "0", "19")]
    names = sorted(p.name for p in book.feedback_dir.iterdir())
    assert names == ["1_1-01.md", "SUM_A1_-01.md", "ada-01.md"]


def test_escaping_helpers():
    assert csv_cell("-2+3") == "'-2+3" and csv_cell("ada") == "ada" and csv_cell(-2) == -2
    assert markdown_text("<script>x</script>\nline") == "&lt;script&gt;x&lt;/script&gt; line"


def test_a_directory_is_not_a_gradebook(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        GradeBook(tmp_path)
