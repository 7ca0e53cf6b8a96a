"""Localized Narratives' official JSONL files (one annotation per line), listed as columns.

`classify` decides each line's row on its own; the listing runs it over every non-blank line
once and keeps per row: file, line number, byte offset, status, and for a duplicate the earlier
row it repeats. Duplicates are found by hashing, then confirmed on the text: first the same
annotation key (source, image_id, annotator_id), then, among the rest, the same image and
cleaned caption. A part reads its rows back with `NarrativeRows.take`.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from babylm.prep.errors import InputError, RowSkip
from babylm.prep.sharding.plan import FileLoc, Row
from babylm.prep.sources.captions import clean_ln_caption
from babylm.prep.sources.common import safe_key
from babylm.prep.sources.lines import iter_lines, read_lines_at, scan_lines
from babylm.prep.sources.listing import Arrays, cached_listing, file_stats, first_of_repeats
from babylm.prep.sources.rawfile import check_input_file
from babylm.prep.sources.rowdata import DATA_ERRORS, describe, is_utf8_text, printable_name

PREFIX_FOLDERS = {"mscoco": "MSCOCO", "open_images": "OpenImages", "open_images_test": "OpenImages_test"}
STATUS = ("ok", "malformed_json", "unknown_source", "empty_caption", "same_annotation", "same_pair")
CODE = {name: i for i, name in enumerate(STATUS)}


def prefix_of_dataset(dataset_id: str) -> str | None:
    """The image folder prefix of an official `dataset_id` (mscoco_val2017 -> mscoco), or None."""
    d = dataset_id.lower()
    if d.startswith(("mscoco", "coco")):
        return "mscoco"
    if d.startswith("open_images_test"):
        return "open_images_test"
    if d.startswith("open_images"):
        return "open_images"
    return None


def image_path(images: Path, prefix: str, image_id: Any) -> Path:
    """Where the image of an annotation lives; a COCO id that is not an integer is malformed."""
    if prefix == "mscoco":
        try:
            return images / PREFIX_FOLDERS[prefix] / f"{int(image_id):012d}.jpg"
        except DATA_ERRORS:
            raise RowSkip("malformed_json", f"COCO image_id {_short(image_id)} is not an integer") from None
    text = str(image_id)
    if not text or "/" in text or "\x00" in text or text in (".", ".."):
        raise RowSkip("malformed_json", f"image_id {_short(image_id)} is not a file name")
    return images / PREFIX_FOLDERS[prefix] / f"{text}.jpg"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# The fields an annotation's facts keep, and the JSON types each may have (bool is not an id).
_FACT_TYPES: dict[str, tuple[type, ...]] = {
    "dataset_id": (str,),
    "image_id": (str, int),
    "annotator_id": (str, int),
}


def annotation_fields(obj: Any) -> tuple[Any, str, dict[str, Any]]:
    """(image_id, raw caption, facts) of one annotation object, or RowSkip(malformed_json)."""
    if not isinstance(obj, dict):
        raise RowSkip("malformed_json", f"expected an object, got {type(obj).__name__}")
    if obj.get("image_id") in (None, ""):
        raise RowSkip("malformed_json", "no image_id")
    caption = obj.get("caption")
    if not isinstance(caption, str):
        raise RowSkip("malformed_json", "no caption string")
    facts = {k: obj[k] for k in _FACT_TYPES if obj.get(k) is not None}
    for k, v in facts.items():
        if isinstance(v, bool) or not isinstance(v, _FACT_TYPES[k]):
            wanted = " or ".join("a string" if t is str else "an integer" for t in _FACT_TYPES[k])
            raise RowSkip("malformed_json", f"{k} is {type(v).__name__}, expected {wanted}")
    for k, v in [("caption", caption), *facts.items()]:
        if isinstance(v, str) and not is_utf8_text(v):
            raise RowSkip("malformed_json", f"{k} holds a lone surrogate (a \\u escape that is not text)")
    return obj["image_id"], caption, facts


def classify(raw: bytes, name: str, line_no: int, images: Path) -> tuple[Row, str]:
    """The row of one non-blank line (duplicates aside: they need the lines before it) and its
    annotation key ("" when the line never gets one)."""
    where = f"{name}:{line_no}"
    info: dict[str, Any] = {"file": name, "line": line_no}
    fallback_key = f"ln-{safe_key(Path(name).stem)}-L{line_no}"
    try:
        # UTF-8, as the release is: json.loads would guess UTF-16 from a line's first bytes.
        obj = json.loads(raw.decode("utf-8"))
    except DATA_ERRORS as e:  # not UTF-8 (a ValueError too), not JSON, nested too deeply
        return Row(fallback_key, None, None, info, "malformed_json", f"{where}: {describe(e)}"), ""
    try:
        image_id, caption_raw, facts = annotation_fields(obj)
    except RowSkip as e:
        return Row(fallback_key, None, None, info, e.reason, f"{where}: {e.detail}"), ""
    info.update(facts)
    prefix = prefix_of_dataset(str(facts.get("dataset_id", "")))
    if prefix is None:
        detail = f"{where}: dataset_id {facts.get('dataset_id')!r}"
        return Row(fallback_key, None, None, info, "unknown_source", detail), ""
    key = f"ln-{prefix}-{safe_key(image_id)}-{safe_key(facts.get('annotator_id', 'x'))}"
    caption = clean_ln_caption(caption_raw)
    try:
        img = image_path(images, prefix, image_id)
    except RowSkip as e:
        return Row(fallback_key, None, None, info, e.reason, f"{where}: {e.detail}"), ""
    if not caption:
        return Row(key, None, None, info, "empty_caption", where), key
    return Row(key, caption, FileLoc(str(img)), dict(info, split=str(facts.get("dataset_id", prefix)))), key


def _listed_lines(paths: list[Path]) -> tuple[Arrays, dict[str, Any]]:
    """file index, line number and offset of every non-blank line; each file's fingerprint."""
    files, numbers, offsets = [], [], []
    inputs = {}
    for f, path in enumerate(paths):
        starts, fp = scan_lines(path)
        blank = np.array([not line.strip() for line in iter_lines(path)], bool)
        keep = np.flatnonzero(~blank) if len(blank) else np.zeros(0, np.int64)
        files.append(np.full(len(keep), f, np.int32))
        numbers.append(keep.astype(np.int64) + 1)
        offsets.append(starts[keep])
        inputs[printable_name(path.name)] = {"bytes": fp["bytes"], "sha256": fp["sha256"]}
    arrays = {
        "file": np.concatenate(files),
        "line": np.concatenate(numbers),
        "offset": np.concatenate(offsets),
    }
    return arrays, {"jsonl_files": inputs}


class NarrativeRows:
    """The rows of Localized Narratives' JSONL files (a `RowSet`), listed once per output folder.
    A row is a non-blank line, in file then line order."""

    def __init__(self, paths: list[Path], images: Path, out_dir: Path):
        self.paths = [Path(p) for p in paths]
        for p in self.paths:
            check_input_file(p, "JSONL annotations")
        self.images = Path(images)
        key = {"source": "localnarr-jsonl", "images": str(self.images.resolve())}
        key["inputs"] = file_stats(self.paths)
        self.arrays, self.facts = cached_listing(out_dir, "localnarr-jsonl", key, self._list)

    def _list(self) -> tuple[Arrays, dict[str, Any]]:
        """Every row's place, status and duplicate link; the files' fingerprints."""
        arrays, facts = _listed_lines(self.paths)
        n = len(arrays["line"])
        status = bytearray(n)
        key_hash = array("q", bytes(8 * n))
        pair_hash = array("q", bytes(8 * n))
        keyed = bytearray(n)  # rows that reached the annotation-key check
        for i, (row, key) in enumerate(self._classified(arrays)):
            status[i] = CODE[row.reason or "ok"]
            if key:
                keyed[i] = 1
                # Python's str hash: consistent within this process, which is all it is used for.
                key_hash[i] = hash(key)
                if row.reason is None:
                    pair_hash[i] = hash((row.loc, row.caption))
        arrays["status"] = np.frombuffer(status, np.uint8).copy()
        arrays["first"] = np.full(n, -1, np.int64)
        self._mark_duplicates(arrays, np.frombuffer(keyed, bool), key_hash, pair_hash)
        return arrays, facts

    def _mark_duplicates(self, arrays: Arrays, keyed: np.ndarray, key_hash: array, pair_hash: array) -> None:
        status, first = arrays["status"], arrays["first"]
        rows = np.flatnonzero(keyed)
        hashes = np.frombuffer(key_hash, np.int64)
        texts = lambda idx: [key for _, key in self._classified(arrays, idx)]  # noqa: E731
        for i, earlier in first_of_repeats(rows, hashes[rows], texts).items():
            status[i], first[i] = CODE["same_annotation"], earlier
        rows = np.flatnonzero(status == CODE["ok"])
        hashes = np.frombuffer(pair_hash, np.int64)
        texts = lambda idx: [(row.loc, row.caption) for row, _ in self._classified(arrays, idx)]  # noqa: E731
        for i, earlier in first_of_repeats(rows, hashes[rows], texts).items():
            status[i], first[i] = CODE["same_pair"], earlier

    def _classified(self, arrays: Arrays, idx: np.ndarray | None = None) -> Iterator[tuple[Row, str]]:
        """(row, annotation key) of the rows at `idx`, read back by offset; of every row (reading
        the files through) when `idx` is None."""
        names = [printable_name(p.name) for p in self.paths]
        lines: Iterable[bytes]
        if idx is None:
            rows: Iterable[int] = range(len(arrays["line"]))
            lines = (line for p in self.paths for line in iter_lines(p) if line.strip())
        else:
            rows, lines = idx.tolist(), self._lines_at(arrays, idx)
        for i, raw in zip(rows, lines, strict=True):
            yield classify(raw, names[arrays["file"][i]], int(arrays["line"][i]), self.images)

    def _lines_at(self, arrays: Arrays, idx: np.ndarray) -> list[bytes]:
        out: list[bytes] = [b""] * len(idx)
        files = arrays["file"][idx]
        for f, path in enumerate(self.paths):
            mine = np.flatnonzero(files == f)
            lines = read_lines_at(path, arrays["offset"][idx[mine]].tolist()) if len(mine) else []
            for j, line in zip(mine.tolist(), lines, strict=True):
                out[j] = line
        return out

    def __len__(self) -> int:
        return len(self.arrays["status"])

    def hash_into(self, sha: Any) -> None:
        # The rows follow from the files (their sha256 are in the plan's params) and these arrays.
        for name in ("file", "line", "status", "first"):
            sha.update(np.ascontiguousarray(self.arrays[name]).tobytes())

    def take(self, indices: Sequence[int]) -> list[Row]:
        idx = np.asarray(indices, np.int64)
        names = [printable_name(p.name) for p in self.paths]
        rows = []
        for i, (row, _) in zip(idx.tolist(), self._classified(self.arrays, idx), strict=True):
            code = int(self.arrays["status"][i])
            if code >= CODE["same_annotation"]:
                row = self._as_duplicate(row, code, int(self.arrays["first"][i]), names)
            elif CODE[row.reason or "ok"] != code:
                raise InputError(
                    f"{row.info['file']}:{row.info['line']}: changed since it was listed; run again"
                )
            rows.append(row)
        return rows

    def _as_duplicate(self, row: Row, code: int, first: int, names: list[str]) -> Row:
        line = row.info["line"]
        where = f"{row.info['file']}:{line}"
        earlier = f"{names[self.arrays['file'][first]]}:{int(self.arrays['line'][first])}"
        info = {k: v for k, v in row.info.items() if k != "split"}
        if code == CODE["same_annotation"]:
            fallback_key = f"ln-{safe_key(Path(row.info['file']).stem)}-L{line}"
            return Row(fallback_key, None, None, info, "duplicate", f"{where}: same annotation as {earlier}")
        return Row(row.key, None, None, info, "duplicate", f"{where}: same image and caption as {earlier}")
