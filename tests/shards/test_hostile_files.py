"""Forged manifests and indexes, files that are not files, a JPEG bomb, token ids past the
vocabulary: `verify` names them, `inspect` never hangs or crashes, the CLI prints one line."""

from __future__ import annotations

import io
import json
import os
import re

import pytest
import simplejpeg
from click.testing import CliRunner

from babylm.prep.cli import main as prep_main
from babylm.shards import (
    Manifest,
    ManifestError,
    NotRegularFile,
    RollingWriter,
    TarShardWriter,
    open_dataset,
    parse_manifest,
    verify_dataset,
    write_manifest,
)
from tests.shards.hostile_fixtures import edit_manifest, finishes, forge_index, jpeg_bomb
from tests.shards.sample_fixtures import image_samples


@pytest.fixture
def images(tmp_path):
    out = tmp_path / "images"
    with RollingWriter(out, "tar", max_samples=4) as w:
        for s in image_samples(10):
            w.write(s)
    write_manifest(out, Manifest(kind="image_text", shards=w.entries))
    return out


def _problems(path, deep=False) -> list[str]:
    return [str(p) for p in finishes(lambda: verify_dataset(open_dataset(path), deep=deep))]


def _one_error_line(result) -> str:
    """The CLI's one `Error:` line (after whatever it printed before failing), exit status 2."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in result.output, result.output
    return errors[0]


def _swap_first(ranges, crcs):
    ranges[1] = ranges[1, ::-1]


def _end_far(ranges, crcs):
    ranges[-1, 1] = 2**62


def _overlap(ranges, crcs):
    ranges[1, 0] = ranges[0, 1] - 512


@pytest.mark.parametrize("forge", [_swap_first, _end_far, _overlap], ids=["start>end", "end=2^62", "overlap"])
def test_verify_catches_a_forged_index(images, forge):
    forge_index(images, 0, forge)
    found = _problems(images)
    assert len(found) == 1 and "shard-000000.idx" in found[0] and "forged or damaged index" in found[0]


def test_deep_verify_catches_ranges_that_are_sane_but_not_the_tars(images):
    def move_a_member(ranges, crcs):  # sample 0's last member given to sample 1: in order, no overlap
        ranges[0, 1] -= 1024
        ranges[1, 0] -= 1024

    forge_index(images, 0, move_a_member)
    assert _problems(images) == []  # the loader would count the two samples corrupt (CRC)
    found = _problems(images, deep=True)
    assert len(found) == 1 and "differ from the tar's own" in found[0]


def test_deep_verify_catches_checksums_that_are_not_the_tars(images):
    forge_index(images, 1, lambda ranges, crcs: crcs.__setitem__(2, crcs[2] ^ 1))
    found = _problems(images, deep=True)
    assert len(found) == 1 and "1 sample checksums differ" in found[0]


def test_an_index_listed_with_another_sample_count_is_refused(images):
    edit_manifest(images, lambda m: m["shards"][0].update(samples=10**12))
    with pytest.raises(ManifestError, match="index.bytes"):
        open_dataset(images)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: os.mkfifo(p),
        lambda p: os.symlink("/dev/zero", p),
        lambda p: os.mkdir(p),
    ],
    ids=["fifo", "dev-zero", "folder"],
)
def test_a_shard_that_is_not_a_file_is_a_problem_not_a_hang(images, tmp_path, make):
    shard = images / "shard-000001.tar"
    shard.unlink()
    make(shard)
    found = _problems(images)
    assert len(found) == 1 and found[0].startswith("shard-000001.tar") and "not a regular file" in found[0]
    sheet = tmp_path / "sheet.png"
    args = ["inspect", str(images), "--sheet", str(sheet), "--count"]
    result = finishes(lambda: CliRunner().invoke(prep_main, [*args, "3"]))
    assert result.exit_code == 0  # the first shard fills the sheet; the bad one is not reached
    result = finishes(lambda: CliRunner().invoke(prep_main, [*args, "9"]))
    line = _one_error_line(result)
    assert "shard-000001.tar" in line and "not a regular file" in line


def test_an_index_that_is_a_fifo_is_a_problem_not_a_hang(images):
    index = images / "shard-000000.idx"
    index.unlink()
    os.mkfifo(index)
    found = _problems(images)
    assert len(found) == 1 and "shard-000000.idx" in found[0] and "FIFO" in found[0]


def test_a_manifest_that_is_a_fifo_is_one_error_line(tmp_path):
    os.mkfifo(tmp_path / "manifest.json")
    with pytest.raises(NotRegularFile):
        finishes(lambda: open_dataset(tmp_path))
    result = finishes(lambda: CliRunner().invoke(prep_main, ["verify", str(tmp_path)]))
    assert "manifest.json" in _one_error_line(result)


def _valid() -> dict:
    entry = {"path": "a.tar", "samples": 1, "bytes": 1024, "sha256": "0" * 64}
    return {"format_version": 1, "kind": "image_text", "shards": [entry]}


def _with(**entry) -> bytes:
    data = _valid()
    data["shards"][0].update(entry)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    "text, says",
    [
        (b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, "not valid JSON"),
        (_with(path="."), "names a folder"),
        (_with(path="a/"), "names a folder"),
        (_with(path="a\u0000.tar"), "control characters"),
        (json.dumps(_valid()).encode().replace(b'"image_text"', b'"image_\xff\xfetext"'), "not UTF-8"),
        (_with(samples="12"), "'shards[0].samples' must be int"),
        (_with(bytes=2**80), "outside"),
        (_with(tokens="many"), "'shards[0].tokens' must be int"),
        (json.dumps({**_valid(), "params": {"vocab_size": "50"}}).encode(), "params.vocab_size"),
        (b"[" * 50_000 + b"]" * 50_000, "not valid JSON"),
    ],
    ids=[
        "deep",
        "dot",
        "slash",
        "nul",
        "non-utf8",
        "str-samples",
        "huge",
        "str-tokens",
        "str-vocab",
        "deep-list",
    ],
)
def test_forged_manifest_is_a_manifest_error_and_one_cli_line(tmp_path, text, says):
    with pytest.raises(ManifestError, match=re.escape(says)):
        parse_manifest(text, "somewhere/manifest.json")
    (tmp_path / "manifest.json").write_bytes(text)
    for command in ("verify", "inspect"):
        line = _one_error_line(CliRunner().invoke(prep_main, [command, str(tmp_path)]))
        assert "manifest.json" in line


def test_jpeg_bomb_is_refused_by_deep_verify_and_shown_empty_on_the_sheet(tmp_path):
    bomb = jpeg_bomb()
    assert simplejpeg.decode_jpeg_header(bomb)[:2] == (12000, 12000) and len(bomb) < 1000
    out = tmp_path / "bomb"
    with TarShardWriter(out, "shard-000000.tar") as w:
        w.write({"__key__": "ok", "jpg": image_samples(1)[0]["jpg"], "txt": "fine"})
        w.write({"__key__": "bomb", "jpg": bomb, "txt": "a bomb"})
    write_manifest(out, Manifest(kind="image_text", shards=[w.entry]))
    found = _problems(out, deep=True)
    assert len(found) == 1 and "bomb.jpg" in found[0] and "12000x12000" in found[0]
    sheet = tmp_path / "sheet.png"
    result = CliRunner().invoke(prep_main, ["inspect", str(out), "--sheet", str(sheet)])
    assert result.exit_code == 0, result.output
    assert "contact sheet of 2 samples" in result.output and sheet.exists()


def test_plain_verify_catches_token_ids_past_the_recorded_vocabulary(tmp_path):
    out = tmp_path / "tokens"
    with RollingWriter(out, "arrow", max_samples=5, vocab_size=100) as w:
        for i in range(8):
            w.write([i * 12] * 3, words=3)  # ids up to 84
    write_manifest(out, Manifest(kind="tokens", shards=w.entries, params={"vocab_size": 100}))
    assert _problems(out) == []
    edit_manifest(out, lambda m: m["params"].update(vocab_size=50))  # as if tokenized with more
    found = _problems(out)
    assert len(found) == 1 and "token id 84 >= vocab size 50" in found[0]
    result = CliRunner().invoke(prep_main, ["verify", str(out)])
    assert result.exit_code == 1 and "token id 84" in result.output


def test_npy_declaring_more_than_it_holds_is_refused_before_allocating():
    import numpy as np

    from babylm.shards import read_npy

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)})
    buf.write(bytes(64))
    with pytest.raises(ValueError, match="declares"):
        read_npy(buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, np.arange(6, dtype=np.float32).reshape(2, 3))
    assert read_npy(buf.getvalue()).tolist() == [[0, 1, 2], [3, 4, 5]]
