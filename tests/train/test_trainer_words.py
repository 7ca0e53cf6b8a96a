"""Words seen in one process: counted per optimizer step, in metrics and checkpoints, carried over
a resume; checkpoints at word milestones (named chck_*, never rotated) and a word budget."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from babylm.train.cli import main
from babylm.train.words import PRESETS, milestone_name, parse_milestones, parse_words, reached
from tests.train.data.test_loader_words import write_old_tokens
from tests.train.trainer_fixtures import metrics, run, train_args, write_trainer_data

STEPS = 32  # about 1,000 words of the fixture corpus: a milestone named in K


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_tokenizer_dir) -> dict[str, str]:
    return write_trainer_data(tmp_path_factory.mktemp("words_data"), tiny_tokenizer_dir)


@pytest.fixture(scope="module")
def plain(data, tmp_path_factory) -> Path:
    """A run without milestones: the words seen after every step."""
    out = tmp_path_factory.mktemp("plain") / "run"
    run(train_args("opt", data, out, "--max-steps", str(STEPS), "--save-every", "0"))
    return out


def words_of(run_dir: Path) -> list[int]:
    return [r["words"] for r in metrics(run_dir)]


def checkpoints(run_dir: Path) -> dict[int, dict]:
    from babylm.train.checkpoint import list_checkpoints

    return {meta["step"]: meta for _, meta in list_checkpoints(run_dir)}


def test_names_parsing_and_presets():
    assert [milestone_name(n) for n in (500_000, 1_000_000, 90_000_000, 10**9, 2500, 1234)] == [
        "chck_500K", "chck_1M", "chck_90M", "chck_1000M", "chck_2500", "chck_1234",
    ]  # fmt: skip
    assert parse_milestones("1M, 2M,500K,1B,1M") == [500_000, 1_000_000, 2_000_000, 10**9]
    assert parse_words("1.5m") == 1_500_000 and parse_words("1_000") == 1000
    big, small = parse_milestones("babylm-2025"), parse_milestones("babylm-2025-small")
    assert len(big) == 28 and len(small) == 19 and small == big[:19]
    names = [milestone_name(n) for n in PRESETS["babylm-2025"]]
    assert names[:10] == [f"chck_{n}M" for n in range(1, 10)] + ["chck_10M"]
    assert names[18:] == [f"chck_{n}M" for n in range(100, 1001, 100)]
    assert reached(small, 999_999, 20_000_000) == [f"chck_{n}M" for n in range(1, 10)] + [
        "chck_10M",
        "chck_20M",
    ]
    for bad in ("", "1X", "0", "-1M", "1.0000001K"):
        with pytest.raises(ValueError, match="checkpoint-words"):
            parse_milestones(bad)


def test_words_seen_are_the_sum_of_the_loaders_batches(data, plain):
    from babylm.train.data import LoaderSpec, build_loader

    loader = build_loader(data["text"], LoaderSpec(batch_size=8, seq_len=16, seed=1), kind="tokens")
    per_batch = [b.words for _, b in zip(range(STEPS), loader.batches(), strict=False)]
    assert words_of(plain) == np.cumsum(per_batch).tolist()
    assert len(set(per_batch)) > 1
    meta = checkpoints(plain)[STEPS]
    assert meta["words"] == words_of(plain)[-1]


@pytest.fixture(scope="module")
def milestones(data, plain, tmp_path_factory) -> tuple[Path, list[int]]:
    """A run with milestones: one reached exactly at step 2, two crossed together by step 5, one
    in thousands (named in K); every step saves, and --keep 1 rotates the periodic ones."""
    seen = words_of(plain)
    thousands = seen[-1] // 1000 * 1000
    assert thousands > seen[4]
    wanted = [seen[1], seen[3] + 1, seen[4], thousands]
    out = tmp_path_factory.mktemp("milestones") / "run"
    spec = ",".join(str(w) for w in wanted)
    run(train_args("opt", data, out, "--max-steps", str(STEPS), "--save-every", "1", "--keep", "1",
                   "--checkpoint-words", spec))  # fmt: skip
    return out, wanted


def test_milestones_save_named_checkpoints_that_keep_never_prunes(plain, milestones):
    seen = words_of(plain)
    out, (at2, between, at5, thousands) = milestones
    saved = checkpoints(out)
    assert saved[2]["tags"] == sorted(["periodic", milestone_name(at2)])
    assert set(saved[5]["tags"]) >= {milestone_name(between), milestone_name(at5)}
    step = next(i + 1 for i, w in enumerate(seen) if w >= thousands)
    assert f"chck_{thousands // 1000}K" in saved[step]["tags"]
    # --keep 1 left one periodic checkpoint besides the milestones and the final one
    assert sorted(saved) == sorted({2, 5, step, STEPS - 1, STEPS})
    assert all(saved[s]["words"] == seen[s - 1] for s in saved)
    assert words_of(out) == seen


LOAD_REVISIONS = r"""
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
out = {}
for revision in sys.argv[1:]:
    model = AutoModelForCausalLM.from_pretrained("babylm-test/words-opt", revision=revision)
    tok = AutoTokenizer.from_pretrained("babylm-test/words-opt", revision=revision)
    with torch.no_grad():
        logits = model(torch.tensor([tok("a red square")["input_ids"]])).logits
    out[revision] = logits[0, -1, :6].tolist()
print(json.dumps(out))
"""


def test_export_revisions_loads_each_milestone_offline(milestones, tmp_path):
    import os
    import subprocess
    import sys

    from babylm.train.checkpoint import load_model

    out, _ = milestones
    names = sorted({t for m in checkpoints(out).values() for t in m["tags"] if t.startswith("chck_")})
    hub = tmp_path / "hub"
    result = CliRunner().invoke(
        main, ["export", str(out), str(hub), "--revisions", "--repo-id", "babylm-test/words-opt"]
    )
    assert result.exit_code == 0, result.output
    refs = hub / "models--babylm-test--words-opt" / "refs"
    assert sorted(p.name for p in refs.iterdir()) == sorted([*names, "main"])
    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_REVISIONS, *names, "main"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    # each revision its checkpoint's weights (step 5 carries two milestones: one checkpoint)
    steps = {m["step"] for m in checkpoints(out).values() if any(t in got or t == "final" for t in m["tags"])}
    assert len({tuple(v) for v in got.values()}) == len(steps) == len(got) - 1
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(
        str(hub / "models--babylm-test--words-opt" / "snapshots" / (refs / "main").read_text())
    )
    ids = torch.tensor([tok("a red square")["input_ids"]])
    for path, meta in checkpoints_with_paths(out):
        model, _, _ = load_model(path)
        with torch.no_grad():
            expected = model(input_ids=ids).logits[0, -1, :6]
        for tag in meta["tags"]:
            if tag.startswith("chck_") or tag == "final":
                torch.testing.assert_close(torch.tensor(got["main" if tag == "final" else tag]), expected)


def test_export_revisions_errors_are_one_line(milestones, tmp_path):
    out, _ = milestones
    cases = {
        "--revisions and --repo-id": ["export", str(out), str(tmp_path / "a"), "--revisions"],
        "repo id": ["export", str(out), str(tmp_path / "b"), "--revisions", "--repo-id", "no-slash"],
        "no complete checkpoints": [
            "export", str(tmp_path), str(tmp_path / "c"), "--revisions", "--repo-id", "a/b"
        ],
    }  # fmt: skip
    for expected, args in cases.items():
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        last = result.output.strip().splitlines()[-1]
        assert last.startswith("Error: ") and expected in last, last


def checkpoints_with_paths(run_dir: Path) -> list[tuple[Path, dict]]:
    from babylm.train.checkpoint import list_checkpoints

    return list_checkpoints(run_dir)


def test_resume_continues_the_count(data, plain, tmp_path):
    first, resumed = tmp_path / "first", tmp_path / "resumed"
    run(train_args("opt", data, first, "--max-steps", "4", "--save-every", "4"))
    ckpt = first / "checkpoints/step-00000004"
    run(
        train_args(
            "opt", data, resumed, "--max-steps", str(STEPS), "--save-every", "0", "--resume", str(ckpt)
        )
    )
    assert words_of(resumed) == words_of(plain)[4:]


def test_max_words_ends_the_run_with_a_final_checkpoint(data, plain, tmp_path):
    seen = words_of(plain)
    out = tmp_path / "budget"
    run(train_args("opt", data, out, "--save-every", "0", "--max-words", str(seen[4] - 1)))
    assert words_of(out) == seen[:5]
    assert json.loads((out / "done.json").read_text())["step"] == 5
    assert "final" in checkpoints(out)[5]["tags"]


def test_shards_without_word_counts(data, tmp_path):
    write_old_tokens(tmp_path / "old")
    data = {**data, "text": str(tmp_path / "old")}
    # the old fixture's ids fit a 100-token vocabulary; the tiny tokenizer is bigger
    args = train_args("opt", data, tmp_path / "run", "--max-steps", "2", "--save-every", "0")
    result = CliRunner().invoke(main, [*args, "--checkpoint-words", "1K"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert (
        lines[-1].startswith("Error: --checkpoint-words needs word counts")
        and "babylm-prep text" in lines[-1]
    )
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "counting words seen needs word counts" in result.output
    assert all("words" not in r for r in metrics(tmp_path / "run"))
