"""Hostile raw trees: rows naming files outside the tree, FIFOs, devices, NUL bytes, Infinity,
deep JSON. Each becomes a counted skip under its reason; nothing outside the tree is read, no
file's content reaches `skipped.jsonl`, and the other rows are written (exit status 0).

The preps run as subprocesses with a timeout: a FIFO read by mistake blocks forever.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from babylm.shards import open_dataset, verify_dataset
from tests.prep.cli_helpers import read_samples, skipped_lines
from tests.prep.raw_fixtures import (
    REAL_OPEN_IMAGES_IDS,
    LnAnnotation,
    good_cc3m_rows,
    jpeg_bytes,
    write_cc3m_downloader,
    write_cc3m_img2dataset,
    write_corpus,
    write_features,
    write_ln_anno,
    write_ln_jsonl,
)

SECRET = b"root:x:0:0:root:/root:/bin/bash SECRET-MARKER-7f3a\n"
PREP_TIMEOUT = 180


def prep(*args: str) -> subprocess.CompletedProcess:
    """`babylm-prep ARGS` in a subprocess that a blocking read cannot hang."""
    quiet = ["--no-progress"] if args[0] != "tokenizer" else []
    cmd = [sys.executable, "-m", "babylm.prep", *args, *quiet]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=PREP_TIMEOUT)


def prep_ok(*args: str) -> subprocess.CompletedProcess:
    result = prep(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def outside_files(tmp_path: Path) -> tuple[Path, Path]:
    """A secret text file and a real JPEG, both outside the raw tree."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (outside / "photo.jpg").write_bytes(jpeg_bytes(3, (96, 72)))
    return outside / "secret.txt", outside / "photo.jpg"


def assert_no_leak(out: Path) -> None:
    text = (out / "skipped.jsonl").read_text()
    assert "SECRET-MARKER" not in text and "root:x:0" not in text
    assert "content starts" not in text


def assert_accounted(out: Path, rows: int) -> None:
    m = open_dataset(out).manifest
    assert m.num_samples + m.num_skipped == rows == m.params["input_rows"]
    assert len(skipped_lines(out)) == m.num_skipped
    assert len(read_samples(out)) == m.num_samples
    assert verify_dataset(open_dataset(out)) == []


# --- CC-3M, downloader layout ---------------------------------------------------------------


def append_rows(src: Path, rows: list[tuple[str, str, bytes]]) -> None:
    """Append (caption, url, report `file` field as bytes) rows to both TSVs of the training split."""
    with (
        open(src / "Train_GCC-training.tsv", "ab") as cap,
        open(src / "downloaded_training_report.tsv", "ab") as rep,
    ):
        for caption, url, file in rows:
            cap.write(f"{caption}\t{url}\n".encode())
            rep.write(file + f"\ttraining\timage/jpeg\t1000.0\t200\t{url}\n".encode())


def test_cc3m_report_rows_pointing_anywhere(tmp_path):
    secret, photo = outside_files(tmp_path)
    root = tmp_path / "raw"
    src = write_cc3m_downloader(root, good_cc3m_rows(6))
    train = src / "training"
    os.mkfifo(train / "fifo")
    (train / "a_folder").mkdir()
    (train / "secret_inside").write_bytes(SECRET)  # inside the tree: read, but never quoted
    (train / "link_out").symlink_to(photo)
    (train / "link_zero").symlink_to("/dev/zero")
    (train / "link_in").symlink_to(train / "0_761006989")  # stays inside: a good row
    with open(train / "huge", "wb") as f:  # sparse: reading it whole would take minutes and the memory
        f.truncate(64 << 30)
    depth = "../" * len(secret.relative_to("/").parts)
    hostile = {
        "outside_root": [
            str(photo).encode(),
            f"{depth}{secret.relative_to('/')}".encode(),
            f"training/../../../{secret.relative_to(tmp_path)}".encode(),
            b"/etc/passwd",
            b"../../../../../../../../etc/hostname",
            b"/dev/zero",
            b"training/link_out",
            b"training/link_zero",
        ],
        "not_a_file": [b"training/fifo", b"training/a_folder", b"training"],
        "bad_path": [b"training/nul\x00name"],
        "too_large": [b"training/huge"],
        "not_an_image": [b"training/secret_inside"],
        "bad_encoding": [b"training/\xff\xfe"],
        "malformed_row": [b'"' + b"x" * 200_000 + b'"'],  # a quoted field over csv's size limit
    }
    rows = [
        (f"hostile row {i}", f"http://example.com/h{i}.jpg", f)
        for i, f in enumerate(sum(hostile.values(), []))
    ]
    rows.append(("a link that stays inside", "http://example.com/in.jpg", b"training/link_in"))
    append_rows(src, rows)
    out = tmp_path / "out"
    prep_ok("cc3m", "--root", str(root), "--out", str(out), "--samples-per-shard", "4")
    m = open_dataset(out).manifest
    assert Counter(m.skipped) == Counter({reason: len(files) for reason, files in hostile.items()})
    assert m.num_samples == 6 + 1
    assert_accounted(out, 6 + len(rows))
    assert_no_leak(out)
    # The outside JPEG (a valid image) was not trained on: no sample holds its caption.
    captions = {s["txt"].decode() for s in read_samples(out).values()}
    assert "hostile row 0" not in captions and "a link that stays inside" in captions


def test_cc3m_split_folder_may_be_a_symlink_to_another_disk(tmp_path):
    """The layout's own folder may live elsewhere (a common setup); its files are inside the tree."""
    root = tmp_path / "raw"
    src = write_cc3m_downloader(root, good_cc3m_rows(5))
    elsewhere = tmp_path / "bigdisk" / "training"
    elsewhere.parent.mkdir()
    (src / "training").rename(elsewhere)
    (src / "training").symlink_to(elsewhere)
    out = tmp_path / "out"
    prep_ok("cc3m", "--root", str(root), "--out", str(out))
    assert open_dataset(out).manifest.num_samples == 5


def test_cc3m_caption_tsv_that_is_a_fifo_is_one_error_line(tmp_path):
    root = tmp_path / "raw"
    src = write_cc3m_downloader(root, good_cc3m_rows(2))
    (src / "Train_GCC-training.tsv").unlink()
    os.mkfifo(src / "Train_GCC-training.tsv")
    result = prep("cc3m", "--root", str(root), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "not a regular file" in result.stderr


# --- CC-3M, img2dataset layout --------------------------------------------------------------


def test_img2dataset_hostile_members_and_shards(tmp_path):
    folder = write_cc3m_img2dataset(tmp_path / "i2d", good_cc3m_rows(4), per_shard=4)
    import io
    import tarfile

    with tarfile.open(folder / "00001.tar", "w") as tar:
        members = {
            "big.jpg": jpeg_bytes(1),
            "big.txt": b"x" * (2 << 20),  # no caption is 2 MiB: too_large, not read into the listing
            "deep.jpg": jpeg_bytes(2),
            "deep.txt": b"a deep sidecar costs its metadata only .",
            "deep.json": b"[" * 100_000 + b"]" * 100_000,
            "inf.jpg": jpeg_bytes(3),
            "inf.txt": b"an infinite width .",
            "inf.json": b'{"original_width": Infinity, "url": ["not", "a", "url"]}',
        }
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = tmp_path / "out"
    prep_ok("cc3m", "--layout", "img2dataset", "--src", str(folder), "--out", str(out))
    m = open_dataset(out).manifest
    assert m.skipped == {"too_large": 1}
    assert_accounted(out, 7)
    meta = {k: json.loads(s["json"]) for k, s in read_samples(out).items()}
    assert (
        "original_width" not in meta["cc3m-training-i2d-inf"] and "url" not in meta["cc3m-training-i2d-inf"]
    )

    os.mkfifo(folder / "00002.tar")
    result = prep("cc3m", "--layout", "img2dataset", "--src", str(folder), "--out", str(tmp_path / "o2"))
    assert result.returncode == 2 and "not a regular file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --- Localized Narratives, both layouts -----------------------------------------------------

INF_LINE = '{"dataset_id": "mscoco_train2017", "image_id": Infinity, "annotator_id": 1, "caption": "x"}'
INF_OI_LINE = '{"dataset_id": "open_images_train", "image_id": Infinity, "annotator_id": 1, "caption": "x"}'
DEEP = "[" * 100_000 + "]" * 100_000
WRONG_TYPES = '{"dataset_id": "open_images_train", "image_id": {"a": 1}, "annotator_id": 1, "caption": "x"}'
SURROGATE = '{"dataset_id": "open_images_train", "image_id": "abc", "annotator_id": 1, "caption": "\\ud800"}'
NUL_ID = '{"dataset_id": "open_images_train", "image_id": "ab\\u0000cd", "annotator_id": 1, "caption": "x"}'


def hostile_images(images: Path, photo: Path) -> list[LnAnnotation]:
    """Annotations whose image files are hostile: a link out, a FIFO, a folder."""
    ids = ["fifo0000", "linkout0", "folder00"]
    folder = images / "OpenImages"
    folder.mkdir(parents=True, exist_ok=True)
    os.mkfifo(folder / f"{ids[0]}.jpg")
    (folder / f"{ids[1]}.jpg").symlink_to(photo)
    (folder / f"{ids[2]}.jpg").mkdir()
    return [
        LnAnnotation("open_images", f"9{i:07d}", image_id, f"hostile image {i}")
        for i, image_id in enumerate(ids)
    ]


def good_annotations() -> list[LnAnnotation]:
    return [
        LnAnnotation("mscoco", f"{i:08d}", str(100 + i), f"a good narrative {i}", jpeg_bytes(i, (96, 72)))
        for i in range(3)
    ] + [LnAnnotation("open_images", "00000010", REAL_OPEN_IMAGES_IDS[0], "a good open image", jpeg_bytes(2))]


def test_localnarr_anno_layout_hostile(tmp_path):
    secret, photo = outside_files(tmp_path)
    good = good_annotations()
    # An annotation outside the tree that names a good image: followed, it would be a sample.
    outside_ann = tmp_path / "outside" / "ann.json"
    outside_ann.write_text(json.dumps(good[0].record()))
    raw = {
        "mscoco_inf.json": INF_LINE.encode(),
        "open_images_inf.json": INF_OI_LINE.encode(),
        "mscoco_deep.json": DEEP.encode(),
        "open_images_types.json": WRONG_TYPES.encode(),
        "open_images_nul.json": NUL_ID.encode(),
        "mscoco_bytes.json": b"\xff\xfe\x00garbage",
        "open_images_surrogate.json": SURROGATE.encode(),
    }
    src = write_ln_anno(tmp_path / "raw", good, raw=raw)
    anno = src / "all_anno"
    (anno / "mscoco_linkout.json").symlink_to(outside_ann)
    (anno / "mscoco_secret.json").symlink_to(secret)
    os.mkfifo(anno / "mscoco_fifo.json")
    (anno / "mscoco_dangling.json").symlink_to("gone.json")  # inside the tree, but not there
    # A file name that is not UTF-8 names a good annotation: written, its name shown as U+FFFD.
    (anno / os.fsdecode(b"mscoco_\xff\xfe.json")).write_text(json.dumps(good[1].record()))
    hostile = hostile_images(src, photo)
    for a in hostile:
        (anno / f"{a.prefix}_{a.uid}.json").write_text(json.dumps(a.record()))
    out = tmp_path / "out"
    prep_ok("localnarr", "--src", str(src), "--out", str(out), "--samples-per-shard", "4")
    m = open_dataset(out).manifest
    expected = Counter(malformed_json=len(raw), outside_root=3, not_a_file=3, missing_file=1)
    assert Counter(m.skipped) == expected
    assert m.num_samples == len(good) + 1
    assert_accounted(out, len(good) + 1 + len(raw) + 4 + len(hostile))
    assert_no_leak(out)


def test_localnarr_jsonl_layout_hostile(tmp_path):
    secret, photo = outside_files(tmp_path)
    good = good_annotations()
    images = tmp_path / "raw" / "images"
    hostile = hostile_images(images, photo)
    lines = [
        INF_LINE,
        INF_OI_LINE,
        DEEP,
        WRONG_TYPES,
        NUL_ID,
        SURROGATE,
        "[1, 2]",
        '{"caption": 5, "image_id": "1"}',
    ]
    path = write_ln_jsonl(tmp_path / "raw" / "ann.jsonl", good + hostile, images, raw_lines=lines)
    with open(path, "ab") as f:
        f.write(b'{"caption": "\xff\xfe", "image_id": "1"}\n')
    out = tmp_path / "out"
    prep_ok(
        "localnarr", "--layout", "jsonl", "--jsonl", str(path), "--images", str(images), "--out", str(out)
    )
    m = open_dataset(out).manifest
    assert Counter(m.skipped) == Counter(malformed_json=len(lines) + 1, outside_root=1, not_a_file=2)
    assert m.num_samples == len(good)
    assert_accounted(out, len(good) + len(hostile) + len(lines) + 1)
    assert_no_leak(out)


@pytest.mark.parametrize("layout", ["anno", "jsonl"])
def test_localnarr_image_ids_that_climb_out(tmp_path, layout):
    """`image_id`s that would leave the image folder: `..`, a path, an absolute path."""
    _, photo = outside_files(tmp_path)
    images = tmp_path / "raw" / "LocalNarratives" / "LocalNarratives"
    (images / "OpenImages").mkdir(parents=True)
    climbing = ["..", "../../../../outside/photo", str(photo.with_suffix("")), "..\\..\\x"]
    anns = [
        LnAnnotation("open_images", f"{i:08d}", image_id, f"climb {i}") for i, image_id in enumerate(climbing)
    ]
    anns.append(LnAnnotation("open_images", "00000009", REAL_OPEN_IMAGES_IDS[1], "a good one", jpeg_bytes(0)))
    out = tmp_path / "out"
    if layout == "anno":
        src = write_ln_anno(tmp_path / "raw", anns)
        prep_ok("localnarr", "--src", str(src), "--out", str(out))
    else:
        path = write_ln_jsonl(tmp_path / "raw" / "ann.jsonl", anns, images)
        prep_ok(
            "localnarr", "--layout", "jsonl", "--jsonl", str(path), "--images", str(images), "--out", str(out)
        )
    m = open_dataset(out).manifest
    assert m.num_samples == 1
    # `..` and names with `/` are not file names; a backslash is a plain character on POSIX.
    assert Counter(m.skipped) == Counter(malformed_json=3, missing_file=1)


# --- features -------------------------------------------------------------------------------


def test_features_captions_deep_or_not_text(tmp_path):
    captions = ["a caption", "\ud800 a lone surrogate", "another caption", "and one more"]
    cap, states, _ = write_features(tmp_path / "f", captions, dim=8, splits=1)
    out = tmp_path / "out"
    states_args = [a for p in states for a in ("--states", str(p))]
    prep_ok("features", "--captions", str(cap), *states_args, "--out", str(out))
    assert open_dataset(out).manifest.skipped == {"malformed_row": 1}
    assert_accounted(out, 4)

    cap.write_text("[" * 100_000 + "]" * 100_000)
    result = prep("features", "--captions", str(cap), *states_args, "--out", str(tmp_path / "o2"))
    assert result.returncode == 2 and "nested too deeply" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --- text corpora ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_corpus_file_that_is_not_a_regular_file_is_one_error_line(tmp_path, kind):
    folder = write_corpus(tmp_path / "raw", "vis2024")
    target = folder / "gutenberg.train"
    target.unlink()
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to("/dev/zero")
    result = prep(
        "tokenizer", "--corpus", "vis2024", "--root", str(tmp_path / "raw"), "--out", str(tmp_path / "tok")
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "gutenberg.train: not a regular file" in result.stderr
