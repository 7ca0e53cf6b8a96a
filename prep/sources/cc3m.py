"""Conceptual Captions 3M (`babylm-prep cc3m`), as the downloader or img2dataset left it, into shards.

Downloader layout (`Conceptual-3M/`): the caption TSV (`caption<TAB>url`, no header) and the
download report, one row per caption row in the same order, in the current 6-column layout
`file, folder, mimetype, size, status, url` (failed rows have empty file/mimetype/size) or the
old 7-column one `url, folder, status, mimetype, size, file, headers` (detected from the first
row). Images are `training/<row>_<crc32(url)>` without extension; their bytes decide the format.

Rows skipped while listing: `download_failed` (no file in the report), `not_jpeg_mime` (only with
--jpeg-only: the original kept only rows whose MIME type said JPEG), `malformed_row`,
`bad_encoding`, `empty_caption`, and `duplicate`: the same url with the same cleaned caption as
an earlier row (the first one is kept; the same url with another caption is a new sample).
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babylm.prep.errors import ConfigError, InputError
from babylm.prep.images.process import ImagePolicy
from babylm.prep.sharding.config import ShardingConfig
from babylm.prep.sharding.plan import FileLoc, Row
from babylm.prep.sources.captions import clean_cc3m_caption
from babylm.prep.sources.common import image_members, read_payload, run_rows
from babylm.prep.sources.img2dataset import list_img2dataset, read_tar_sample
from babylm.shards import Manifest

SPLIT_FILES = {
    "training": ("Train_GCC-training.tsv", "downloaded_training_report.tsv"),
    "validation": ("Validation_GCC-1.1.0-Validation.tsv", "downloaded_validation_report.tsv"),
}
REPORT_6COL = ("file", "folder", "mimetype", "size", "status", "url")
REPORT_7COL = ("url", "folder", "status", "mimetype", "size", "file", "headers")
CAPTION_RULE = "cc3m: strip, then remove the space before . : ! , ? ;"
DUPLICATE_RULE = "same url and same cleaned caption as an earlier row (the first is kept)"


def scan_text_file(path: Path) -> tuple[int, dict[str, Any]]:
    """Line count (a last line without LF counts) and fingerprint, reading in blocks."""
    sha = hashlib.sha256()
    lines = size = 0
    last = b"\n"
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            sha.update(block)
            lines += block.count(b"\n")
            size += len(block)
            last = block[-1:]
    if last != b"\n":
        lines += 1
    return lines, {"name": path.name, "bytes": size, "sha256": sha.hexdigest()}


def iter_lines(path: Path) -> Iterator[str | None]:
    """The lines of a file split at LF only (a trailing CR dropped); None for a line that is not
    valid UTF-8, so that its row is skipped as `bad_encoding` instead of failing the file."""
    with open(path, "rb") as f:
        for raw in f:
            raw = raw.rstrip(b"\n")
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                yield None


def split_report_line(line: str) -> list[str]:
    """Fields of one report row; pandas quotes fields with quotes or tabs, csv undoes that."""
    if '"' not in line:
        return line.split("\t")
    return next(csv.reader([line], delimiter="\t"))


def detect_report_layout(path: Path) -> tuple[str, ...]:
    """The current 6-column layout or the old 7-column one, from the first non-empty row."""
    first = next((line for line in iter_lines(path) if line), None)
    if first is None:
        return REPORT_6COL
    fields = split_report_line(first)
    if fields[0].startswith(("http://", "https://")) and len(fields) == len(REPORT_7COL):
        return REPORT_7COL
    if len(fields) != len(REPORT_6COL):
        raise InputError(
            f"{path}:1: expected {len(REPORT_6COL)} tab-separated fields ({', '.join(REPORT_6COL)}) "
            f"or the old 7-column layout, got {len(fields)}"
        )
    return REPORT_6COL


def _downloader_row(
    key: str,
    info: dict[str, Any],
    caption: str,
    file: str,
    mime: str,
    status: str,
    jpeg_only: bool,
    seen: dict[tuple[str, str], int],
    where: str,
) -> Row:
    """The Row of one aligned caption/report line: a sample, or the reason it is skipped."""
    url = info["url"]
    if not file:
        return Row(key, None, None, info, "download_failed", f"status {status or '?'}")
    if jpeg_only and "jpeg" not in mime:
        return Row(key, None, None, info, "not_jpeg_mime", f"mimetype {mime or '(empty)'}")
    if not caption:
        return Row(key, None, None, info, "empty_caption", where)
    if (url, caption) in seen:
        return Row(key, None, None, info, "duplicate", f"same url and caption as row {seen[url, caption]}")
    return Row(key, caption, FileLoc(file), info)


def list_downloader_rows(src: Path, split: str, jpeg_only: bool) -> tuple[list[Row], dict[str, Any]]:
    """Every caption row of the split as a Row (skips decided here carry their reason)."""
    cap_name, rep_name = SPLIT_FILES[split]
    cap_path, rep_path = src / cap_name, src / rep_name
    for p in (cap_path, rep_path):
        if not p.is_file():
            raise InputError(f"{p}: not found; is {src} the Conceptual-3M folder (see --root / --src)?")
    n_cap, cap_fp = scan_text_file(cap_path)
    n_rep, rep_fp = scan_text_file(rep_path)
    # Before any work: a report that does not line up would pair captions with the wrong images.
    if n_cap != n_rep:
        raise InputError(
            f"{cap_path} has {n_cap:,} lines but {rep_path} has {n_rep:,}; the download "
            "report must have exactly one row per caption row, in the same order"
        )
    layout = detect_report_layout(rep_path)
    col = {name: i for i, name in enumerate(layout)}
    rows: list[Row] = []
    seen: dict[tuple[str, str], int] = {}
    mismatches: list[int] = []
    for i, (cap_line, rep_line) in enumerate(zip(iter_lines(cap_path), iter_lines(rep_path), strict=True)):
        key = f"cc3m-{split}-{i:07d}"
        if cap_line is None or rep_line is None:
            bad = cap_name if cap_line is None else rep_name
            rows.append(Row(key, None, None, {"row": i}, "bad_encoding", f"{bad}:{i + 1}: not valid UTF-8"))
            continue
        cap_fields = cap_line.split("\t")
        url = cap_fields[1].strip() if len(cap_fields) > 1 else ""
        info: dict[str, Any] = {"row": i, "url": url}
        fields = split_report_line(rep_line)
        if len(fields) != len(layout):
            detail = f"{rep_name}:{i + 1}: expected {len(layout)} fields, got {len(fields)}"
            rows.append(Row(key, None, None, info, "malformed_row", detail))
            continue
        if not url:
            rows.append(
                Row(key, None, None, info, "malformed_row", f"{cap_name}:{i + 1}: no TAB-separated url")
            )
            continue
        if fields[col["url"]].strip() != url:
            mismatches.append(i)
            continue
        file = fields[col["file"]].strip()
        if file:
            info["file"] = file
        row = _downloader_row(
            key,
            info,
            clean_cc3m_caption(cap_fields[0]),
            file,
            fields[col["mimetype"]].strip(),
            fields[col["status"]].strip(),
            jpeg_only,
            seen,
            f"{cap_name}:{i + 1}",
        )
        if row.reason is None:
            seen[url, row.caption or ""] = i
        rows.append(row)
    if mismatches:
        i = mismatches[0]
        raise InputError(
            f"{rep_path}:{i + 1}: url differs from {cap_path}:{i + 1} ({len(mismatches):,} rows differ); "
            "the report and the caption TSV are not aligned row by row"
        )
    layout_name = "6col" if layout == REPORT_6COL else "7col"
    return rows, {"caption_file": cap_fp, "report_file": rep_fp, "report_layout": layout_name}


class Cc3mProcessor:
    """Reads one row's image (a file, or a member of an img2dataset tar) and builds its sample."""

    def __init__(self, policy: ImagePolicy, base_info: dict[str, Any], src: Path):
        self.policy = policy
        self.base_info = base_info
        self.src = str(src)

    def __call__(self, row: Row) -> dict[str, Any]:
        info = dict(self.base_info, **row.info)
        if isinstance(row.loc, FileLoc):  # a downloader file, relative to the CC-3M folder
            data = read_payload(os.path.join(self.src, row.loc.path))
        else:
            data, extra = read_tar_sample(row.loc)
            info.update(extra)
        return image_members(data, row.caption or "", info, self.policy)


LAYOUTS = ("downloader", "img2dataset")


@dataclass(frozen=True)
class Cc3mConfig:
    """One `babylm-prep cc3m` run. `src`: the Conceptual-3M folder (downloader layout) or the
    img2dataset output folder."""

    src: Path
    sharding: ShardingConfig
    split: str = "training"
    layout: str = "downloader"
    jpeg_only: bool = False  # keep only rows whose report MIME type says JPEG (the original's rule)
    image: ImagePolicy = field(default_factory=ImagePolicy)

    def __post_init__(self) -> None:
        object.__setattr__(self, "src", Path(self.src))
        if self.split not in SPLIT_FILES:
            raise ConfigError(f"--split {self.split}: choose one of {', '.join(SPLIT_FILES)}")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"--layout {self.layout}: choose one of {', '.join(LAYOUTS)}")
        if self.jpeg_only and self.layout != "downloader":
            raise ConfigError(
                "--jpeg-only applies to --layout downloader (img2dataset re-encodes everything)"
            )

    @property
    def name(self) -> str:
        return f"cc3m-{self.split}"


def run_cc3m(cfg: Cc3mConfig) -> Manifest | None:
    """Shard CC-3M image-caption pairs; the manifest, or None for one part of a `part` run."""
    params: dict[str, Any] = {"source": "cc3m", "layout": cfg.layout, "split": cfg.split}
    if cfg.layout == "downloader":
        rows, inputs = list_downloader_rows(cfg.src, cfg.split, cfg.jpeg_only)
        params["jpeg_only"] = cfg.jpeg_only
    else:
        rows, inputs = list_img2dataset(cfg.src, cfg.split)
    params.update(
        caption_cleaning=CAPTION_RULE, duplicates=DUPLICATE_RULE, image=cfg.image.to_params(), inputs=inputs
    )
    processor = Cc3mProcessor(cfg.image, {"source": "cc3m", "split": cfg.split}, cfg.src)
    return run_rows(
        kind="image_text", name=cfg.name, rows=rows, processor=processor, params=params, sharding=cfg.sharding
    )
