"""`--part I/N` + `babylm-prep merge` gives exactly what a single run gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from babylm.prep.sharding.plan import parse_part
from babylm.shards import open_dataset, parse_manifest
from tests.prep.cli_helpers import folder_bytes, run_prep
from tests.prep.raw_fixtures import Cc3mRow, good_cc3m_rows, write_cc3m_downloader


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> tuple[Path, Path]:
    """Raw CC-3M rows (with skips) and the single uninterrupted run of them."""
    root = tmp_path_factory.mktemp("raw")
    rows = good_cc3m_rows(14) + [Cc3mRow("failed", f"http://example.com/{i}.jpg", None) for i in range(3)]
    write_cc3m_downloader(root, rows)
    single = tmp_path_factory.mktemp("single") / "out"
    run_prep(*cc3m_args(root, single))
    return root, single


def cc3m_args(root: Path, out: Path) -> list[str]:
    return ["cc3m", "--root", str(root), "--out", str(out), "--samples-per-shard", "3", "--image-size", "48"]


def test_parts_in_separate_folders_merge_into_a_single_run(raw, tmp_path):
    root, single = raw
    parts = [tmp_path / f"part-{i}" for i in range(3)]
    for i, folder in enumerate(parts):
        result = run_prep(*cc3m_args(root, folder), "--part", f"{i}/3")
        assert "run `babylm-prep merge`" in result.output
        assert (folder / f"manifest.part-{i}-of-3.json").exists() and not (folder / "manifest.json").exists()
    part0 = parse_manifest((parts[0] / "manifest.part-0-of-3.json").read_bytes())
    assert part0.params["part"] == {"index": 0, "count": 3}
    assert 0 < part0.num_samples < open_dataset(single).manifest.num_samples
    merged = tmp_path / "merged"
    run_prep("merge", *map(str, parts), "--out", str(merged))
    assert folder_bytes(merged) == folder_bytes(single)


def test_parts_sharing_one_folder_complete_it(raw, tmp_path):
    root, single = raw
    out = tmp_path / "shared"
    run_prep(*cc3m_args(root, out), "--part", "1/2")
    assert not (out / "manifest.json").exists()
    run_prep(*cc3m_args(root, out), "--part", "0/2", "--workers", "2")
    # the last part to finish writes the whole manifest; merge of the folder rewrites the same bytes
    assert folder_bytes(out) == folder_bytes(single)
    run_prep("merge", str(out))
    assert folder_bytes(out) == folder_bytes(single)


def test_merge_refuses_missing_parts_and_mixed_runs(raw, tmp_path):
    root, _ = raw
    run_prep(*cc3m_args(root, tmp_path / "a"), "--part", "0/2")
    result = run_prep("merge", str(tmp_path / "a"), "--out", str(tmp_path / "m"), ok=False)
    assert "work units are in none of the folders" in result.output
    run_prep(*cc3m_args(root, tmp_path / "b"), "--part", "1/2", "--seed", "5")
    result = run_prep(
        "merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m"), ok=False
    )
    assert "different prep runs" in result.output
    result = run_prep("merge", str(tmp_path / "a"), str(tmp_path / "b"), ok=False)
    assert "--out" in result.output


def test_parse_part():
    assert parse_part("0/4") == (0, 4) and parse_part(None) is None
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError):
            parse_part(bad)
