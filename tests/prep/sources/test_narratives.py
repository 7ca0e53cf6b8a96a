"""The Localized Narratives JSONL listing: rows of non-blank lines across files, both kinds of
duplicate (found by hash, confirmed on the text), a part's rows read back by offset, and
`--plan-only` + parts giving the single run."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from babylm.prep.sources import narratives
from babylm.prep.sources.narratives import NarrativeRows
from tests.prep.cli_helpers import folder_bytes, run_prep
from tests.prep.raw_fixtures import LnAnnotation, jpeg_bytes, write_ln_jsonl


def annotations() -> list[LnAnnotation]:
    return [
        LnAnnotation("mscoco", "0", "7", "a dog\u00a0runs", jpeg_bytes(0, (96, 72))),
        LnAnnotation("mscoco", "1", "8", "a cat  sits", jpeg_bytes(1, (96, 72))),
        LnAnnotation("open_images", "2", "0001eeaf4aed83f9", "a red car", jpeg_bytes(2, (96, 72))),
        LnAnnotation(
            "open_images", "3", "0001eeaf4aed83f9", "a red car", jpeg_bytes(2, (96, 72)), annotator_id=5
        ),
    ]


def write_files(root: Path) -> list[Path]:
    """Two files: blank lines, a CRLF line, a cut-off line, both kinds of duplicate across files."""
    anns = annotations()
    first = write_ln_jsonl(root / "a.jsonl", anns[:2], root / "images", raw_lines=["", "   "])
    crlf = json.dumps(anns[2].record()) + "\r"
    lines = [crlf, '{"dataset_id": "mscoco_val2017", "image_id": 3, "cap', json.dumps(anns[0].record())]
    second = write_ln_jsonl(root / "b.jsonl", [anns[3]], root / "images", raw_lines=lines)
    return [first, second]


def test_rows_duplicates_and_line_numbers(tmp_path):
    files = write_files(tmp_path)
    listed = NarrativeRows(files, tmp_path / "images", tmp_path / "out")
    rows = listed.take(range(len(listed)))
    assert [(r.info["file"], r.info["line"]) for r in rows] == [
        ("a.jsonl", 1), ("a.jsonl", 2), ("b.jsonl", 1), ("b.jsonl", 2), ("b.jsonl", 3), ("b.jsonl", 4),
    ]  # fmt: skip
    assert Counter(r.reason for r in rows) == {None: 3, "duplicate": 2, "malformed_json": 1}
    assert [(r.key, r.detail) for r in rows if r.reason == "duplicate"] == [
        ("ln-open_images-0001eeaf4aed83f9-1", "b.jsonl:2: same image and caption as b.jsonl:1"),
        ("ln-b-L4", "b.jsonl:4: same annotation as a.jsonl:1"),
    ]
    assert rows[0].caption == "a dog runs" and rows[0].info["split"] == "mscoco_train2017"
    assert "split" not in rows[3].info  # as before: a duplicate carries the line's facts only
    # A part's rows, read back by offset, are the same rows.
    assert listed.take([4, 0, 2]) == [rows[4], rows[0], rows[2]]
    assert listed.facts["jsonl_files"]["b.jsonl"]["bytes"] == files[1].stat().st_size


def test_hash_collisions_make_no_duplicates(tmp_path, monkeypatch):
    files = write_files(tmp_path)
    honest = NarrativeRows(files, tmp_path / "images", tmp_path / "a")
    monkeypatch.setattr(narratives, "hash", lambda value: 7, raising=False)
    colliding = NarrativeRows(files, tmp_path / "images", tmp_path / "b")
    for name in ("status", "first"):
        assert np.array_equal(honest.arrays[name], colliding.arrays[name])


def test_plan_only_then_parts_give_the_single_run(tmp_path):
    files = write_files(tmp_path)
    common = [
        "localnarr",
        "--layout",
        "jsonl",
        "--images",
        str(tmp_path / "images"),
        "--samples-per-shard",
        "2",
    ]
    common += [arg for f in files for arg in ("--jsonl", str(f))] + ["--image-size", "48"]
    run_prep(*common, "--out", str(tmp_path / "single"))
    run_prep(*common, "--out", str(tmp_path / "parts"), "--plan-only")
    for i in range(2):
        run_prep(*common, "--out", str(tmp_path / "parts"), "--part", f"{i}/2")
    assert folder_bytes(tmp_path / "parts") == folder_bytes(tmp_path / "single")
