"""What a loader is made of: `LoaderSpec`, every loader setting and its one default (checked once,
when the spec is made), its `Literal` choices (`Chunking`, `CaptionLoss`), and `Source`, the
interface each dataset kind's stream implements.

This module imports neither torch nor numpy, so the `babylm-train samples` CLI can read the
defaults for its `--help` without starting torch.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

# How a token stream is cut into chunks, and what a caption's labels are (see LoaderSpec).
Chunking = Literal["stream", "original"]
CaptionLoss = Literal["masked", "original"]

if TYPE_CHECKING:
    from babylm.train.data.contract import LoaderBatch


@dataclass(frozen=True)
class LoaderSpec:
    """Every setting of a rank's loader. The topology (rank, world size) and the tokenizer object
    are passed beside it; everything else lives here, with its default.

    - `batch_size` is per rank (global batch = batch_size x world size); `text_batch_size`
      (None: `batch_size`) is the tokens stream's of a paired loader.
    - `workers`: DataLoader worker processes for image/feature batches. `text_workers` stays 0 by
      default: a 128x128 token batch takes about a millisecond in-process, less than moving it
      out of a worker.
    - `chunking`: "stream" cuts the whole token stream into `seq_len` chunks; "original" cuts
      inside groups of 1000 lines and drops each group's remainder, as the original (FIDELITY.md).
    - `seed`, `block_size`, `shuffle_buffer` (and `seq_len` for tokens) fix the sample order; a
      resume must use the same values (`ShardLoader.load_state_dict` checks).
    - captions are tokenized with `image_prefix` (None: none) and cut at `max_caption_tokens`;
      `caption_loss` "masked" puts -100 on the padding, "original" keeps it in the labels and
      gives the model no attention mask, as the original did (FIDELITY.md);
      `images=False` skips image decoding (the text-only control); `image_size` is the side of the
      square uint8 images (other sizes are center-cropped).
    - `max_corrupt_fraction`: more undecodable samples than this fraction of an epoch's is an error.
    - `storage_options`: fsspec options for remote locations (e.g. S3 endpoint and keys);
      `cache_dir`: where tar indexes and blocks of remote shards are cached (None:
      $BABYLM_CACHE_DIR or ~/.cache/babylm; a folder on /dev/shm keeps them in memory).
    - remote shards are fetched an order block (`block_size` samples, one request) at a time,
      `prefetch_batches` of a worker's batches ahead, into a cache of at most `cache_bytes`
      (least recently used blocks evicted; it must hold the shuffle buffer's blocks plus the
      prefetched ones of every worker of the node). `prefetch_batches=0`: one range request per
      sample, no cache. A failed request is retried `fetch_retries` times with backoff; one
      taking longer than `fetch_timeout` seconds (HTTP) counts as failed.
    - `recycle_buffers`: workers decode into a ring of shared-memory batch buffers that come back
      once the consumer drops a batch (`buffers.py`); False: a fresh segment per batch (slower;
      kept to measure the difference).
    """

    batch_size: int = 32
    text_batch_size: int | None = None
    workers: int = 0
    text_workers: int = 0
    seed: int = 0
    seq_len: int = 128
    chunking: Chunking = "stream"
    image_prefix: str | None = "<image> "
    max_caption_tokens: int = 128
    caption_loss: CaptionLoss = "masked"
    images: bool = True
    image_size: int = 224
    block_size: int = 128
    shuffle_buffer: int = 2048
    max_corrupt_fraction: float = 0.01
    storage_options: dict[str, Any] | None = None
    cache_dir: str | os.PathLike | None = None
    cache_bytes: int = 4 << 30
    prefetch_batches: int = 8
    fetch_retries: int = 4
    fetch_timeout: float = 60.0
    pin_memory: bool = False
    prefetch_factor: int = 2
    recycle_buffers: bool = True

    def __post_init__(self) -> None:
        for name in ("batch_size", "seq_len", "max_caption_tokens", "image_size", "block_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.text_batch_size is not None and self.text_batch_size < 1:
            raise ValueError(f"text_batch_size must be >= 1, got {self.text_batch_size}")
        if self.workers < 0 or self.text_workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}, {self.text_workers}")
        if self.shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must be >= 0, got {self.shuffle_buffer}")
        if self.cache_bytes < 0 or self.prefetch_batches < 0 or self.fetch_retries < 0:
            raise ValueError("cache_bytes, prefetch_batches and fetch_retries must be >= 0")
        if self.fetch_timeout <= 0:
            raise ValueError(f"fetch_timeout must be > 0, got {self.fetch_timeout}")
        if self.chunking not in get_args(Chunking):
            raise ValueError(f"chunking must be 'stream' or 'original', got {self.chunking!r}")
        if self.caption_loss not in get_args(CaptionLoss):
            raise ValueError(f"caption_loss must be 'masked' or 'original', got {self.caption_loss!r}")
        if not 0 <= self.max_corrupt_fraction <= 1:
            raise ValueError(f"max_corrupt_fraction must be in [0, 1], got {self.max_corrupt_fraction}")

    def replace(self, **changes: Any) -> LoaderSpec:
        """A copy with `changes` applied (validated again)."""
        return dataclasses.replace(self, **changes)


def default_of(name: str) -> Any:
    """The default of LoaderSpec field `name` (for CLI options that expose it)."""
    return next(f.default for f in dataclasses.fields(LoaderSpec) if f.name == name)


class Source(Protocol):
    """One stream kind's data (image_text, features or tokens shards), as the loader sees it.

    `order` runs once per epoch in the rank's main process (forked workers inherit it); `batch`
    runs in the workers; `finish` runs in the consumer process on each batch.
    """

    kind: str  # the dataset kind (its manifest's: image_text, features, tokens), never a model kind
    num_items: int  # samples, or token chunks, in one epoch
    fingerprint: str  # identifies the shards; a resume must see the same
    has_words: bool  # batches carry `words` (every shard has prep's word counts)

    def order_settings(self) -> dict[str, Any]:
        """The settings besides seed and epoch that fix the order (the loader state's "plan")."""
        ...

    def order(self, seed: int, epoch: int) -> Any:
        """The epoch's item order."""
        ...

    def will_read(self, order: Any, positions: Iterable[Any]) -> None:
        """The positions of the batches this process will ask for next, in order (a hint: remote
        sources fetch ahead what they need; the batches are right without it)."""
        ...

    def batch(self, order: Any, positions: Any) -> LoaderBatch:
        """The batch of the items at `positions` of `order`, with `corrupt`: the ones left out."""
        ...

    def finish(self, batch: LoaderBatch) -> LoaderBatch:
        """What the consumer process adds to a batch."""
        ...
