"""The CC-3M downloader listing: a part classifies only its own rows, hash collisions make no
duplicates, an input that changes after listing is relisted or refused, never misread."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from babylm.prep.errors import InputError
from babylm.prep.images.process import ImagePolicy
from babylm.prep.sharding.config import ShardingConfig
from babylm.prep.sources import downloader
from babylm.prep.sources.cc3m import Cc3mConfig, run_cc3m
from babylm.prep.sources.downloader import DownloaderRows
from tests.prep.raw_fixtures import Cc3mRow, good_cc3m_rows, write_cc3m_downloader


def raw_rows() -> list[Cc3mRow]:
    rows = good_cc3m_rows(10) + [Cc3mRow("failed", f"http://example.com/{i}.jpg", None) for i in range(3)]
    rows += [
        Cc3mRow(rows[0].caption, rows[0].url, rows[0].image),
        Cc3mRow(rows[3].caption, rows[3].url, None),
    ]
    return rows + [Cc3mRow(rows[1].caption, rows[1].url, rows[1].image)]


@pytest.fixture
def src(tmp_path) -> Path:
    return write_cc3m_downloader(tmp_path / "raw", raw_rows())


def config(src: Path, out: Path, **sharding) -> Cc3mConfig:
    return Cc3mConfig(
        src=src,
        sharding=ShardingConfig(out=out, samples_per_shard=4, progress=False, **sharding),
        image=ImagePolicy(size=48),
    )


def test_a_part_after_the_plan_classifies_only_its_own_rows(src, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert run_cc3m(config(src, out, plan_only=True)) is None
    assert (out / ".plan.json").exists() and not list(out.glob("shard-*.tar"))
    seen: list[int] = []
    real = downloader.classify
    monkeypatch.setattr(downloader, "classify", lambda rules, i, *a: seen.append(i) or real(rules, i, *a))
    run_cc3m(config(src, out, part=(1, 3)))
    # 16 rows in units of 4: part 1 of 3 has unit 1 only.
    assert len(seen) == 4 and len(set(seen)) == 4


def test_hash_collisions_make_no_duplicates(src, tmp_path, monkeypatch):
    honest = DownloaderRows(src, "training", False, tmp_path / "a")
    monkeypatch.setattr(downloader, "hash", lambda value: 7, raising=False)  # every row collides
    colliding = DownloaderRows(src, "training", False, tmp_path / "b")
    for name in ("status", "first"):
        assert np.array_equal(honest.arrays[name], colliding.arrays[name])
    rows = colliding.take(range(len(colliding)))
    assert Counter(r.reason for r in rows) == {None: 10, "download_failed": 4, "duplicate": 2}
    assert [r.detail for r in rows if r.reason == "duplicate"] == [
        "same url and caption as row 0",
        "same url and caption as row 1",
    ]


def test_an_edited_input_is_listed_again(src, tmp_path):
    out = tmp_path / "out"
    assert len(DownloaderRows(src, "training", False, out)) == 16
    tsv, report = src / "Train_GCC-training.tsv", src / "downloaded_training_report.tsv"
    tsv.write_text(tsv.read_text() + "one more\thttp://example.com/more.jpg\n")
    report.write_text(report.read_text() + "\ttraining\t\t\t404\thttp://example.com/more.jpg\n")
    assert len(DownloaderRows(src, "training", False, out)) == 17


def test_an_input_changed_behind_the_listing_is_refused(src, tmp_path):
    out = tmp_path / "out"
    rows = DownloaderRows(src, "training", False, out)
    tsv = src / "Train_GCC-training.tsv"
    st = tsv.stat()
    lines = tsv.read_text().splitlines(keepends=True)
    url_of_row_5 = lines[5].split("\t")[1]
    lines[5] = lines[5].replace(url_of_row_5[:10], "x" * 10)  # same size, other url
    tsv.write_text("".join(lines))
    os.utime(tsv, ns=(st.st_atime_ns, st.st_mtime_ns))  # size and mtime as listed
    assert DownloaderRows(src, "training", False, out).arrays is not None  # the stale listing is reused...
    with pytest.raises(InputError, match=r"Train_GCC-training.tsv:6: changed since it was listed"):
        rows.take([5])  # ...but a row that no longer reads as listed is an error, not a wrong sample
