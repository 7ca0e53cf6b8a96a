"""The columnar listing cache: built once per key (also by two processes at once), memory-mapped
after, rebuilt when an input changes, no trace left by bad input; duplicates confirmed on text."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import pytest

from babylm.prep.errors import InputError
from babylm.prep.sources.listing import LISTING_DIR, cached_listing, file_stats, first_of_repeats


def build_counting(log: Path, value: int = 7, delay: float = 0.0):
    def build():
        time.sleep(delay)
        with open(log, "a") as f:
            f.write("built\n")
        return {"x": np.arange(5) * value}, {"facts": value}

    return build


def test_built_once_then_memory_mapped(tmp_path):
    log = tmp_path / "log"
    key = {"inputs": [["a", 1, 2]]}
    arrays, facts = cached_listing(tmp_path / "out", "demo", key, build_counting(log))
    again, facts2 = cached_listing(tmp_path / "out", "demo", key, build_counting(log))
    assert log.read_text() == "built\n"
    assert isinstance(again["x"], np.memmap) and again["x"].tolist() == [0, 7, 14, 21, 28]
    assert facts == facts2 == {"facts": 7}


def test_another_key_rebuilds(tmp_path):
    log = tmp_path / "log"
    cached_listing(tmp_path, "demo", {"inputs": 1}, build_counting(log, 1))
    arrays, _ = cached_listing(tmp_path, "demo", {"inputs": 2}, build_counting(log, 2))
    assert log.read_text() == "built\nbuilt\n" and arrays["x"].tolist() == [0, 2, 4, 6, 8]
    assert sorted(p.name for p in (tmp_path / LISTING_DIR).iterdir()) == ["demo", "demo.lock"]


def test_input_change_changes_the_key(tmp_path):
    f = tmp_path / "in.tsv"
    f.write_text("a\n")
    before = file_stats([f])
    f.write_text("ab\n")
    assert file_stats([f]) != before


def test_unreadable_listing_is_rebuilt(tmp_path):
    log = tmp_path / "log"
    cached_listing(tmp_path, "demo", {"k": 1}, build_counting(log))
    (tmp_path / LISTING_DIR / "demo" / "listing.json").write_text("{not json")
    arrays, _ = cached_listing(tmp_path, "demo", {"k": 1}, build_counting(log))
    assert log.read_text() == "built\nbuilt\n" and arrays["x"][1] == 7


def test_bad_input_leaves_no_output_folder(tmp_path):
    def build():
        raise InputError("bad input")

    with pytest.raises(InputError, match="bad input"):
        cached_listing(tmp_path / "out", "demo", {"k": 1}, build)
    assert not (tmp_path / "out").exists()


def _part(out: Path, log: Path) -> None:
    cached_listing(out, "demo", {"k": 1}, build_counting(log, delay=0.5))


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs fork")
def test_parts_starting_together_build_it_once(tmp_path):
    log = tmp_path / "log"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_part, args=(tmp_path / "out", log)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert log.read_text() == "built\n"


def test_equal_hashes_are_confirmed_on_the_text():
    rows = np.array([2, 5, 8, 9, 12])
    texts = {2: "a", 5: "b", 8: "a", 9: "b", 12: "c"}
    # Every hash collides: only equal texts make duplicates, each pointing at its first row.
    first = first_of_repeats(rows, np.zeros(5, np.int64), lambda idx: [texts[i] for i in idx.tolist()])
    assert first == {8: 2, 9: 5}
    read = []
    first = first_of_repeats(rows, np.arange(5), lambda idx: read.extend(idx.tolist()) or [])
    assert first == {} and read == []  # distinct hashes: no text is read


def test_a_killed_build_leaves_nothing_behind_for_long(tmp_path):
    log = tmp_path / "log"
    listing = tmp_path / LISTING_DIR
    stale = listing / ".demo.abc123.tmp"  # what `kill -9` during a build leaves
    stale.mkdir(parents=True)
    (stale / "status.npy").write_bytes(b"half written")
    arrays, _ = cached_listing(tmp_path, "demo", {"k": 1}, build_counting(log))
    assert arrays["x"][1] == 7 and not stale.exists()
    assert sorted(p.name for p in listing.iterdir()) == ["demo", "demo.lock"]
