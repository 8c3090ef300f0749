import os
import stat

import pytest

from lmcourse import atomic


def test_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "book.json"
    atomic.write_json(target, {"a": 1})
    atomic.write_json(target, {"a": 2})
    assert target.read_text().strip().replace(" ", "").replace("\n", "") == '{"a":2}'
    assert [p.name for p in target.parent.iterdir()] == ["book.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "progress.txt"
    atomic.write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["progress.txt"]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
