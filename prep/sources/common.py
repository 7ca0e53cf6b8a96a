"""What the image-caption sources share: key fragments, reading payloads, sample assembly, running.

Readers raise `RowSkip` for a row that cannot become a sample (the sharding engine counts it);
the files a row names are read through `rawfile.RawTree` (confined to the raw tree, bounded);
`run_rows` hands the listed rows to the sharding engine (`sharding.runner.run_job`).
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any

from babylm.prep.errors import RowSkip
from babylm.prep.images.process import ImagePolicy, process_image
from babylm.prep.sharding import runner
from babylm.prep.sharding.config import ShardingConfig
from babylm.prep.sharding.plan import Processor, Row, RowList, RowSet
from babylm.shards import Manifest

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def safe_key(text: Any) -> str:
    """A sample-key fragment: anything but letters, digits, `_` and `-` becomes `_`."""
    return _UNSAFE.sub("_", str(text))


def read_range(path: str | os.PathLike, offset: int, size: int, limit: int) -> bytes:
    """`size` bytes at `offset` of a file (a member of an uncompressed tar), if `size <= limit`."""
    if size > limit:
        raise RowSkip("too_large", f"{path}: a member of {size} bytes at offset {offset}, more than {limit}")
    try:
        # Non-blocking, then checked: a tar replaced by a FIFO since the listing must not block.
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise RowSkip("not_a_file", f"{path} is no longer a regular file")
            f.seek(offset)
            data = f.read(size)
    except OSError as e:
        raise RowSkip("read_error", f"{path}: {e.strerror or e}") from e
    if len(data) != size:
        raise RowSkip("read_error", f"{path}: {size} bytes at offset {offset} are past the end of the file")
    return data


WORDS_RULE = "len(caption.split()) of the stored caption, in each sample's json member"


def caption_words(caption: str) -> int:
    """Words of a caption as the shard stores it (its `.txt` member, what training reads):
    whitespace-separated, as BabyLM counts its budget."""
    return len(caption.split())


def image_members(data: bytes, caption: str, info: dict[str, Any], policy: ImagePolicy) -> dict[str, Any]:
    """The `jpg`/`txt`/`json` members of one sample, or RowSkip."""
    if not caption:
        raise RowSkip("empty_caption", "caption is empty after cleaning")
    img = process_image(data, policy)
    meta = dict(info, width=img.width, height=img.height, format=img.format, words=caption_words(caption))
    if img.orientation != 1:
        meta["exif_orientation"] = img.orientation
    return {"jpg": img.jpeg, "txt": caption, "json": meta}


def run_rows(
    *,
    kind: str,
    name: str,
    rows: RowSet | list[Row],
    processor: Processor,
    params: dict[str, Any],
    sharding: ShardingConfig,
) -> Manifest | None:
    """Shard `rows`; the manifest, or None when this was one `part` and others are missing."""
    if isinstance(rows, list) and not isinstance(rows, RowList):
        rows = RowList(rows)
    # In the plan's fingerprint too: shards from before word counts are never resumed into.
    params = {**params, "words": WORDS_RULE}
    job = runner.Job(kind=kind, name=name, rows=rows, processor=processor, params=params, sharding=sharding)
    return runner.run_job(job)
