"""`babylm-prep add-words`: word counts for caption datasets written before prep counted words.

A caption sample's word count is `len(caption.split())` of its `.txt` member (the caption as
stored, which is what prep counts), so it can be added exactly without the raw data: every sample
is copied into a new folder with `words` in its `.json`, and the manifest gets the shard and
dataset totals. Token datasets cannot be done this way (the words of a line are not recoverable
from its token ids): rerun `babylm-prep text` for them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from babylm.prep.errors import ConfigError, InputError, OutputError
from babylm.shards import (
    Manifest,
    ShardEntry,
    TarShardWriter,
    atomic_write,
    iter_tar_samples,
    load_manifest,
    write_manifest,
)

CAPTION_KINDS = ("image_text", "features")
SKIPPED_NAME = "skipped.jsonl"


def _with_words(sample: dict, where: str) -> dict:
    """The sample for TarShardWriter: members as bytes, the json as a dict with `words`."""
    key = sample["__key__"]
    try:
        caption = sample["txt"].decode("utf-8")
        meta = json.loads(sample.get("json", b"{}"))
    except (KeyError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{where}: sample {key}: no readable .txt caption or .json ({e})") from e
    if not isinstance(meta, dict):
        raise InputError(f"{where}: sample {key}: .json is not an object")
    meta["words"] = len(caption.split())
    out = {k: v for k, v in sample.items() if k not in ("json", "__url__", "__local_path__")}
    out["json"] = meta
    return out


def add_words(source: Path, out: Path) -> Manifest:
    """Copy the caption dataset at `source` into `out` with a word count in every sample's json,
    per shard entry and in the manifest totals; returns the new manifest."""
    manifest = load_manifest(source)
    if manifest.kind not in CAPTION_KINDS:
        raise ConfigError(
            f"{source}: a {manifest.kind} dataset; the words of a text line cannot be recovered from "
            "its tokens: rerun babylm-prep text (into a new --out) to count them"
        )
    if out.resolve() == source.resolve():
        raise ConfigError(f"--out {out}: must differ from the dataset folder")
    if out.exists() and any(out.iterdir()):
        raise OutputError(f"--out {out}: not empty; choose a new folder")
    entries: list[ShardEntry] = []
    for entry in manifest.shards:
        with TarShardWriter(out, entry.path) as writer, open(source / entry.path, "rb") as f:
            for sample in iter_tar_samples(f, entry.path):
                writer.write(_with_words(sample, str(source / entry.path)))
            writer.meta = dict(entry.meta)
        if writer.samples != entry.samples:
            raise InputError(
                f"{source / entry.path}: holds {writer.samples} samples but the manifest says {entry.samples}; "
                "run babylm-prep verify on it"
            )
        assert writer.entry is not None
        entries.append(writer.entry)
    if (source / SKIPPED_NAME).exists():
        with atomic_write(out / SKIPPED_NAME) as f, open(source / SKIPPED_NAME, "rb") as skipped:
            shutil.copyfileobj(skipped, f)
    params = {**manifest.params, "words": "len(caption.split()) of the stored caption (added by add-words)"}
    new = Manifest(
        kind=manifest.kind, shards=entries, skipped=manifest.skipped, params=params, name=manifest.name
    )
    write_manifest(out, new)
    return new
