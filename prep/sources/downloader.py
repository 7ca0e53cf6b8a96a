"""The CC-3M downloader layout (caption TSV + download report, row by row), listed as columns.

Each row is classified by one function, `classify`, that the listing runs over every line once
and a part runs again over its own lines only. The listing keeps per row: the byte offsets of
its two lines, its status code, and for a duplicate the row it repeats (found by hashing the
(url, caption) of every accepted row; equal hashes are confirmed on the text). A part reads its
rows back with `DownloaderRows.take`.
"""

from __future__ import annotations

import csv
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from babylm.prep.errors import InputError
from babylm.prep.sharding.plan import FileLoc, Row
from babylm.prep.sources.captions import clean_cc3m_caption
from babylm.prep.sources.lines import iter_lines, read_lines_at, scan_lines
from babylm.prep.sources.listing import Arrays, cached_listing, file_stats, first_of_repeats
from babylm.prep.sources.rawfile import check_input_file

SPLIT_FILES = {
    "training": ("Train_GCC-training.tsv", "downloaded_training_report.tsv"),
    "validation": ("Validation_GCC-1.1.0-Validation.tsv", "downloaded_validation_report.tsv"),
}
REPORT_6COL = ("file", "folder", "mimetype", "size", "status", "url")
REPORT_7COL = ("url", "folder", "status", "mimetype", "size", "file", "headers")
# Status codes of the listing; MISMATCH rows stop the run (the report is not aligned).
STATUS = (
    "ok",
    "bad_encoding",
    "malformed_row",
    "download_failed",
    "not_jpeg_mime",
    "empty_caption",
    "duplicate",
)
MISMATCH = 255
CODE = {name: i for i, name in enumerate(STATUS)}


def split_report_line(line: str) -> list[str] | None:
    """Fields of one report row; pandas quotes fields with quotes or tabs, csv undoes that.
    None for a quoted row csv cannot split (a field over csv's size limit, a stray quote)."""
    if '"' not in line:
        return line.split("\t")
    try:
        return next(csv.reader([line], delimiter="\t"), [])
    except csv.Error:
        return None


def _decoded_lines(path: Path) -> Iterator[str]:
    for raw in iter_lines(path):
        try:
            yield raw.removesuffix(b"\r").decode("utf-8")
        except UnicodeDecodeError:
            continue


def detect_report_layout(path: Path) -> tuple[str, ...]:
    """The current 6-column layout or the old 7-column one, from the first non-empty row."""
    first = next((line for line in _decoded_lines(path) if line), None)
    if first is None:
        return REPORT_6COL
    fields = split_report_line(first) or first.split("\t")
    if fields[0].startswith(("http://", "https://")) and len(fields) == len(REPORT_7COL):
        return REPORT_7COL
    if len(fields) != len(REPORT_6COL):
        raise InputError(
            f"{path}:1: expected {len(REPORT_6COL)} tab-separated fields ({', '.join(REPORT_6COL)}) "
            f"or the old 7-column layout, got {len(fields)}"
        )
    return REPORT_6COL


@dataclass(frozen=True)
class Rules:
    """What classifying a row needs: the split, file names, report columns and --jpeg-only."""

    split: str
    cap_name: str
    rep_name: str
    layout: tuple[str, ...]
    jpeg_only: bool
    cols: tuple[int, ...] = field(init=False)  # url, file, status, mimetype

    def __post_init__(self) -> None:
        # Column positions, looked up once: `classify` runs once per row of 3.3M.
        cols = tuple(self.layout.index(name) for name in ("url", "file", "status", "mimetype"))
        object.__setattr__(self, "cols", cols)


def classify(rules: Rules, i: int, cap_raw: bytes, rep_raw: bytes) -> Row | None:
    """Row i from its caption and report lines, with its skip reason (`duplicate` aside: that
    needs the rows before it); None if the two lines name different urls."""
    key = f"cc3m-{rules.split}-{i:07d}"
    try:
        cap_line = cap_raw.removesuffix(b"\r").decode("utf-8")
    except UnicodeDecodeError:
        return Row(key, None, None, {"row": i}, "bad_encoding", f"{rules.cap_name}:{i + 1}: not valid UTF-8")
    try:
        rep_line = rep_raw.removesuffix(b"\r").decode("utf-8")
    except UnicodeDecodeError:
        return Row(key, None, None, {"row": i}, "bad_encoding", f"{rules.rep_name}:{i + 1}: not valid UTF-8")
    cap_fields = cap_line.split("\t")
    url = cap_fields[1].strip() if len(cap_fields) > 1 else ""
    info: dict[str, Any] = {"row": i, "url": url}
    fields = split_report_line(rep_line)
    if fields is None:
        detail = f"{rules.rep_name}:{i + 1}: quoted fields that cannot be split"
        return Row(key, None, None, info, "malformed_row", detail)
    if len(fields) != len(rules.layout):
        detail = f"{rules.rep_name}:{i + 1}: expected {len(rules.layout)} fields, got {len(fields)}"
        return Row(key, None, None, info, "malformed_row", detail)
    if not url:
        return Row(key, None, None, info, "malformed_row", f"{rules.cap_name}:{i + 1}: no TAB-separated url")
    url_col, file_col, status_col, mime_col = rules.cols
    if fields[url_col].strip() != url:
        return None
    file = fields[file_col].strip()
    if not file:
        status = fields[status_col].strip()
        return Row(key, None, None, info, "download_failed", f"status {status or '?'}")
    info["file"] = file
    mime = fields[mime_col].strip()
    if rules.jpeg_only and "jpeg" not in mime:
        return Row(key, None, None, info, "not_jpeg_mime", f"mimetype {mime or '(empty)'}")
    caption = clean_cc3m_caption(cap_fields[0])
    if not caption:
        return Row(key, None, None, info, "empty_caption", f"{rules.cap_name}:{i + 1}")
    return Row(key, caption, FileLoc(file), info)


def as_duplicate(row: Row, first: int) -> Row:
    return Row(row.key, None, None, row.info, "duplicate", f"same url and caption as row {first}")


def _classify_all(rules: Rules, cap_path: Path, rep_path: Path, n: int) -> Arrays:
    """The status and (url, caption) hash of every row, in one pass over both files."""
    status = bytearray(n)  # filled by index: several times faster than numpy item assignment
    hashes = array("q", bytes(8 * n))
    ok = CODE["ok"]
    for i, (cap, rep) in enumerate(zip(iter_lines(cap_path), iter_lines(rep_path), strict=True)):
        row = classify(rules, i, cap, rep)
        if row is None:
            status[i] = MISMATCH
        elif row.reason is None:
            status[i] = ok
            # Python's str hash: consistent within this process, which is all it is used for.
            hashes[i] = hash((row.info["url"], row.caption))
        else:
            status[i] = CODE[row.reason]
    return {"status": np.frombuffer(status, np.uint8).copy(), "hash": np.frombuffer(hashes, np.int64).copy()}


def _mark_duplicates(rules: Rules, cap_path: Path, rep_path: Path, arrays: Arrays) -> np.ndarray:
    """`first[i]`: the earlier accepted row that row i repeats (same url and caption), else -1."""
    status = arrays["status"]
    accepted = np.flatnonzero(status == CODE["ok"])

    def texts(rows: np.ndarray) -> list[tuple[str, str | None]]:
        built = DownloaderRows.build_rows(rules, cap_path, rep_path, arrays, rows)
        return [(row.info["url"], row.caption) for row in built]

    first = np.full(len(status), -1, np.int32)
    for i, earlier in first_of_repeats(accepted, arrays["hash"][accepted], texts).items():
        first[i] = earlier
    status[first >= 0] = CODE["duplicate"]
    return first


class DownloaderRows:
    """The rows of one split of the downloader layout (a `RowSet`), listed once per output folder."""

    def __init__(self, src: Path, split: str, jpeg_only: bool, out_dir: Path):
        cap_name, rep_name = SPLIT_FILES[split]
        self.cap_path, self.rep_path = src / cap_name, src / rep_name
        for p in (self.cap_path, self.rep_path):
            if not p.exists():
                raise InputError(f"{p}: not found; is {src} the Conceptual-3M folder (see --root / --src)?")
            check_input_file(p, "caption TSV" if p == self.cap_path else "download report")
        layout = detect_report_layout(self.rep_path)
        self.rules = Rules(split, cap_name, rep_name, layout, jpeg_only)
        key = {"source": "cc3m-downloader", "split": split, "jpeg_only": jpeg_only}
        key["inputs"] = file_stats([self.cap_path, self.rep_path])
        self.arrays, self.facts = cached_listing(out_dir, f"cc3m-{split}", key, self._list)

    def _list(self) -> tuple[Arrays, dict[str, Any]]:
        """Every row's offsets, status and duplicate link; the inputs' fingerprints."""
        cap_offset, cap_fp = scan_lines(self.cap_path)
        rep_offset, rep_fp = scan_lines(self.rep_path)
        n_cap, n_rep = len(cap_offset), len(rep_offset)
        # Before any work: a report that does not line up would pair captions with the wrong images.
        if n_cap != n_rep:
            raise InputError(
                f"{self.cap_path} has {n_cap:,} lines but {self.rep_path} has {n_rep:,}; the download "
                "report must have exactly one row per caption row, in the same order"
            )
        rules = self.rules
        arrays = _classify_all(rules, self.cap_path, self.rep_path, n_cap)
        arrays.update(cap_offset=cap_offset, rep_offset=rep_offset)
        mismatches = np.flatnonzero(arrays["status"] == MISMATCH)
        if len(mismatches):
            i = int(mismatches[0])
            raise InputError(
                f"{self.rep_path}:{i + 1}: url differs from {self.cap_path}:{i + 1} "
                f"({len(mismatches):,} rows differ); the report and the caption TSV are not aligned row by row"
            )
        arrays["first"] = _mark_duplicates(rules, self.cap_path, self.rep_path, arrays)
        del arrays["hash"]
        layout_name = "6col" if rules.layout == REPORT_6COL else "7col"
        return arrays, {"caption_file": cap_fp, "report_file": rep_fp, "report_layout": layout_name}

    def __len__(self) -> int:
        return len(self.arrays["status"])

    def hash_into(self, sha: Any) -> None:
        # The rows follow from the input files (their sha256 are in the plan's params) and
        # these two arrays.
        sha.update(np.ascontiguousarray(self.arrays["status"]).tobytes())
        sha.update(np.ascontiguousarray(self.arrays["first"]).tobytes())

    def take(self, indices: Sequence[int]) -> list[Row]:
        return self.build_rows(self.rules, self.cap_path, self.rep_path, self.arrays, np.asarray(indices))

    @staticmethod
    def build_rows(
        rules: Rules, cap_path: Path, rep_path: Path, arrays: Arrays, idx: np.ndarray
    ) -> list[Row]:
        """The rows at `idx`, read back from their lines and classified again."""
        caps = read_lines_at(cap_path, arrays["cap_offset"][idx].tolist())
        reps = read_lines_at(rep_path, arrays["rep_offset"][idx].tolist())
        first = arrays.get("first")
        rows = []
        for i, cap, rep in zip(idx.tolist(), caps, reps, strict=True):
            row = classify(rules, i, cap, rep)
            if row is not None and first is not None:  # a part's rows (not the listing's own look-up)
                if first[i] >= 0:
                    row = as_duplicate(row, int(first[i]))
                if CODE[row.reason or "ok"] != arrays["status"][i]:
                    row = None
            if row is None:
                raise InputError(
                    f"{cap_path}:{i + 1}: changed since it was listed; run again to list it anew"
                )
            rows.append(row)
        return rows
