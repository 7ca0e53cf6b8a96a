"""Localized Narratives (COCO and Open Images subsets) into shards (`babylm-prep localnarr`).

Layouts:
- `anno` (the original's): `LocalNarratives/LocalNarratives/all_anno/<prefix>_<uid>.json`, one
  annotation per file; prefix `mscoco`, `open_images` or `open_images_test` (the uid is what
  follows the last `_`) picks the image folder: `MSCOCO/{image_id:012}.jpg` (integer id),
  `OpenImages/{image_id}.jpg`, `OpenImages_test/{image_id}.jpg`. The annotation files are read
  by the workers, so a malformed one is counted (`malformed_json`) where it is met.

Annotation and image files are read only inside the folder (and its image folders) and only if
they are regular files of bounded size (`outside_root`, `not_a_file`, `bad_path`, `too_large`).
- `jsonl`: the official release files, one annotation per line (dataset_id, image_id,
  annotator_id, caption, ...); `dataset_id` picks the image folder the same way (mscoco*/coco* ->
  MSCOCO, open_images_test* -> OpenImages_test, other open_images* -> OpenImages). Blank lines
  are not rows. Here `duplicate` means the same (folder, image_id, annotator_id), or the same
  image with the same cleaned caption, as an earlier line; the first one is kept.

Other sources (Flickr30k, ADE20k) are counted as `unknown_source`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babylm.prep.errors import ConfigError, InputError, RowSkip
from babylm.prep.images.process import ImagePolicy
from babylm.prep.sharding.config import ShardingConfig
from babylm.prep.sharding.plan import AnnotationLoc, FileLoc, Row, RowSet
from babylm.prep.sources.captions import clean_ln_caption
from babylm.prep.sources.common import image_members, run_rows, safe_key
from babylm.prep.sources.narratives import PREFIX_FOLDERS, NarrativeRows, annotation_fields, image_path
from babylm.prep.sources.rawfile import RawTree
from babylm.prep.sources.rowdata import parse_json, printable_name
from babylm.shards import Manifest

CAPTION_RULE = "ln: U+00A0 to space, whitespace collapsed"
DUPLICATE_RULE = {
    "anno": "none (every annotation file is one row)",
    "jsonl": "same (source, image_id, annotator_id) or same image and cleaned caption as an earlier line",
}


def list_anno_rows(src: Path) -> tuple[list[Row], dict[str, Any]]:
    """One Row per `all_anno/*.json` file, sorted by name; the workers read the files."""
    folder = src / "all_anno"
    if not folder.is_dir():
        raise InputError(
            f"{folder}: not found; is {src} the LocalNarratives/LocalNarratives folder (see --root / --src)?"
        )
    # Every *.json entry is a row, whatever it is: a FIFO or a dangling link is counted where a
    # worker meets it (`not_a_file`, `missing_file`), not dropped unseen.
    with os.scandir(folder) as it:
        names = sorted(e.name for e in it if e.name.endswith(".json"))
    rows = []
    for name in names:
        stem = name[: -len(".json")]
        prefix, _, uid = stem.rpartition("_")
        info = {"annotation": f"all_anno/{printable_name(name)}"}
        key = f"ln-{safe_key(prefix)}-{safe_key(uid)}"
        if prefix not in PREFIX_FOLDERS or not uid:
            rows.append(Row(key, None, None, info, "unknown_source", f"file name prefix {prefix!r}"))
        else:
            rows.append(Row(key, None, AnnotationLoc(str(folder / name), str(src), prefix), info))
    digest = hashlib.sha256("\n".join(names).encode("utf-8", "surrogateescape")).hexdigest()
    return rows, {"annotation_files": len(names), "names_sha256": digest}


# An annotation file holds one narrative with its mouse traces: kilobytes, rarely a megabyte.
ANNOTATION_MAX_BYTES = 64 << 20


def raw_tree(base: Path, anno: bool) -> RawTree:
    """The folders rows may read from: the base, its image folders (each may be a symlink to
    another disk) and, for the anno layout, `all_anno`."""
    folders = [base, *(base / f for f in PREFIX_FOLDERS.values())]
    return RawTree([*folders, base / "all_anno"] if anno else folders)


class LnProcessor:
    """Reads the annotation (anno layout) and the image of one row, and builds its sample."""

    def __init__(self, policy: ImagePolicy, tree: RawTree):
        self.policy = policy
        self.tree = tree

    def __call__(self, row: Row) -> dict[str, Any]:
        info = dict(source="localized_narratives", **row.info)
        loc = row.loc
        if isinstance(loc, AnnotationLoc):
            prefix = loc.prefix
            obj = parse_json(self.tree.read(loc.path, ANNOTATION_MAX_BYTES), row.info["annotation"])
            image_id, caption_raw, facts = annotation_fields(obj)
            info.update(facts, split=str(facts.get("dataset_id", prefix)))
            caption = clean_ln_caption(caption_raw)
            if not caption:
                raise RowSkip("empty_caption", row.info["annotation"])
            path = image_path(Path(loc.images), prefix, image_id)
        else:
            assert isinstance(loc, FileLoc)
            caption, path = row.caption or "", Path(loc.path)
        info["image"] = f"{path.parent.name}/{path.name}"
        data = self.tree.read(path, self.policy.max_file_bytes)
        return image_members(data, caption, info, self.policy)


LAYOUTS = ("anno", "jsonl")


@dataclass(frozen=True)
class LocalNarrConfig:
    """One `babylm-prep localnarr` run. `src`: the LocalNarratives/LocalNarratives folder;
    `jsonl_files` (jsonl layout; default every *.jsonl in `src`); `images`: the folder holding
    MSCOCO/, OpenImages/, OpenImages_test/ for the jsonl layout (default `src`)."""

    src: Path | None
    sharding: ShardingConfig
    layout: str = "anno"
    jsonl_files: tuple[Path, ...] = ()
    images: Path | None = None
    image: ImagePolicy = field(default_factory=ImagePolicy)

    def __post_init__(self) -> None:
        if self.src is not None:
            object.__setattr__(self, "src", Path(self.src))
        elif self.layout == "anno" or not self.jsonl_files or self.images is None:
            raise ConfigError("pass --src or --root: the Localized Narratives folder is needed")
        object.__setattr__(self, "jsonl_files", tuple(Path(p) for p in self.jsonl_files))
        if self.layout not in LAYOUTS:
            raise ConfigError(f"--layout {self.layout}: choose one of {', '.join(LAYOUTS)}")
        for p in self.jsonl_files:
            if not p.is_file():
                raise ConfigError(f"--jsonl {p}: no such file")


def run_localnarr(cfg: LocalNarrConfig) -> Manifest | None:
    """Shard Localized Narratives pairs; the manifest, or None for one part of a `part` run."""
    src = cfg.src or Path()  # None only where it is not used (checked in __post_init__)
    rows: RowSet | list[Row]
    if cfg.layout == "anno":
        rows, inputs = list_anno_rows(src)
        tree = raw_tree(src, anno=True)
    else:
        files = list(cfg.jsonl_files) or sorted(src.glob("*.jsonl"))
        if not files:
            raise InputError(f"{src}: no *.jsonl files; pass them with --jsonl")
        images = Path(cfg.images) if cfg.images else src
        listed = NarrativeRows(files, images, cfg.sharding.out)
        rows, inputs = listed, listed.facts
        tree = raw_tree(images, anno=False)
    params = {
        "source": "localized_narratives",
        "layout": cfg.layout,
        "caption_cleaning": CAPTION_RULE,
        "duplicates": DUPLICATE_RULE[cfg.layout],
        "image": cfg.image.to_params(),
        "inputs": inputs,
    }
    return run_rows(
        kind="image_text",
        name="localnarr",
        rows=rows,
        processor=LnProcessor(cfg.image, tree),
        params=params,
        sharding=cfg.sharding,
    )
