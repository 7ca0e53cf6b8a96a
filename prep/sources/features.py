"""The 2024 release's precomputed image features into shards (`babylm-prep features`).

Input: a JSON list of captions (`cc_3M_captions.json`, `local_narr_captions.json`) aligned row by
row with one or more (N, D) arrays (`cc_3M_dino_v2_states_1of2.npy`, `..._2of2.npy`) that are
read concatenated in the order given. The arrays are memory-mapped, never read whole. Each
sample is `{key}.npy` (one D-vector, dtype as stored), `{key}.txt` (cleaned caption) and
`{key}.json` (source, row, which array file and row). Skips: `empty_caption`, `malformed_row`
(a list element that is not a caption), `non_finite` (a vector with NaN or inf).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from babylm.prep.errors import ConfigError, InputError, RowSkip
from babylm.prep.sharding.config import ShardingConfig
from babylm.prep.sharding.plan import ArrayRowLoc, Row
from babylm.prep.sources.captions import CLEANERS
from babylm.prep.sources.common import caption_words, run_rows, safe_key
from babylm.prep.sources.rawfile import check_input_file
from babylm.prep.sources.rowdata import DATA_ERRORS, describe, is_utf8_text
from babylm.shards import Manifest

CLEAN_RULES = {
    "cc3m": "cc3m: strip, then remove the space before . : ! , ? ;",
    "ln": "ln: U+00A0 to space, whitespace collapsed",
    "none": "none: strip only",
}


def guess_cleaning(captions: Path) -> str:
    """cc3m for CC-3M caption files, ln for Localized Narratives ones, else none."""
    name = captions.name.lower()
    if "cc_3m" in name or "cc3m" in name:
        return "cc3m"
    if "local_narr" in name or "localnarr" in name:
        return "ln"
    return "none"


def open_states(paths: list[Path]) -> list[np.ndarray]:
    """Memory-map each array and check they are 2-D with one feature width."""
    arrays = []
    for p in paths:
        try:
            arr = np.load(p, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise InputError(f"{p}: not a readable .npy array: {e}") from e
        if arr.ndim != 2:
            raise InputError(f"{p}: expected a 2-D (rows, features) array, got shape {arr.shape}")
        if arrays and arr.shape[1] != arrays[0].shape[1]:
            raise InputError(f"{p}: {arr.shape[1]} features per row, but {paths[0]} has {arrays[0].shape[1]}")
        arrays.append(arr)
    return arrays


def list_feature_rows(
    captions_path: Path, states: list[Path], cleaning: str
) -> tuple[list[Row], dict[str, Any], int, str]:
    """Rows of (caption, array row), after checking that the counts line up."""
    data = captions_path.read_bytes()
    try:
        captions = json.loads(data)
    except DATA_ERRORS as e:
        raise InputError(f"{captions_path}: not valid JSON: {describe(e)}") from None
    if not isinstance(captions, list):
        raise InputError(f"{captions_path}: expected a JSON list of captions, got {type(captions).__name__}")
    arrays = open_states(states)
    counts = [a.shape[0] for a in arrays]
    if sum(counts) != len(captions):
        each = ", ".join(f"{p.name}: {n:,}" for p, n in zip(states, counts, strict=True))
        raise InputError(
            f"{captions_path} has {len(captions):,} captions but the --states arrays have {sum(counts):,} "
            f"rows ({each}); they must line up row by row"
        )
    clean = CLEANERS[cleaning]
    stem = safe_key(captions_path.stem)
    rows = []
    row = 0
    for f, n in enumerate(counts):
        for j in range(n):
            item = captions[row]
            info = {"row": row, "states": states[f].name, "states_row": j}
            key = f"{stem}-{row:08d}"
            if isinstance(item, dict):
                item = item.get("caption", item.get("text"))
            if not isinstance(item, str):
                detail = f"{captions_path.name}[{row}] is {type(item).__name__}, not a caption string"
                rows.append(Row(key, None, None, info, "malformed_row", detail))
            elif not is_utf8_text(item):
                detail = f"{captions_path.name}[{row}] holds a lone surrogate (a \\u escape that is not text)"
                rows.append(Row(key, None, None, info, "malformed_row", detail))
            elif not clean(item):
                rows.append(Row(key, None, None, info, "empty_caption", f"{captions_path.name}[{row}]"))
            else:
                rows.append(Row(key, clean(item), ArrayRowLoc(f, j), info))
            row += 1
    inputs = {
        "captions_file": {
            "name": captions_path.name,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
        "states_files": [
            {"name": p.name, "rows": int(a.shape[0]), "bytes": p.stat().st_size}
            for p, a in zip(states, arrays, strict=True)
        ],
    }
    dim = int(arrays[0].shape[1]) if arrays else 0
    dtype = str(arrays[0].dtype) if arrays else ""
    return rows, inputs, dim, dtype


class FeaturesProcessor:
    """Reads one row of the memory-mapped arrays (each worker maps them once)."""

    def __init__(self, paths: list[str], base_info: dict[str, Any]):
        self.paths = paths
        self.base_info = base_info
        self._arrays: list[np.ndarray] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Ship paths to the workers, never the mapped arrays.
        return {"paths": self.paths, "base_info": self.base_info, "_arrays": None}

    def __call__(self, row: Row) -> dict[str, Any]:
        if self._arrays is None:
            self._arrays = [np.load(p, mmap_mode="r", allow_pickle=False) for p in self.paths]
        loc = row.loc
        assert isinstance(loc, ArrayRowLoc)
        vec = np.array(self._arrays[loc.file][loc.index])
        if not np.all(np.isfinite(vec)):
            raise RowSkip("non_finite", f"{row.info['states']} row {loc.index} has NaN or inf")
        caption = row.caption or ""
        meta = dict(self.base_info, **row.info, words=caption_words(caption))
        return {"npy": vec, "txt": caption, "json": meta}


SAMPLES_PER_SHARD = 10_000  # the features command's default: rows are small


@dataclass(frozen=True)
class FeaturesConfig:
    """One `babylm-prep features` run: a captions JSON aligned row by row with the `states` arrays."""

    captions: Path
    states: tuple[Path, ...]
    sharding: ShardingConfig
    cleaning: str = "auto"  # auto: cc3m or ln from the captions file name
    name: str | None = None  # default features-<captions file stem>

    def __post_init__(self) -> None:
        object.__setattr__(self, "captions", Path(self.captions))
        object.__setattr__(self, "states", tuple(Path(p) for p in self.states))
        if self.cleaning not in ("auto", *CLEAN_RULES):
            raise ConfigError(f"--clean {self.cleaning}: choose auto or one of {', '.join(CLEAN_RULES)}")
        _check_file("--captions", self.captions)
        if not self.states:
            raise ConfigError("--states: give at least one .npy array")
        for p in self.states:
            _check_file("--states", p)

    @property
    def dataset_name(self) -> str:
        return self.name or default_name(self.captions)


def _check_file(option: str, path: Path) -> None:
    if not path.exists():
        raise ConfigError(f"{option} {path}: no such file")
    check_input_file(path, option)  # a FIFO or device would block or never end


def default_name(captions: Path) -> str:
    return f"features-{safe_key(Path(captions).stem)}"


def run_features(cfg: FeaturesConfig) -> Manifest | None:
    """Shard the features with their captions; the manifest, or None for one part of a `part` run."""
    cleaning = guess_cleaning(cfg.captions) if cfg.cleaning == "auto" else cfg.cleaning
    rows, inputs, dim, dtype = list_feature_rows(cfg.captions, list(cfg.states), cleaning)
    params = {
        "source": "features",
        "caption_cleaning": CLEAN_RULES[cleaning],
        "feature_dim": dim,
        "feature_dtype": dtype,
        "inputs": inputs,
    }
    processor = FeaturesProcessor([str(p.resolve()) for p in cfg.states], {"source": cfg.captions.stem})
    return run_rows(
        kind="features",
        name=cfg.dataset_name,
        rows=rows,
        processor=processor,
        params=params,
        sharding=cfg.sharding,
    )
