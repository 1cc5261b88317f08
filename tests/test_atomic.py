"""Atomic writes: all or nothing, with the permissions a normal write would give."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from caalib.atomic import atomic_dir, atomic_path, write_json


def test_file_gets_umask_permissions_and_no_temp_is_left(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        target = write_json(tmp_path / "x.json", {"a": float("nan"), "b": (1, 2)})
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert target.read_text() == '{\n  "a": null,\n  "b": [\n    1,\n    2\n  ]\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_failure_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_directory_is_moved_whole_with_normal_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("1")
    finally:
        os.umask(old)
    assert (tmp_path / "d" / "f").read_text() == "1"
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    with pytest.raises(ValueError), atomic_dir(tmp_path / "e") as tmp:
        (tmp / "f").write_text("1")
        raise ValueError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
