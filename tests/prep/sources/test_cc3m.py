"""`babylm-prep cc3m` on raw layouts built in the test: accounting, errors, layouts, resume."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from babylm.shards import open_dataset, verify_dataset
from tests.prep.cli_helpers import folder_bytes, read_samples, run_prep, skipped_lines
from tests.prep.raw_fixtures import (
    Cc3mRow,
    bad_image_bytes,
    good_cc3m_rows,
    jpeg_bytes,
    write_cc3m_downloader,
    write_cc3m_img2dataset,
)


def every_kind_rows() -> tuple[list[Cc3mRow], Counter]:
    """Good rows plus one row per kind of bad input, and the skip counts they must produce."""
    bad = bad_image_bytes()
    rows = good_cc3m_rows(12)
    rows += [
        Cc3mRow(f"a {name} photo .", f"http://example.com/{name}.jpg", data) for name, data in bad.items()
    ]
    rows += [
        Cc3mRow("failed download", "http://example.com/404.jpg", None, status=404),
        Cc3mRow("listed but not on disk", "http://example.com/gone.jpg", jpeg_bytes(1), on_disk=False),
        Cc3mRow("   ", "http://example.com/empty-caption.jpg", jpeg_bytes(2)),
        Cc3mRow(rows[0].caption, rows[0].url, rows[0].image),  # exact repeat of row 0
        Cc3mRow(rows[1].caption + " again", rows[1].url, rows[1].image),  # same url, new caption: kept
    ]
    expected = Counter(
        empty_file=1,
        decode_error=2,  # truncated + corrupt
        not_an_image=1,
        too_large=1,
        too_small=1,
        download_failed=1,
        missing_file=1,
        empty_caption=1,
        duplicate=1,
    )
    return rows, expected


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    write_cc3m_downloader(root, every_kind_rows()[0])
    return root


@pytest.fixture(scope="module")
def reference(raw_root, tmp_path_factory) -> Path:
    """One uninterrupted single-worker run everything else is compared with."""
    out = tmp_path_factory.mktemp("ref") / "out"
    run_prep(
        "cc3m", "--root", str(raw_root), "--out", str(out), "--samples-per-shard", "8", "--image-size", "64"
    )
    return out


def test_accounting_identity_with_every_kind_of_bad_row(raw_root, reference):
    rows, expected = every_kind_rows()
    m = open_dataset(reference).manifest
    assert m.num_samples + m.num_skipped == len(rows) == m.params["input_rows"]
    assert Counter(m.skipped) == expected
    skipped = skipped_lines(reference)
    assert len(skipped) == m.num_skipped
    assert Counter(s["reason"] for s in skipped) == expected
    samples = read_samples(reference)
    assert len(samples) == m.num_samples
    # every input row is either a sample or a skipped line, exactly once
    assert sorted([*samples, *(s["key"] for s in skipped)]) == [
        f"cc3m-training-{i:07d}" for i in range(len(rows))
    ]
    failed = next(s for s in skipped if s["reason"] == "download_failed")
    assert failed["url"] == "http://example.com/404.jpg" and "404" in failed["detail"]
    assert not verify_dataset(open_dataset(reference), deep=True)


def test_samples_have_clean_captions_and_metadata(reference):
    samples = read_samples(reference)
    s = samples["cc3m-training-0000004"]
    assert (
        s["txt"].decode()
        == "where 's the best place to show off your nails? right in front of the castle, of course! 4"
    )
    meta = json.loads(s["json"])
    assert meta["source"] == "cc3m" and meta["split"] == "training" and meta["row"] == 4
    assert meta["url"].startswith("https://i.pinimg.com/") and (meta["width"], meta["height"]) == (96, 72)
    assert meta["file"].startswith("training/4_")
    assert (
        samples["cc3m-training-0000006"]["txt"].decode()
        == "i ordered a cake for my fiancé 's 25th birthday. 6"
    )
    assert "£ 1,735.37" in samples["cc3m-training-0000007"]["txt"].decode()
    png = json.loads(samples[f"cc3m-training-{12 + list(bad_image_bytes()).index('png'):07d}"]["json"])
    assert png["format"] == "png"  # PNG bytes behind a name without extension and a JPEG MIME type


def test_rows_are_shuffled_across_shards_and_params_recorded(reference):
    m = open_dataset(reference).manifest
    first = [int(k[-7:]) for k in read_samples(reference)][:8]
    assert first != sorted(first)
    assert m.params["seed"] == 0 and m.params["image"]["size"] == 64 and m.params["image"]["exif_transpose"]
    assert all(s.meta["rows"] <= 8 for s in m.shards)


def test_same_output_with_two_workers_and_different_with_another_seed(raw_root, reference, tmp_path):
    out = tmp_path / "w2"
    args = ["cc3m", "--root", str(raw_root), "--samples-per-shard", "8", "--image-size", "64"]
    run_prep(*args, "--out", str(out), "--workers", "2")
    assert folder_bytes(out) == folder_bytes(reference)
    run_prep(*args, "--out", str(tmp_path / "s1"), "--seed", "1")
    assert (tmp_path / "s1/manifest.json").read_bytes() != (reference / "manifest.json").read_bytes()
    assert set(read_samples(tmp_path / "s1")) == set(read_samples(reference))


@pytest.mark.parametrize("change", [-1, +2])
def test_report_of_other_length_is_a_clear_error_before_work(tmp_path, change):
    src = write_cc3m_downloader(tmp_path, good_cc3m_rows(4))
    report = src / "downloaded_training_report.tsv"
    lines = report.read_text().splitlines()
    lines = lines[:change] if change < 0 else lines + lines[:change]
    report.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    result = run_prep("cc3m", "--root", str(tmp_path), "--out", str(out), ok=False)
    assert "Train_GCC-training.tsv has 4 lines" in result.output
    assert f"downloaded_training_report.tsv has {4 + change}" in result.output
    assert not out.exists()


def test_misaligned_report_is_a_clear_error(tmp_path):
    src = write_cc3m_downloader(tmp_path, good_cc3m_rows(4))
    report = src / "downloaded_training_report.tsv"
    lines = report.read_text().splitlines()
    report.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    result = run_prep("cc3m", "--root", str(tmp_path), "--out", str(tmp_path / "out"), ok=False)
    assert "downloaded_training_report.tsv:1: url differs" in result.output and "not aligned" in result.output


def test_malformed_rows_and_bad_encoding_are_counted(tmp_path):
    src = write_cc3m_downloader(tmp_path, good_cc3m_rows(5))
    report = src / "downloaded_training_report.tsv"
    lines = report.read_text().splitlines()
    lines[1] = lines[1].rsplit("\t", 2)[0] + "\t" + lines[1].rsplit("\t", 1)[1]  # a field lost
    report.write_text("\n".join(lines) + "\n")
    tsv = src / "Train_GCC-training.tsv"
    raw = tsv.read_bytes().split(b"\n")
    raw[2] = raw[2].replace(b"player", b"pl\xffyer")  # not UTF-8
    tsv.write_bytes(b"\n".join(raw))
    out = tmp_path / "out"
    run_prep("cc3m", "--root", str(tmp_path), "--out", str(out))
    m = open_dataset(out).manifest
    assert m.skipped == {"bad_encoding": 1, "malformed_row": 1} and m.num_samples == 3
    detail = {s["reason"]: s["detail"] for s in skipped_lines(out)}
    assert detail["malformed_row"].startswith("downloaded_training_report.tsv:2:")
    assert detail["bad_encoding"] == "Train_GCC-training.tsv:3: not valid UTF-8"


def test_old_seven_column_report_layout(tmp_path):
    rows = good_cc3m_rows(4) + [Cc3mRow("failed", "http://example.com/x.jpg", None)]
    write_cc3m_downloader(tmp_path, rows, split="validation", old_layout=True)
    out = tmp_path / "out"
    run_prep("cc3m", "--root", str(tmp_path), "--split", "validation", "--out", str(out))
    m = open_dataset(out).manifest
    assert m.num_samples == 4 and m.skipped == {"download_failed": 1}
    assert m.params["inputs"]["report_layout"] == "7col" and m.name == "cc3m-validation"


def test_jpeg_only_keeps_only_jpeg_mime_rows(tmp_path):
    bad = bad_image_bytes()
    rows = good_cc3m_rows(3) + [
        Cc3mRow("a png", "http://example.com/p.png", bad["png"], mimetype="image/png")
    ]
    write_cc3m_downloader(tmp_path, rows)
    run_prep("cc3m", "--root", str(tmp_path), "--out", str(tmp_path / "all"))
    run_prep("cc3m", "--root", str(tmp_path), "--out", str(tmp_path / "jpeg"), "--jpeg-only")
    assert open_dataset(tmp_path / "all").manifest.num_samples == 4
    m = open_dataset(tmp_path / "jpeg").manifest
    assert m.num_samples == 3 and m.skipped == {"not_jpeg_mime": 1} and m.params["jpeg_only"] is True


def test_img2dataset_layout(tmp_path):
    rows = good_cc3m_rows(6) + [Cc3mRow("failed", "http://example.com/404.jpg", None)]
    rows.insert(3, Cc3mRow("an html page", "http://example.com/page", bad_image_bytes()["html"]))
    folder = write_cc3m_img2dataset(tmp_path / "i2d", rows, per_shard=3)
    out = tmp_path / "out"
    run_prep(
        "cc3m", "--layout", "img2dataset", "--src", str(folder), "--out", str(out), "--samples-per-shard", "3"
    )
    m = open_dataset(out).manifest
    assert m.num_samples == 6 and m.skipped == {"download_failed": 1, "not_an_image": 1}
    assert m.params["layout"] == "img2dataset" and m.params["inputs"]["shards"] == 3
    samples = read_samples(out)
    meta = json.loads(samples["cc3m-training-i2d-000000000"]["json"])
    assert (
        meta["url"] == rows[0].url
        and meta["original_width"] == 640
        and meta["file"] == "00000.tar:000000000.jpg"
    )
    assert (
        samples["cc3m-training-i2d-000000000"]["txt"].decode()
        == "author: a life in photography -- in pictures 0"
    )
    failed = [s for s in skipped_lines(out) if s["reason"] == "download_failed"]
    assert failed[0]["url"] == "http://example.com/404.jpg" and "404" in failed[0]["detail"]


def test_rerun_is_a_no_op_and_other_params_need_overwrite(raw_root, reference, tmp_path):
    out = tmp_path / "out"
    args = [
        "cc3m",
        "--root",
        str(raw_root),
        "--out",
        str(out),
        "--samples-per-shard",
        "8",
        "--image-size",
        "64",
    ]
    run_prep(*args)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar")}
    run_prep(*args)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar")} == before
    result = run_prep(*args[:-1], "96", ok=False)
    assert "different prep run" in result.output and "image" in result.output
    run_prep(*args[:-1], "96", "--overwrite")
    assert open_dataset(out).manifest.params["image"]["size"] == 96


# The prep CLI in a child process that kills its own process group (workers too) with SIGKILL
# once 2 unit records are written, as a scheduler's kill -9 would. The fault comes in by wrapping
# the runner's `save_unit` (forked workers inherit the wrapper); the product reads no test switch.
KILL_AFTER_TWO_UNITS = """
import os, signal
import babylm.prep.sharding.runner as runner
from babylm.prep.sharding.records import record_units
save_unit = runner.save_unit
def save_then_kill_after_two(out_dir, record):
    save_unit(out_dir, record)
    if len(record_units(out_dir)) >= 2:
        os.killpg(0, signal.SIGKILL)
runner.save_unit = save_then_kill_after_two
from babylm.prep.cli import main
main()
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_resume_after_kill_9_gives_the_same_bytes(raw_root, reference, tmp_path, workers):
    out = tmp_path / "out"
    args = [
        "cc3m",
        "--root",
        str(raw_root),
        "--out",
        str(out),
        "--samples-per-shard",
        "8",
        "--image-size",
        "64",
    ]
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_TWO_UNITS, *args, "--workers", str(workers), "--no-progress"],
        start_new_session=True,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert not (out / "manifest.json").exists()
    units = sorted(p.name for p in (out / ".units").glob("unit-*.json"))
    total = open_dataset(reference).manifest.params["units"]
    if workers == 1:
        assert len(units) == 2 < total  # killed in the middle, exactly where the hook said
    else:
        assert 2 <= len(units) <= total  # the other worker may finish a unit or two meanwhile
    # A unit is complete once its record is written; a shard renamed into place just before the
    # kill, whose record was not, is rightly redone.
    records = [json.loads((out / ".units" / u).read_text()) for u in units]
    complete = [r["shard"]["path"] for r in records if r["shard"] is not None]
    done = {n: ((out / n).stat().st_ino, (out / n).stat().st_mtime_ns) for n in complete}
    assert done
    run_prep(*args)
    assert folder_bytes(out) == folder_bytes(reference)
    # complete shards were kept, not rewritten
    assert {n: (out / n).stat().st_ino for n in done} == {n: v[0] for n, v in done.items()}
    assert {n: (out / n).stat().st_mtime_ns for n in done} == {n: v[1] for n, v in done.items()}


# The project's shared/ folder sits beside the checkout (as CI lays it out too): ../shared/realdata
# relative to the project root.
PROJECT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
REALDATA = PROJECT.parent / "shared" / "realdata"


@pytest.mark.skipif(not REALDATA.is_dir(), reason="the real CC-3M sample lines are not on this machine")
@pytest.mark.parametrize("report", ["DERIVED_current_6col", "OLD_7col"])
def test_real_report_lines_parse(tmp_path, report):
    from babylm.prep.sharding.plan import FileLoc
    from babylm.prep.sources.downloader import DownloaderRows

    src = tmp_path / "Conceptual-3M"
    src.mkdir()
    (src / "Validation_GCC-1.1.0-Validation.tsv").write_bytes(
        (REALDATA / "cc3m_Validation_GCC-1.1.0-Validation_first20.tsv").read_bytes()
    )
    name = f"cc3m_downloaded_validation_report_{report}_format_first20.tsv"
    (src / "downloaded_validation_report.tsv").write_bytes((REALDATA / name).read_bytes())
    listed = DownloaderRows(src, "validation", jpeg_only=False, out_dir=tmp_path / "out")
    rows, inputs = listed.take(range(len(listed))), listed.facts
    assert len(rows) == 20 and Counter(r.reason for r in rows) == {None: 17, "download_failed": 3}
    assert inputs["report_layout"] == ("6col" if report.startswith("DERIVED") else "7col")
    assert rows[0].caption == "author: a life in photography -- in pictures"
    assert rows[0].loc == FileLoc(
        "validation/0_1595581236" if report.startswith("DERIVED") else "validation/1595581236"
    )
    assert rows[1].reason == "download_failed" and rows[1].info["url"].endswith("winter-fly-fishing.jpg")
