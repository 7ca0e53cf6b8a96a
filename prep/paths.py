"""Where raw data and shards live, following the original's environment variables.

`BABYLM_ROOT_DIR` holds models, records and (new here) shards; `BABYLM_DATASET_ROOT_DIR` holds the
raw datasets and defaults to `$BABYLM_ROOT_DIR/datasets`, as in the original README.
"""

from __future__ import annotations

import os
from pathlib import Path

from babylm.prep.errors import ConfigError


def babylm_root() -> Path:
    root = os.environ.get("BABYLM_ROOT_DIR")
    if not root:
        raise ConfigError("set BABYLM_ROOT_DIR (or pass --out / --root explicitly)")
    return Path(root)


def dataset_root(root: str | os.PathLike | None) -> Path:
    """The raw-dataset folder: --root, else $BABYLM_DATASET_ROOT_DIR, else $BABYLM_ROOT_DIR/datasets."""
    if root:
        return _existing(Path(root), "--root")
    env = os.environ.get("BABYLM_DATASET_ROOT_DIR")
    if env:
        return _existing(Path(env), "$BABYLM_DATASET_ROOT_DIR")
    if os.environ.get("BABYLM_ROOT_DIR"):
        return babylm_root() / "datasets"
    raise ConfigError("pass --root, or set BABYLM_DATASET_ROOT_DIR or BABYLM_ROOT_DIR")


def _existing(folder: Path, given_as: str) -> Path:
    if not folder.is_dir():
        raise ConfigError(f"{given_as} {folder}: no such folder; pass the folder that holds the raw datasets")
    return folder


def default_out(out: str | os.PathLike | None, name: str) -> Path:
    """--out if given, else $BABYLM_ROOT_DIR/shards/NAME."""
    return Path(out) if out else babylm_root() / "shards" / name
