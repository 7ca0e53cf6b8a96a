"""Helpers of the prep tests: run `babylm-prep` in-process and read what it wrote."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from babylm.prep.cli import main as prep_main
from babylm.shards import iter_tar_samples, open_dataset


def run_prep(*args: str, ok: bool = True):
    """Run `babylm-prep ARGS` in-process; assert success (or failure when ok=False)."""
    result = CliRunner().invoke(prep_main, [*args, "--no-progress"] if args[0] != "merge" else list(args))
    if ok and result.exit_code != 0:
        raise AssertionError(f"babylm-prep {' '.join(args)} failed:\n{result.output}") from result.exception
    if not ok:
        assert result.exit_code != 0, result.output
    return result


def read_samples(out: Path) -> dict[str, dict]:
    """Every sample of a dataset folder by key, in shard order."""
    ds = open_dataset(out)
    samples = {}
    for entry in ds.manifest.shards:
        with ds.open_shard(entry) as f:
            for s in iter_tar_samples(f, entry.path):
                assert s["__key__"] not in samples, "keys must be unique"
                samples[s["__key__"]] = s
    return samples


def skipped_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]


def folder_bytes(out: Path) -> dict[str, bytes]:
    """manifest.json, skipped.jsonl and every shard, for byte-equality checks."""
    names = ["manifest.json", "skipped.jsonl", *sorted(p.name for p in out.glob("shard-*.tar"))]
    return {n: (out / n).read_bytes() for n in names}
