"""atomic_write: the old file or the new one, never a part; no temporary file left behind."""

import os

import pytest

from babylm.shards import atomic_write, atomic_write_bytes


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "manifest.json"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError), atomic_write(target, "w", encoding="utf-8") as f:
        f.write("half of the new cont")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_a_written_file_gets_the_umask_mode_and_its_folder_is_made(tmp_path):
    previous = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "new" / "plan.json", b"{}")
    finally:
        os.umask(previous)
    path = tmp_path / "new" / "plan.json"
    assert path.read_bytes() == b"{}"
    assert path.stat().st_mode & 0o777 == 0o644


def test_atomic_folder_replaces_a_folder_whole_or_not_at_all(tmp_path):
    from babylm.shards.atomic import atomic_folder

    target = tmp_path / "listing"
    with atomic_folder(target) as tmp:
        (tmp / "a.npy").write_bytes(b"first")
    assert sorted(p.name for p in target.iterdir()) == ["a.npy"]
    with atomic_folder(target) as tmp:
        (tmp / "b.npy").write_bytes(b"second")
    assert sorted(p.name for p in target.iterdir()) == ["b.npy"]  # the old folder is gone whole
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "c.npy").write_bytes(b"partial")
        raise RuntimeError("killed mid-write")
    assert sorted(p.name for p in target.iterdir()) == ["b.npy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["listing"]  # no temporary or old folder left
