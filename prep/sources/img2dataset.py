"""Read an img2dataset output folder: `{shard:05d}.tar` (`{key}.jpg/.txt/.json`), `.parquet`, `_stats.json`.

Only tar headers and the small `.txt` members are read while listing; image bytes are fetched by
offset in the workers. The per-shard parquet files list every attempted url, including the
failed downloads that have no tar member; those become `download_failed` rows, so the counts
cover the whole input list and not just what img2dataset managed to fetch.
"""

from __future__ import annotations

import hashlib
import json
import math
import tarfile
from pathlib import Path
from typing import Any

from babylm.prep.errors import InputError, RowSkip
from babylm.prep.sharding.plan import Row, TarMemberLoc
from babylm.prep.sources.captions import clean_cc3m_caption
from babylm.prep.sources.common import read_range, safe_key
from babylm.prep.sources.rawfile import RawTree, check_input_file
from babylm.prep.sources.rowdata import DATA_ERRORS, printable_name

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
# A caption member is read while listing; anything this large is not a caption.
CAPTION_MAX_BYTES = 1 << 20
# The `.json` sidecar is optional metadata; a larger one is ignored, not read.
SIDECAR_MAX_BYTES = 1 << 20


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:
        raise InputError(f"{path}: cannot read parquet: {e}") from e
    wanted = [c for c in ("key", "status", "error_message", "url", "caption") if c in table.column_names]
    if "key" not in wanted:
        raise InputError(f"{path}: parquet has no 'key' column (columns: {table.column_names})")
    return table.select(wanted).to_pylist()


def _scan_tar(path: Path) -> dict[str, dict[str, Any]]:
    """Members by key: {ext: (offset, size)} plus the decoded `.txt` caption (None when the
    member is larger than a caption can be; the row is then `too_large`)."""
    members: dict[str, dict[str, Any]] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for m in tar:
                if not m.isfile():
                    continue
                base = printable_name(m.name.rsplit("/", 1)[-1])  # tar names may not be UTF-8
                key, _, ext = base.partition(".")
                entry = members.setdefault(key, {"member": {}})
                entry["member"][ext.lower()] = (m.offset_data, m.size)
                if ext == "txt" and m.size > CAPTION_MAX_BYTES:
                    entry["caption"] = None
                elif ext == "txt":
                    entry["caption"] = tar.extractfile(m).read().decode("utf-8", "replace")  # type: ignore[union-attr]
    except tarfile.TarError as e:
        raise InputError(f"{path}: not a readable tar: {e}") from e
    return members


def list_img2dataset(folder: Path, split: str) -> tuple[list[Row], dict[str, Any]]:
    """Every attempted row of an img2dataset output folder as a Row."""
    tars = sorted(folder.glob("*.tar"))
    if not tars:
        raise InputError(f"{folder}: no *.tar shards; pass the img2dataset output folder with --src")
    tree = RawTree([folder])
    for tar_path in tars:  # before opening any: a FIFO would block, a device would not end
        check_input_file(tar_path, "img2dataset shard", tree)
    rows: list[Row] = []
    seen_keys: set[str] = set()
    seen_pairs: dict[tuple[str, str], str] = {}
    names = hashlib.sha256()
    total = 0
    for tar_path in tars:
        size = tar_path.stat().st_size
        names.update(f"{tar_path.name}\t{size}\n".encode("utf-8", "surrogateescape"))
        total += size
        members = _scan_tar(tar_path)
        parquet = tar_path.with_suffix(".parquet")
        if parquet.exists() or parquet.is_symlink():
            check_input_file(parquet, "img2dataset parquet", tree)
        listed = _read_parquet(parquet) if parquet.exists() else []
        by_key = {str(r["key"]): r for r in listed}
        # Parquet order first (it lists failures too), then members it does not list.
        order = [str(r["key"]) for r in listed] + [k for k in members if k not in by_key]
        for k in order:
            rec = by_key.get(k, {})
            url = rec.get("url") or ""
            info: dict[str, Any] = {"i2d_key": k, "url": url} if url else {"i2d_key": k}
            key = f"cc3m-{split}-i2d-{safe_key(k)}"  # a parquet key may hold '.' or '/'
            got = members.get(k)
            if key in seen_keys:
                rows.append(Row(key, None, None, info, "duplicate", f"key {k} seen in an earlier shard"))
                continue
            seen_keys.add(key)
            status = rec.get("status", "success")
            if status != "success":
                rows.append(
                    Row(key, None, None, info, "download_failed", str(rec.get("error_message") or status))
                )
                continue
            ext = next((e for e in IMAGE_EXTS if got and e in got["member"]), None)
            if got is None or ext is None:
                rows.append(
                    Row(key, None, None, info, "missing_file", f"{tar_path.name} has no image for key {k}")
                )
                continue
            info["file"] = f"{printable_name(tar_path.name)}:{k}.{ext}"
            if got.get("caption", "") is None:
                detail = f"{tar_path.name}: {k}.txt is larger than {CAPTION_MAX_BYTES} bytes"
                rows.append(Row(key, None, None, info, "too_large", detail))
                continue
            caption = clean_cc3m_caption(got.get("caption", ""))
            if not caption:
                rows.append(Row(key, None, None, info, "empty_caption", f"{tar_path.name}: {k}.txt"))
                continue
            if url and (url, caption) in seen_pairs:
                detail = f"same url and caption as {seen_pairs[url, caption]}"
                rows.append(Row(key, None, None, info, "duplicate", detail))
                continue
            if url:
                seen_pairs[url, caption] = key
            off, n = got["member"][ext]
            j_off, j_n = got["member"].get("json", (-1, 0))
            rows.append(Row(key, caption, TarMemberLoc(str(tar_path), off, n, j_off, j_n), info))
    inputs = {"shards": len(tars), "bytes": total, "names_sha256": names.hexdigest()}
    return rows, inputs


def read_tar_sample(loc: TarMemberLoc, limit: int) -> tuple[bytes, dict[str, Any]]:
    """Image bytes of one tar member (at most `limit`) and what its `.json` says about the
    original download."""
    data = read_range(loc.path, loc.offset, loc.size, limit)
    extra: dict[str, Any] = {}
    if loc.json_offset >= 0:
        try:
            meta = json.loads(read_range(loc.path, loc.json_offset, loc.json_size, SIDECAR_MAX_BYTES))
        except (RowSkip, *DATA_ERRORS):  # a broken sidecar costs the metadata, not the image
            meta = {}
        if isinstance(meta, dict):
            for field in ("url", "original_width", "original_height"):
                if _plain(meta.get(field)):
                    extra[field] = meta[field]
    return data, extra


def _plain(value: Any) -> bool:
    """A sidecar value worth keeping: a string or a finite number (not a nested structure)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int))
