"""The data loader: babylm shards to per-rank training batches (`babylm.train.data`).

`contract` declares what the trainer and a loader promise each other: `TrainLoader` (streams,
steps per epoch, `set_epoch`, skipped samples, words, `state_dict`), yielding `{stream:
LoaderBatch}` per step for one stream too, and `LoaderBatch` (the model inputs, and beside them
the keys, captions, words and the worker's bookkeeping). `spec` declares every loader setting
and its default (`LoaderSpec`) and the interface of a stream's data (`Source`). How a batch is
made, module by module:

1. `order`: the epoch order. From (seed, epoch) and the manifests' sample counts it fixes the global
   sample sequence (shard blocks permuted, then webdataset's bounded shuffle) and deals global
   batches to ranks and DataLoader workers, so every rank has the same number of steps;
2. `shard_files`, `prefetch` and `tokens`: random access to the shards. Reading a tar shard's
   samples is `babylm.shards.shard_reader`'s (the byte-range index with a CRC-32C per sample, so a
   resume decodes nothing it skips and a damaged sample is caught); `shard_files` picks one reader
   per shard when the source is made: local shards read directly, remote ones in order blocks
   prefetched into a bounded shared disk cache (`prefetch`); token chunks are read from the Arrow
   token shards;
3. `sources`: one source per stream (image_text, features or tokens), joining 1 and 2: its items
   per epoch, its epoch order, and how to read the raw items of a batch;
4. `paired`: one caption batch and one text batch per step (the multimodal training);
5. `collate`: raw samples into a `LoaderBatch` (JPEGs decoded straight into the batch buffer,
   captions tokenized, labels by `babylm.train.losses`' caption-label rule); an undecodable
   sample is left out and counted against its shard;
   `buffers`: the workers' recycled shared-memory batch buffers;
6. `loader`: `ShardLoader` and `build_loader`, what the trainer calls: the DataLoader around all
   of the above, with exact `state_dict()` / resume on any topology; it takes the worker's
   bookkeeping off each batch (step check, corrupt counts, buffer slot).

`samples` reads which keys each rank gets at each step from this same code, for the
`babylm-train samples` command (`babylm.train.cli_samples`).

The names below are re-exported lazily, so that importing this package (as `babylm-train --help`
does) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from babylm.shards.errors import CorruptSample, ShardError
    from babylm.train.data.collate import SampleCollate, load_tokenizer
    from babylm.train.data.contract import LoaderBatch, TrainLoader
    from babylm.train.data.loader import CorruptDataError, ShardLoader, build_loader
    from babylm.train.data.paired import PairedLoader
    from babylm.train.data.spec import LoaderSpec, Source

_EXPORTS = {
    "LoaderBatch": "contract",
    "TrainLoader": "contract",
    "build_loader": "loader",
    "ShardLoader": "loader",
    "CorruptDataError": "loader",
    "PairedLoader": "paired",
    "SampleCollate": "collate",
    "load_tokenizer": "collate",
    "LoaderSpec": "spec",
    "Source": "spec",
}

__all__ = [
    "CorruptDataError",
    "CorruptSample",
    "LoaderBatch",
    "LoaderSpec",
    "PairedLoader",
    "SampleCollate",
    "ShardError",
    "ShardLoader",
    "Source",
    "TrainLoader",
    "build_loader",
    "load_tokenizer",
]


# The shard errors are `babylm.shards`' (the reader of samples is there); named here too, as ever.
_SHARD_ERRORS = ("CorruptSample", "ShardError")


def __getattr__(name: str) -> Any:
    if name in _SHARD_ERRORS:
        return getattr(importlib.import_module("babylm.shards.errors"), name)
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
