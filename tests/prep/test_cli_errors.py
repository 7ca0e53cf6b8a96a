"""Every mistake a user can make with a babylm-prep path is one line, exit status 2, no traceback.

Each command gets a missing path, a folder (or file) of the wrong dataset kind and, where it reads
one, a malformed manifest, plan or tokenizer file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from babylm.prep.cli import main as prep_main
from tests.prep.raw_fixtures import good_cc3m_rows, write_cc3m_downloader, write_corpus

MISSING = "/missing/babylm-nowhere"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """A text corpus, a CC-3M raw folder, and folders with a malformed manifest, plan, tokenizer."""
    tmp = tmp_path_factory.mktemp("wrong")
    write_corpus(tmp / "text", "vis2024")
    write_cc3m_downloader(tmp / "raw", good_cc3m_rows(2))
    bad_manifest = tmp / "bad_manifest"
    bad_manifest.mkdir()
    (bad_manifest / "manifest.json").write_text('{"kind": "image_text", "shards": [')
    bad_plan = tmp / "bad_plan"
    bad_plan.mkdir()
    (bad_plan / ".plan.json").write_text("[1, 2")
    plans = {
        # units bounded by nothing but the file: never a loop bound before it is checked
        "huge_plan": {"units": 10**12, "params": {"input_rows": 10**15, "samples_per_shard": 1000}},
        "lying_plan": {"units": 10**12, "params": {"input_rows": 10, "samples_per_shard": 1000}},
        "string_plan": {"units": "3", "params": {"input_rows": 3, "samples_per_shard": 1}},
        "no_sha_plan": {"units": 1, "params": {"input_rows": 1, "samples_per_shard": 1}, "plan_sha256": 7},
    }
    for name, plan in plans.items():
        (tmp / name).mkdir()
        full = {"kind": "image_text", "name": "x", "plan_sha256": "ab" * 32, **plan}
        full["params"] = dict(full["params"], units=plan["units"])
        (tmp / name / ".plan.json").write_text(json.dumps(full))
    bad_tok = tmp / "tokenizer.json"
    bad_tok.write_text('{"model": ')
    a_file = tmp / "a_file.txt"
    a_file.write_text("x\n")
    return {
        "text": tmp / "text",
        "vis_text": tmp / "text" / "babylm_vis_text_2024",
        "raw": tmp / "raw",
        "cc3m": tmp / "raw" / "Conceptual-3M",
        "bad_manifest": bad_manifest,
        "bad_plan": bad_plan,
        "bad_tok": bad_tok,
        "a_file": a_file,
        "out": tmp / "out",
        **{name: tmp / name for name in plans},
    }


# (command line with {names} from `inputs`, what the one line must mention)
CASES = {
    # cc3m
    "cc3m missing root": (["cc3m", "--root", MISSING], MISSING),
    "cc3m missing src": (["cc3m", "--src", MISSING, "--out", "{out}/a"], MISSING),
    "cc3m text corpus as src": (["cc3m", "--src", "{vis_text}", "--out", "{out}/b"], "Conceptual-3M"),
    "cc3m img2dataset without tars": (
        ["cc3m", "--src", "{vis_text}", "--layout", "img2dataset", "--out", "{out}/c"],
        "no *.tar",
    ),
    "cc3m no root at all": (["cc3m"], "--root"),
    # localnarr
    "localnarr missing root": (["localnarr", "--root", MISSING], MISSING),
    "localnarr cc3m folder as src": (["localnarr", "--src", "{cc3m}", "--out", "{out}/d"], "all_anno"),
    "localnarr missing jsonl": (["localnarr", "--layout", "jsonl", "--jsonl", MISSING], MISSING),
    # features
    "features missing captions": (["features", "--captions", MISSING, "--states", "{a_file}"], MISSING),
    "features text file as captions": (
        ["features", "--captions", "{a_file}", "--states", "{a_file}", "--out", "{out}/e"],
        "not valid JSON",
    ),
    "features text file as states": (
        ["features", "--captions", "{bad_tok}", "--states", "{a_file}", "--out", "{out}/f"],
        "tokenizer.json",
    ),
    # tokenizer
    "tokenizer missing root": (["tokenizer", "--corpus", "vis2024", "--root", MISSING], MISSING),
    "tokenizer cc3m folder as root": (
        ["tokenizer", "--corpus", "vis2024", "--root", "{raw}", "--out", "{out}/g"],
        "missing",
    ),
    # text
    "text missing root": (["text", "--corpus", "vis2024", "--root", MISSING, "--tokenizer", "x"], MISSING),
    "text cc3m folder as root": (
        ["text", "--corpus", "vis2024", "--root", "{raw}", "--tokenizer", "x", "--out", "{out}/h"],
        "babylm_vis_text_2024",
    ),
    "text missing tokenizer": (
        ["text", "--corpus", "vis2024", "--root", "{text}", "--tokenizer", MISSING, "--out", "{out}/i"],
        MISSING,
    ),
    "text corpus folder as tokenizer": (
        ["text", "--corpus", "vis2024", "--root", "{text}", "--tokenizer", "{text}", "--out", "{out}/j"],
        "tokenizer.json",
    ),
    "text malformed tokenizer.json": (
        ["text", "--corpus", "vis2024", "--root", "{text}", "--tokenizer", "{bad_tok}", "--out", "{out}/k"],
        "tokenizer.json",
    ),
    # merge
    "merge missing folder": (["merge", MISSING], MISSING),
    "merge text corpus folder": (["merge", "{vis_text}"], ".plan.json"),
    "merge malformed plan": (["merge", "{bad_plan}"], ".plan.json"),
    "merge two folders without out": (["merge", "{text}", "{raw}"], "--out"),
    "merge plan of 10**12 units": (
        ["merge", "{huge_plan}"],
        "huge_plan: 1000000000000 of 1000000000000 work units",
    ),
    "merge plan whose units do not match its rows": (["merge", "{lying_plan}"], ".plan.json"),
    "merge plan with a string count": (["merge", "{string_plan}"], ".plan.json"),
    "merge plan without a sha256": (["merge", "{no_sha_plan}"], ".plan.json"),
    # values out of range, refused while parsing
    "cc3m samples per shard 0": (
        ["cc3m", "--root", "{raw}", "--samples-per-shard", "0"],
        "--samples-per-shard",
    ),
    "cc3m workers 0": (["cc3m", "--root", "{raw}", "--workers", "0"], "--workers"),
    "cc3m quality 101": (["cc3m", "--root", "{raw}", "--quality", "101"], "--quality"),
    "cc3m image size 0": (["cc3m", "--root", "{raw}", "--image-size", "0"], "--image-size"),
    "cc3m part 3 of 2": (["cc3m", "--root", "{raw}", "--part", "3/2"], "--part"),
    "cc3m out is a file": (["cc3m", "--root", "{raw}", "--out", "{a_file}"], "a_file.txt"),
    "text out is a file": (
        ["text", "--corpus", "vis2024", "--root", "{text}", "--tokenizer", "x", "--out", "{a_file}"],
        "a_file.txt",
    ),
    "demo-data no rows": (["demo-data", "--out", "{out}/demo", "--cc3m-rows", "0"], "--cc3m-rows"),
    "inspect sheet of an unknown format": (
        ["inspect", "{bad_manifest}", "--sheet", "sheet.xyz"],
        "sheet.xyz",
    ),
    "inspect count 0": (["inspect", "{bad_manifest}", "--count", "0"], "--count"),
    # verify / inspect
    "verify missing": (["verify", MISSING], MISSING),
    "verify raw folder": (["verify", "{cc3m}"], "Conceptual-3M"),
    "verify malformed manifest": (["verify", "{bad_manifest}"], "manifest.json"),
    "inspect missing": (["inspect", MISSING], MISSING),
    "inspect raw folder": (["inspect", "{vis_text}"], "babylm_vis_text_2024"),
    "inspect malformed manifest": (["inspect", "{bad_manifest}"], "manifest.json"),
    # demo-data
    "demo-data out is a file": (["demo-data", "--out", "{a_file}"], "a_file.txt"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_errors_are_one_line_exit_2_no_traceback(case, inputs):
    args, mention = CASES[case]
    args = [a.format(**{k: str(v) for k, v in inputs.items()}) for a in args]
    env = {"BABYLM_ROOT_DIR": None, "BABYLM_DATASET_ROOT_DIR": None}
    result = CliRunner().invoke(prep_main, args, env=env)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ") and mention in lines[0], lines[0]


def test_no_command_prints_the_help_not_an_error_line():
    result = CliRunner().invoke(prep_main, [], prog_name="babylm-prep")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith("Usage: babylm-prep") and "\nCommands:\n" in result.output


def _image_dataset(folder: Path) -> Path:
    from babylm.shards import Manifest, RollingWriter, write_manifest
    from tests.shards.sample_fixtures import image_samples

    with RollingWriter(folder, "tar", max_samples=8) as w:
        for sample in image_samples(4):
            w.write(sample)
    write_manifest(folder, Manifest(kind="image_text", shards=w.entries, name="images"))
    return folder


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_one_line_naming_the_output(tmp_path):
    dataset = _image_dataset(tmp_path / "images")
    sheet = tmp_path / "sheet.png"
    sheet.symlink_to("/dev/full")  # every write fails with ENOSPC, as on a full disk
    result = CliRunner().invoke(prep_main, ["inspect", str(dataset), "--sheet", str(sheet)])
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert len(errors) == 1 and errors[0].startswith(f"Error: {sheet}: no space left on the device;"), errors


def test_a_read_only_out_is_one_line_naming_it(inputs, tmp_path, monkeypatch):
    import errno
    import os

    real_mkdir = os.mkdir

    def read_only(path, *args, **kwargs):  # the file system of tmp_path/ro is mounted read-only
        if str(path).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", read_only)
    out = tmp_path / "ro" / "cc3m"
    result = CliRunner().invoke(
        prep_main, ["cc3m", "--root", str(inputs["raw"]), "--out", str(out), "--no-progress"]
    )
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert len(lines) == 1 and lines[0].startswith(f"Error: {out}"), lines
    assert lines[0].endswith(": the file system is read-only; choose a writable output (--out)")
