"""The BabyLM text corpora on disk, and reading their lines exactly as the original did.

The original's dataset builders (`babyLM_for_hf.py`, `babyLM_2024_for_hf.py`) did, per source file
in a fixed order: `open(path, encoding="utf-8").readlines()`, so universal newlines (`\\n`, `\\r\\n`
and a lone `\\r` all end a line and become `\\n`), each line keeps its `\\n`, the last line may
have none; `strict_50M` kept `lines[: len(lines) // 2]` of every file; then a line whose
`.strip()` is empty became `""`, any other line was used as it is. `read_blocks` streams the same
lines from bytes without holding a file in memory. Where the original would crash or keep an
artefact we apply a documented policy instead: a UTF-8 BOM is dropped, and bytes that are not
UTF-8 are replaced (U+FFFD), skipped or refused (`--on-bad-utf8`), reported with file and line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babylm.prep.errors import InputError

VIS2024_SOURCES = ("bnc_spoken", "childes", "gutenberg", "open_subtitles", "simple_wiki", "switchboard")
STRICT_SOURCES = (
    "aochildes",
    "bnc_spoken",
    "cbt",
    "children_stories",
    "gutenberg",
    "open_subtitles",
    "qed",
    "simple_wikipedia",
    "switchboard",
    "wikipedia",
)
SPLITS = ("train", "dev", "test")
BAD_UTF8_POLICIES = ("replace", "skip", "error")
BOM = b"\xef\xbb\xbf"
# Bytes read per step; a block always ends at a line break, so lines never straddle blocks.
CHUNK_BYTES = 4 << 20


@dataclass(frozen=True)
class Corpus:
    """One track: where its files live per split, and which sources in which order."""

    name: str
    train_dir: str
    dev_dir: str
    test_dir: str
    sources: tuple[str, ...]
    # strict_50M: the original kept the first half of the lines of every file (in every split).
    halve: bool = False

    def folder(self, split: str) -> str:
        return {"train": self.train_dir, "dev": self.dev_dir, "test": self.test_dir}[split]


CORPORA: dict[str, Corpus] = {
    # The 2024 builder read dev/test from babylm_{dev,test}_2024: the 2023 dev folder has
    # different source names (aochildes, simple_wikipedia).
    "vis2024": Corpus(
        "vis2024", "babylm_vis_text_2024", "babylm_dev_2024", "babylm_test_2024", VIS2024_SOURCES
    ),
    "strict_10M": Corpus("strict_10M", "babylm_10M", "babylm_dev", "babylm_test", STRICT_SOURCES),
    "strict_100M": Corpus("strict_100M", "babylm_100M", "babylm_dev", "babylm_test", STRICT_SOURCES),
    "strict_50M": Corpus(
        "strict_50M", "babylm_100M", "babylm_dev", "babylm_test", STRICT_SOURCES, halve=True
    ),
}


@dataclass
class SourceFile:
    """A corpus file as scanned before tokenizing: identity, size, and how many lines are used."""

    name: str
    path: Path
    bytes: int
    sha256: str
    lines_in_file: int
    lines: int  # lines used: all of them, or the first half for strict_50M
    bom: bool

    def describe(self) -> dict:
        return {
            "name": self.name,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "lines_in_file": self.lines_in_file,
            "lines": self.lines,
            "bom": self.bom,
        }


def corpus_files(root: Path, corpus: str, split: str) -> list[Path]:
    """The files of `corpus`/`split` under `root`, in the original's order; all must exist."""
    spec = CORPORA[corpus]
    folder = root / spec.folder(split)
    names = [f"{s}.{split}" for s in spec.sources]
    for n in names:  # there but not a regular file (a FIFO would block, a device never end)
        if (folder / n).exists() and not (folder / n).is_file():
            raise InputError(f"{folder / n}: not a regular file; put the corpus file itself there")
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        where = f"folder {folder}" if folder.is_dir() else f"folder {folder} (which does not exist)"
        raise InputError(
            f"{corpus} {split}: missing {len(missing)} of {len(names)} corpus files in {where}: "
            f"{', '.join(missing)}; expected: {', '.join(names)}"
        )
    return [folder / n for n in names]


def _chunks(path: Path, sha: Any = None) -> Iterator[bytes]:
    """Binary chunks of `path` that each end at a `\\n` (or at the end of the file), BOM removed;
    `sha` (a hashlib object) sees the raw bytes."""
    with open(path, "rb") as f:
        first = True
        while True:
            buf = f.read(CHUNK_BYTES)
            if not buf:
                return
            if not buf.endswith(b"\n"):
                # Finish the line; also keeps a "\r\n" pair in one chunk.
                buf += f.readline()
            if sha is not None:
                sha.update(buf)
            if first:
                first = False
                if buf.startswith(BOM):
                    buf = buf[len(BOM) :]
            yield buf


def scan_file(path: Path, halve: bool = False) -> SourceFile:
    """One pass over the raw bytes: size, sha256, BOM, and the number of lines as the original
    split them (universal newlines; a final line without a break still counts)."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        bom = f.read(len(BOM)) == BOM
    lines = 0
    last = b""
    for buf in _chunks(path, sha):
        lines += buf.count(b"\n") + buf.count(b"\r") - buf.count(b"\r\n")
        last = buf[-1:] or last
    if last and last not in (b"\n", b"\r"):
        lines += 1
    used = lines // 2 if halve else lines
    return SourceFile(path.name, path, path.stat().st_size, sha.hexdigest(), lines, used, bom)


@dataclass
class Block:
    """Consecutive lines `start + 1 .. end` (1-based) of one file, prepared for the tokenizer.

    `texts` holds one example per line of the span except the lines in `skipped` (bad UTF-8 under
    `--on-bad-utf8 skip`); `bad` lists every line of the span that held bytes that are not UTF-8.
    """

    start: int
    end: int
    texts: list[str]
    bad: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)

    def row_line(self, row: int) -> int:
        """The line number of row `row` of this block."""
        line = self.start + 1 + row
        for s in self.skipped:  # sorted; usually empty
            if s <= line:
                line += 1
        return line


BadReport = Callable[[Path, int, UnicodeDecodeError], None]


def _decode_lines(
    buf: bytes, path: Path, first_line: int, used: range, on_bad_utf8: str, report: BadReport | None
) -> tuple[list[str], list[int]]:
    """Split a chunk into lines without their breaks; also the numbers of the lines in `used` that
    are not valid UTF-8 (replaced with U+FFFD here; the caller drops them under the skip policy).
    Lines outside `used` (before a resume point, after the strict_50M half) are never reported."""
    try:
        return buf.decode("utf-8").split("\n"), []
    except UnicodeDecodeError:
        pass
    parts: list[str] = []
    bad: list[int] = []
    for i, raw in enumerate(buf.split(b"\n")):
        try:
            parts.append(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            line_no = first_line + i
            if line_no not in used:
                parts.append(raw.decode("utf-8", "replace"))
                continue
            if on_bad_utf8 == "error":
                raise InputError(
                    f"{path}:{line_no}: bytes that are not UTF-8 ({_describe(e)}); "
                    "use --on-bad-utf8 replace or skip to go on"
                ) from e
            bad.append(line_no)
            if report:
                report(path, line_no, e)
            parts.append(raw.decode("utf-8", "replace"))
    return parts, bad


def _describe(e: UnicodeDecodeError) -> str:
    byte = e.object[e.start : e.start + 1].hex()
    return f"byte 0x{byte} at column {e.start + 1}: {e.reason}"


def read_blocks(
    source: SourceFile,
    keep_newline: bool = True,
    on_bad_utf8: str = "replace",
    start_line: int = 0,
    block_lines: int = 4096,
    report: BadReport | None = None,
) -> Iterator[Block]:
    """Stream the used lines of `source` after line `start_line` as blocks of `block_lines`
    lines. Memory stays bounded by the chunk size, whatever the size of the file.

    Each example is the line as the original built it: with its `\\n` (unless `keep_newline` is
    False), `""` for a line of only whitespace, and the last line of a file without a break as is.
    """
    if on_bad_utf8 not in BAD_UTF8_POLICIES:
        raise ValueError(f"on_bad_utf8 must be one of {BAD_UTF8_POLICIES}, got {on_bad_utf8!r}")
    limit = source.lines
    line_no = 0  # lines before this chunk
    for buf in _chunks(source.path):
        if line_no >= limit:
            return
        if b"\r" in buf:
            # Universal newlines, as text mode did: "\r\n" and a lone "\r" both end a line.
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        ends_with_break = buf.endswith(b"\n")
        n_lines = buf.count(b"\n") + (0 if ends_with_break else 1)
        lo = max(start_line - line_no, 0)
        hi = min(n_lines, limit - line_no)
        if lo >= hi:
            line_no += n_lines  # resuming: lines already in complete shards are not even decoded
            continue
        used = range(line_no + lo + 1, line_no + hi + 1)
        parts, bad = _decode_lines(buf, source.path, line_no + 1, used, on_bad_utf8, report)
        for b0 in range(lo, hi, block_lines):
            b1 = min(b0 + block_lines, hi)
            seg = parts[b0:b1]
            if keep_newline:
                texts = [p + "\n" if p.strip() else "" for p in seg]
                if not ends_with_break and b1 == n_lines:
                    texts[-1] = seg[-1] if seg[-1].strip() else ""  # last line, no break
            else:
                texts = [p if p.strip() else "" for p in seg]
            block = Block(line_no + b0, line_no + b1, texts)
            if bad:
                block.bad = [n for n in bad if block.start < n <= block.end]
                if on_bad_utf8 == "skip" and block.bad:
                    block.skipped = block.bad
                    drop = {n - block.start - 1 for n in block.bad}
                    block.texts = [t for i, t in enumerate(texts) if i not in drop]
            yield block
        line_no += n_lines
