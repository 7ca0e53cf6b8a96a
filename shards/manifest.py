"""The dataset manifest: the one file that says what a shard folder holds.

A dataset is a folder with `manifest.json` and shard files whose paths are relative to it, so the
folder can be rsynced, put in object storage or served over HTTP and still be read.
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from babylm.shards.atomic import atomic_write_bytes
from babylm.shards.errors import ShardsError

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
KINDS = ("image_text", "tokens", "features")
# Counts and sizes beyond this are forged (an exabyte): refused before anything is sized by them.
MAX_COUNT = 1 << 60
# Every sample of a tar shard has at least one 512-byte member header.
MIN_TAR_SAMPLE_BYTES = 512


class ManifestError(ShardsError, ValueError):
    """A manifest that cannot be used; the message names the file and the field."""


@dataclass
class ShardEntry:
    """One complete shard: where it is, what it holds, and its checksum."""

    path: str
    samples: int
    bytes: int
    sha256: str
    tokens: int | None = None
    # Prep-specific facts of this shard (input rows it covers, skips by reason, ...).
    meta: dict[str, Any] = field(default_factory=dict)
    # The tar index beside a tar shard: {"path", "bytes", "sha256"} (see `babylm.shards.index_file`).
    index: dict[str, Any] | None = None
    # Words of the raw text in this shard (`len(text.split())` per line or caption); None in
    # shards written before prep counted words.
    words: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.tokens is None:
            del d["tokens"]
        if not self.meta:
            del d["meta"]
        if self.index is None:
            del d["index"]
        if self.words is None:
            del d["words"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShardEntry:
        """The entry `to_dict` wrote (unvalidated: `Manifest.from_dict` validates)."""
        return cls(
            d["path"],
            d["samples"],
            d["bytes"],
            d["sha256"],
            d.get("tokens"),
            d.get("meta", {}),
            d.get("index"),
            d.get("words"),
        )


@dataclass
class Manifest:
    """What a dataset folder holds; `to_dict`/`from_dict` map it onto `manifest.json`."""

    kind: str
    shards: list[ShardEntry] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    format_version: int = FORMAT_VERSION
    tool_version: str = ""

    @property
    def num_samples(self) -> int:
        return sum(s.samples for s in self.shards)

    @property
    def num_tokens(self) -> int:
        return sum(s.tokens or 0 for s in self.shards)

    @property
    def num_words(self) -> int | None:
        """Words of all shards; None when any shard was written without word counts."""
        if any(s.words is None for s in self.shards):
            return None
        return sum(s.words or 0 for s in self.shards)

    @property
    def num_bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def totals(self) -> dict[str, int]:
        out = {"shards": len(self.shards), "samples": self.num_samples, "bytes": self.num_bytes}
        if self.kind == "tokens":
            out["tokens"] = self.num_tokens
        if self.num_words is not None:
            out["words"] = self.num_words
        out["skipped"] = self.num_skipped
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "kind": self.kind,
            "name": self.name,
            "tool_version": self.tool_version,
            "totals": self.totals(),
            "skipped": dict(sorted(self.skipped.items())),
            "params": self.params,
            "shards": [s.to_dict() for s in self.shards],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, source: str = MANIFEST_NAME) -> Manifest:
        """Validate and build a manifest; errors name `source` and the offending field."""
        return _parse(data, source)

    def summary(self) -> str:
        """Human-readable summary: totals, skips by reason, prep parameters."""
        t = self.totals()
        lines = [f"{self.name or '(unnamed)'}  kind={self.kind}  format v{self.format_version}"]
        lines.append(
            f"  shards {t['shards']:,}  samples {t['samples']:,}  bytes {_human(t['bytes'])}"
            + (f"  tokens {t['tokens']:,}" if "tokens" in t else "")
            + (
                f"  words {t['words']:,}"
                if "words" in t
                else "  words (not counted: written before word counts)"
            )
        )
        if self.skipped:
            total_in = t["samples"] + t["skipped"]
            lines.append(f"  skipped {t['skipped']:,} of {total_in:,} input rows:")
            for reason, n in sorted(self.skipped.items(), key=lambda kv: -kv[1]):
                lines.append(f"    {reason:<20} {n:,}")
        else:
            lines.append("  skipped 0")
        if self.params:
            lines.append("  params:")
            for k, v in self.params.items():
                text = json.dumps(v, sort_keys=True)
                lines.append(f"    {k}: {text if len(text) < 100 else text[:97] + '...'}")
        return "\n".join(lines)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def check_relative_path(path: str, source: str = MANIFEST_NAME) -> str:
    """Reject shard paths that are absolute or escape the dataset folder."""
    if not isinstance(path, str) or not path:
        raise ManifestError(f"{source}: shard path must be a non-empty string, got {path!r}")
    if any(ord(c) < 32 or ord(c) == 127 for c in path) or len(path) > 4096:
        raise ManifestError(f"{source}: shard path {path[:200]!r} has control characters or is too long")
    if path.startswith(("/", "\\")) or "://" in path or (len(path) > 1 and path[1] == ":"):
        raise ManifestError(f"{source}: shard path {path!r} is absolute; paths must be relative")
    norm = posixpath.normpath(path.replace("\\", "/"))
    if norm == ".." or norm.startswith("../") or "/../" in f"/{norm}/":
        raise ManifestError(f"{source}: shard path {path!r} escapes the dataset folder")
    if norm == "." or path.endswith(("/", "\\")):
        raise ManifestError(f"{source}: shard path {path!r} names a folder, not a file")
    return path


def _field(data: dict, name: str, types: type | tuple[type, ...], source: str, where: str = "") -> Any:
    if name not in data:
        raise ManifestError(f"{source}: missing field '{where}{name}'")
    value = data[name]
    # bool is an int in Python; a count must not be True/False.
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        raise ManifestError(
            f"{source}: field '{where}{name}' must be {_type_names(types)}, got {type(value).__name__}"
        )
    if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= MAX_COUNT:
        raise ManifestError(f"{source}: field '{where}{name}' is {value}, outside [0, {MAX_COUNT}]")
    return value


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _type_names(types: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in _as_tuple(types))


def _is_sha256(text: Any) -> bool:
    return isinstance(text, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _index_field(raw: Any, source: str, where: str) -> dict[str, Any] | None:
    """The optional `index` of a shard entry: {"path", "bytes", "sha256"} of its tar index."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ManifestError(f"{source}: field '{where}index' must be an object")
    path = check_relative_path(_field(raw, "path", str, source, where + "index."), source)
    nbytes = _field(raw, "bytes", int, source, where + "index.")
    if not _is_sha256(raw.get("sha256")):
        raise ManifestError(f"{source}: field '{where}index.sha256' is not a hex sha256 digest")
    return {"path": path, "bytes": nbytes, "sha256": raw["sha256"]}


def _index_size(samples: int) -> int:
    from babylm.shards.index_file import index_size

    return index_size(samples)


def check_plausible(kind: str, entry: ShardEntry, source: str) -> None:
    """Refuse counts a shard of `entry.bytes` bytes cannot hold, before a reader sizes anything
    by them (readers check `entry.bytes` against the file itself)."""
    if kind != "tokens" and entry.samples * MIN_TAR_SAMPLE_BYTES > entry.bytes:
        raise ManifestError(
            f"{source}: shard {entry.path} lists {entry.samples} samples, more than a tar of "
            f"{entry.bytes} bytes can hold"
        )
    if kind == "tokens" and (entry.tokens or 0) > entry.bytes:
        raise ManifestError(
            f"{source}: shard {entry.path} lists {entry.tokens} tokens, more than a shard of "
            f"{entry.bytes} bytes can hold"
        )


def _parse(data: Any, source: str) -> Manifest:
    if not isinstance(data, dict):
        raise ManifestError(f"{source}: expected a JSON object at the top level")
    version = _field(data, "format_version", int, source)
    if version > FORMAT_VERSION:
        raise ManifestError(
            f"{source}: field 'format_version' is {version}, newer than this babylm-pipeline "
            f"understands ({FORMAT_VERSION}); upgrade babylm-pipeline"
        )
    if version < 1:
        raise ManifestError(f"{source}: field 'format_version' must be >= 1, got {version}")
    kind = _field(data, "kind", str, source)
    if kind not in KINDS:
        raise ManifestError(f"{source}: field 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    raw_shards = _field(data, "shards", list, source)
    shards = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_shards):
        where = f"shards[{i}]."
        if not isinstance(raw, dict):
            raise ManifestError(f"{source}: field 'shards[{i}]' must be an object")
        path = check_relative_path(_field(raw, "path", str, source, where), source)
        if path in seen:
            raise ManifestError(f"{source}: field '{where}path' repeats shard {path!r}")
        seen.add(path)
        samples = _field(raw, "samples", int, source, where)
        nbytes = _field(raw, "bytes", int, source, where)
        sha = _field(raw, "sha256", str, source, where)
        if samples < 0 or nbytes < 0:
            raise ManifestError(f"{source}: field '{where}samples'/'bytes' must not be negative")
        if not _is_sha256(sha):
            raise ManifestError(f"{source}: field '{where}sha256' is not a hex sha256 digest")
        tokens = raw.get("tokens")
        if tokens is not None:
            tokens = _field(raw, "tokens", int, source, where)
        meta = raw.get("meta", {})
        if not isinstance(meta, dict):
            raise ManifestError(f"{source}: field '{where}meta' must be an object")
        index = _index_field(raw.get("index"), source, where)
        if index is not None and index["bytes"] != _index_size(samples):
            raise ManifestError(
                f"{source}: field '{where}index.bytes' is {index['bytes']}, but an index of "
                f"{samples} samples has {_index_size(samples)}"
            )
        words = raw.get("words")
        if words is not None and (not isinstance(words, int) or isinstance(words, bool) or words < 0):
            raise ManifestError(f"{source}: field '{where}words' must be a non-negative int")
        shards.append(ShardEntry(path, samples, nbytes, sha, tokens, meta, index, words))
    skipped = data.get("skipped", {})
    if not isinstance(skipped, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_COUNT for v in skipped.values()
    ):
        raise ManifestError(f"{source}: field 'skipped' must map reasons to integer counts")
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise ManifestError(f"{source}: field 'params' must be an object")
    if "vocab_size" in params:
        vocab = _field(params, "vocab_size", int, source, "params.")
        if vocab < 1:
            raise ManifestError(f"{source}: field 'params.vocab_size' must be >= 1, got {vocab}")
    return Manifest(
        kind=kind,
        shards=shards,
        skipped=dict(skipped),
        params=params,
        name=str(data.get("name", "")),
        format_version=version,
        tool_version=str(data.get("tool_version", "")),
    )


def parse_manifest(text: str | bytes, source: str = MANIFEST_NAME) -> Manifest:
    """Parse manifest JSON text; `source` names the file in error messages."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{source}: not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}") from e
    except UnicodeDecodeError as e:
        raise ManifestError(f"{source}: not valid JSON: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except (ValueError, RecursionError) as e:  # numbers too long to convert, nesting too deep
        raise ManifestError(f"{source}: not valid JSON: {type(e).__name__}: {str(e)[:200]}") from e
    try:
        return Manifest.from_dict(data, source)
    except RecursionError as e:
        raise ManifestError(f"{source}: JSON nested too deeply to be a manifest") from e


def load_manifest(folder: str | os.PathLike) -> Manifest:
    """Read and validate `folder/manifest.json` from a local folder."""
    from babylm.shards.access import MAX_MANIFEST_BYTES, read_local

    path = Path(folder) / MANIFEST_NAME
    if not path.exists():
        raise ManifestError(f"{path}: no manifest; is this a babylm dataset folder (or is prep unfinished)?")
    return parse_manifest(read_local(path, MAX_MANIFEST_BYTES), str(path))


def write_manifest(folder: str | os.PathLike, manifest: Manifest) -> Path:
    """Write `manifest.json` atomically; call it last, after every shard is complete.

    The manifest holds no timestamp, so an interrupted-and-resumed prep writes the same bytes
    as an uninterrupted one.
    """
    from babylm.shards import __version__

    for s in manifest.shards:
        check_relative_path(s.path)
    _list_indexes(Path(folder), manifest)
    if not manifest.tool_version:
        manifest.tool_version = __version__
    path = Path(folder) / MANIFEST_NAME
    atomic_write_bytes(path, manifest.to_json().encode())
    return path


def _list_indexes(folder: Path, manifest: Manifest) -> None:
    """List in each tar shard's entry the index file beside it, when the entry lacks it (callers
    that rebuild entries field by field drop it). A file is listed only if its header names the
    shard's size and sha256; a tar shard without one (linked in from elsewhere, or written before
    indexes existed) gets one made from the tar now, so every dataset folder lists its indexes."""
    from babylm.shards.access import read_local
    from babylm.shards.index_file import (
        TarIndexError,
        decode_index,
        index_path,
        index_size,
        index_tar_file,
        sha256_hex,
    )

    for s in manifest.shards:
        if s.index is not None or not s.path.endswith(".tar"):
            continue
        path = folder / index_path(s.path)
        try:
            data: bytes | None = read_local(path, index_size(s.samples))
            index = decode_index(data, str(path))
            if (index.shard_bytes, index.shard_sha256) != (s.bytes, s.sha256):
                data = None
        except (FileNotFoundError, TarIndexError, ShardsError):
            data = None
        if data is None:
            data = index_tar_file(folder / s.path, s.samples, s.bytes, s.sha256)
            if data is None:
                continue  # the shard is missing or is not what the entry says: verify reports it
            atomic_write_bytes(path, data)
        s.index = {"path": index_path(s.path), "bytes": len(data), "sha256": sha256_hex(data)}
