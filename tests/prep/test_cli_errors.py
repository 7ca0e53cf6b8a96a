"""Every mistake a user can make with a babylm-prep path is one line, exit status 2, no traceback.

Each command gets a missing path, a folder (or file) of the wrong dataset kind and, where it reads
one, a malformed manifest, plan or tokenizer file.
"""

from __future__ import annotations

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
