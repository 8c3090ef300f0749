"""Leitner boxes in lmcourse.drills.progress: moves, intervals, order, two processes, bad files."""
import json
import multiprocessing
import warnings
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from lmcourse.drills.progress import INTERVALS, DrillProgress

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LMCOURSE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def q(qid):
    return SimpleNamespace(id=qid)


def test_default_path_is_in_lmcourse_home(home):
    progress = DrillProgress()
    assert progress.path == home / "drills.json"
    progress.record("a", True, now=T0)
    data = json.loads((home / "drills.json").read_text())
    assert data["version"] == 1 and set(data["cards"]) == {"a"}


def test_right_moves_up_one_box_wrong_back_to_one(tmp_path):
    p = DrillProgress(tmp_path / "d.json")
    assert p.card("x") is None
    boxes = [p.record("x", True, now=T0).box for _ in range(5)]
    assert boxes == [2, 3, 4, 5, 5]
    card = p.record("x", False, now=T0)
    assert (card.box, card.reviews, card.lapses) == (1, 6, 1)
    assert p.record("x", True, now=T0).box == 2
    assert p.record("y", False, now=T0).box == 1


def test_intervals_are_0_1_3_7_16_days(tmp_path):
    assert INTERVALS == {1: 0, 2: 1, 3: 3, 4: 7, 5: 16}
    p = DrillProgress(tmp_path / "d.json")
    seen = []
    for _ in range(4):
        card = p.record("x", True, now=T0)
        seen.append((card.box, card.due_at - T0))
    assert seen == [(2, timedelta(days=1)), (3, timedelta(days=3)), (4, timedelta(days=7)),
                    (5, timedelta(days=16))]
    wrong = p.record("x", False, now=T0)
    assert wrong.due_at == T0 and wrong.last == T0.isoformat()


def test_due_order_overdue_first_then_new_later_left_out(tmp_path):
    p = DrillProgress(tmp_path / "d.json")
    p.record("a", True, now=T0)                       # due T0 + 1 day
    p.record("b", True, now=T0 - timedelta(days=5))   # due T0 - 4 days: most overdue
    p.record("c", False, now=T0 - timedelta(days=1))  # due T0 - 1 day
    p.record("d", True, now=T0 + timedelta(days=2))   # due T0 + 3 days
    bank = [q("new1"), q("a"), q("b"), q("c"), q("new2"), q("d")]
    assert [x.id for x in p.due(bank, now=T0)] == ["b", "c", "new1", "new2"]
    assert [x.id for x in p.due(bank, now=T0, limit=3)] == ["b", "c", "new1"]
    assert [x.id for x in p.due(bank, now=T0, include_later=True)] == [
        "b", "c", "new1", "new2", "a", "d"]
    later = T0 + timedelta(days=1)
    assert [x.id for x in p.due(bank, now=later)] == ["b", "c", "a", "new1", "new2"]
    s = p.summary(now=T0)
    assert s["boxes"] == {1: 1, 2: 3, 3: 0, 4: 0, 5: 0}
    assert (s["cards"], s["due_now"], s["reviews"], s["lapses"]) == (4, 2, 4, 1)
    assert s["next_due"] == (T0 + timedelta(days=1)).isoformat()


def test_bad_arguments_raise_clear_errors(tmp_path):
    p = DrillProgress(tmp_path / "d.json")
    with pytest.raises(TypeError, match="correct must be True or False"):
        p.record("a", "yes")
    with pytest.raises(TypeError, match="question id"):
        p.record(3, True)
    with pytest.raises(ValueError, match="timezone-aware"):
        p.record("a", True, now=datetime(2026, 1, 1))
    with pytest.raises(TypeError, match="now must be a datetime"):
        p.record("a", True, now="2026-01-01")
    with pytest.raises(ValueError, match="limit must be"):
        p.due([q("a")], limit=-1)
    with pytest.raises(TypeError, match="not a string"):
        p.due("abc")
    with pytest.raises(TypeError, match="path must be"):
        DrillProgress(42)
    assert not (tmp_path / "d.json").exists()


@pytest.mark.parametrize("content", [
    "{not json", '["a list"]', '{"version": 2, "cards": {}}', '{"version": 1, "cards": []}',
    '{"version": 1, "cards": {"a": {"box": 9, "due": "2026-01-01T00:00:00+00:00", '
    '"reviews": 1, "lapses": 0, "last": "2026-01-01T00:00:00+00:00"}}}',
    '{"version": 1, "cards": {"a": {"box": 1, "due": "tomorrow", '
    '"reviews": 1, "lapses": 0, "last": "2026-01-01T00:00:00+00:00"}}}',
])
def test_corrupt_file_is_set_aside_with_a_warning(tmp_path, content):
    path = tmp_path / "d.json"
    path.write_text(content)
    p = DrillProgress(path)
    with pytest.warns(UserWarning, match=r"moved to .*d\.json\.corrupt-") as caught:
        card = p.record("b", True, now=T0)
    assert card.box == 2
    aside = [f for f in tmp_path.iterdir() if ".corrupt-" in f.name]
    assert len(aside) == 1 and aside[0].read_text() == content
    assert str(aside[0]) in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set(p.cards()) == {"b"}


def _drill(path, own, shared):
    p = DrillProgress(path)
    for i in range(50):
        p.record(f"{own}-{i}", i % 3 != 0, now=T0)
        if i < 20:
            p.record(f"shared-{i}", True, now=T0)


def test_two_processes_lose_nothing(tmp_path):
    path = tmp_path / "d.json"
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    procs = [ctx.Process(target=_drill, args=(path, name, 20)) for name in ("one", "two")]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    p = DrillProgress(path)
    cards = p.cards()
    assert len(cards) == 120
    assert sum(c.reviews for c in cards.values()) == 140  # 50 + 50 own, 20 shared answered twice
    assert all(cards[f"shared-{i}"].reviews == 2 and cards[f"shared-{i}"].box == 3
               for i in range(20))
    assert p.summary(now=T0)["reviews"] == 140
