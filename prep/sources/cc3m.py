"""Conceptual Captions 3M (`babylm-prep cc3m`), as the downloader or img2dataset left it, into shards.

Downloader layout (`Conceptual-3M/`): the caption TSV (`caption<TAB>url`, no header) and the
download report, one row per caption row in the same order, in the current 6-column layout
`file, folder, mimetype, size, status, url` (failed rows have empty file/mimetype/size) or the
old 7-column one `url, folder, status, mimetype, size, file, headers` (detected from the first
row). Images are `training/<row>_<crc32(url)>` without extension; their bytes decide the format.

A report's `file` is read only inside the CC-3M folder and only if it is a regular file of at
most the image size limit (`outside_root`, `not_a_file`, `bad_path`, `too_large`; see
`rawfile`). Rows skipped while listing: `download_failed` (no file in the report), `not_jpeg_mime` (only with
--jpeg-only: the original kept only rows whose MIME type said JPEG), `malformed_row`,
`bad_encoding`, `empty_caption`, and `duplicate`: the same url with the same cleaned caption as
an earlier row (the first one is kept; the same url with another caption is a new sample).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babylm.prep.errors import ConfigError
from babylm.prep.images.process import ImagePolicy
from babylm.prep.sharding.config import ShardingConfig
from babylm.prep.sharding.plan import FileLoc, Row, RowSet
from babylm.prep.sources.common import image_members, run_rows
from babylm.prep.sources.downloader import SPLIT_FILES, DownloaderRows
from babylm.prep.sources.img2dataset import list_img2dataset, read_tar_sample
from babylm.prep.sources.rawfile import RawTree
from babylm.shards import Manifest

CAPTION_RULE = "cc3m: strip, then remove the space before . : ! , ? ;"
DUPLICATE_RULE = "same url and same cleaned caption as an earlier row (the first is kept)"


class Cc3mProcessor:
    """Reads one row's image (a file, or a member of an img2dataset tar) and builds its sample."""

    def __init__(self, policy: ImagePolicy, base_info: dict[str, Any], src: Path, tree: RawTree):
        self.policy = policy
        self.base_info = base_info
        self.src = str(src)
        self.tree = tree

    def __call__(self, row: Row) -> dict[str, Any]:
        info = dict(self.base_info, **row.info)
        if isinstance(row.loc, FileLoc):  # a downloader file, relative to the CC-3M folder
            data = self.tree.read(os.path.join(self.src, row.loc.path), self.policy.max_file_bytes)
        else:
            data, extra = read_tar_sample(row.loc, self.policy.max_file_bytes)
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
    rows: RowSet | list[Row]
    if cfg.layout == "downloader":
        listed = DownloaderRows(cfg.src, cfg.split, cfg.jpeg_only, cfg.sharding.out)
        rows, inputs = listed, listed.facts
        params["jpeg_only"] = cfg.jpeg_only
    else:
        rows, inputs = list_img2dataset(cfg.src, cfg.split)
    params.update(
        caption_cleaning=CAPTION_RULE, duplicates=DUPLICATE_RULE, image=cfg.image.to_params(), inputs=inputs
    )
    # The report's file names must stay inside the CC-3M folder (or its split folder, which may
    # be a symlink to another disk).
    tree = RawTree([cfg.src, cfg.src / cfg.split])
    processor = Cc3mProcessor(cfg.image, {"source": "cc3m", "split": cfg.split}, cfg.src, tree)
    return run_rows(
        kind="image_text", name=cfg.name, rows=rows, processor=processor, params=params, sharding=cfg.sharding
    )
