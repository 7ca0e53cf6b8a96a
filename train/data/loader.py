"""Streaming loaders over babylm shards: equal steps on every rank, deterministic, resumable.

`build_loader(location, ...)` is what the trainer calls. Locations are local folders, `file://`,
`http(s)://` or `s3://` URLs of dataset folders (several of the same kind are concatenated).

How it is built, and what webdataset does in it:
- the epoch order (`order.py`) fixes the global sample sequence from (seed, epoch): blocks of the
  shards permuted, then webdataset's bounded shuffle. Every rank derives its batches from it; the
  DataLoader workers of a rank split the rank's batches. This replaces `split_by_node` /
  `split_by_worker`, whose shard dealing makes ranks unequal and the order topology-dependent;
- samples are read by byte range through each shard's index (`babylm.shards.shard_reader`), because webdataset's
  tar reader is a stream and cannot start mid-shard; a resume reads nothing it skips;
- decoding (`collate.py`) is ours: JPEGs go straight into the batch buffer, which
  webdataset's `Decoder` cannot do, and an undecodable sample must be counted against its
  shard, not just dropped; batches have fixed membership from the order, so they are assembled
  by the order, not by `wds.batched` (which would refill a batch that lost a corrupt sample from
  the next one and shift every later batch).
So webdataset remains where it fits this design: its bounded shuffle buffer (in the order), its
key rule for tar members, and its TarWriter (in `babylm.shards`, which writes the shards).

Both loaders implement `TrainLoader` (`contract.py`): a step is `{stream: LoaderBatch}`, with the
stream "caption" (image_text, features) or "text" (tokens); `PairedLoader` gives both. Per stream
(`LoaderBatch`: `keys`, `captions`, `words` beside `inputs`, the model inputs):
- image_text: `captions`; inputs "pixel_values": uint8 (B, 3, S, S), "input_ids",
  "attention_mask", "labels": long (B, T) (token fields only with a tokenizer, no attention_mask
  with caption_loss="original"; no pixel_values with images=False). pixel_values has
  channels-last strides (it is a view of the (B, S, S, 3) decode buffer); `.to(device)` then
  normalizing on the device handles that, `.contiguous()` makes it NCHW-contiguous if needed;
- features: the same with "image_embeds": float32 (B, 768) or (B, N, 768) instead of pixels;
- tokens: keys are chunk ids; inputs "input_ids": long (B, seq_len), "labels": a copy of it.
An undecodable sample is left out of its batch (so B can be smaller), counted and logged.
`ShardLoader.batches()` iterates one stream's bare `LoaderBatch`es.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Iterator, Sequence
from typing import Any

from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from babylm.train.data.buffers import RING_EXTRA, BufferFlags, WorkerBuffers, set_worker_buffers
from babylm.train.data.contract import LoaderBatch, TrainLoader
from babylm.train.data.order import EpochCursor, worker_steps
from babylm.train.data.paired import PairedLoader
from babylm.train.data.sources import make_source
from babylm.train.data.spec import LoaderSpec, Source

log = logging.getLogger("babylm.train.loader")

STATE_VERSION = 1
__all__ = [
    "CorruptDataError",
    "LoaderBatch",
    "LoaderSpec",
    "PairedLoader",
    "ShardLoader",
    "TrainLoader",
    "build_loader",
    "make_source",
]


class CorruptDataError(RuntimeError):
    """Too many undecodable samples: the data is broken, not unlucky."""


class _EpochStream(IterableDataset):
    """The batches of one rank for steps [start, end) of an epoch; workers take every W-th."""

    def __init__(self, source: Any, order: Any, cursor: EpochCursor, rank: int, batch_size: int, start: int):
        self.source, self.order, self.cursor = source, order, cursor
        self.rank, self.batch_size, self.start = rank, batch_size, start
        self.flags: BufferFlags | None = None  # the workers' batch buffer rings (None: fresh buffers)

    def __iter__(self) -> Iterator[LoaderBatch]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if info is not None:
            set_worker_buffers(WorkerBuffers(self.flags, worker) if self.flags is not None else None)
        steps = worker_steps(self.start, self.cursor.steps, worker, workers)
        self.source.will_read(
            self.order, (self.cursor.rank_positions(s, self.rank, self.batch_size) for s in steps)
        )
        try:
            for step in steps:
                batch = self.source.batch(
                    self.order, self.cursor.rank_positions(step, self.rank, self.batch_size)
                )
                batch.step = step
                yield batch
        finally:
            self.source.will_read(self.order, ())  # stopped early: no more downloads for this schedule


def _fresh_counters() -> dict[str, Any]:
    return {"epoch_seen": 0, "epoch_skipped": 0, "total_skipped": 0, "by_shard": {}}


class ShardLoader:
    """Batches of one rank over one kind of shards, one stream (a `TrainLoader`); iterate it once
    per epoch.

    Iterating yields the rest of the current epoch (from `step`) as `{stream: batch}`, then moves
    to the next epoch; `batches()` yields the bare batches. `state_dict()` taken after a batch was
    handed out resumes right after that batch.
    """

    def __init__(
        self,
        source: Source,
        batch_size: int,
        world_size: int,
        rank: int,
        workers: int,
        spec: LoaderSpec,
        multiprocessing_context: Any = None,
        stream: str | None = None,
    ):
        """`batch_size` and `workers` are this stream's (a paired loader's streams differ); the
        rest of the settings come from `spec` (seed, corrupt limit, pinning, prefetch). `stream`
        names the batches (None: "text" for tokens, "caption" for image_text and features)."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        if batch_size < 1 or workers < 0:
            raise ValueError(f"batch_size must be >= 1 and workers >= 0, got {batch_size}, {workers}")
        self.source = source
        self.kind = source.kind
        self.streams = (stream or ("text" if source.kind == "tokens" else "caption"),)
        self.batch_size, self.world_size, self.rank = batch_size, world_size, rank
        self.workers, self.seed = workers, spec.seed
        self.max_corrupt_fraction = spec.max_corrupt_fraction
        self.pin_memory, self.prefetch_factor = spec.pin_memory, spec.prefetch_factor
        self.recycle_buffers = spec.recycle_buffers
        self.multiprocessing_context = multiprocessing_context
        self.epoch = 0
        self.step = 0
        self._base = (0, 0)  # (consumed offset, step) the current epoch's batches count from
        self.corrupt = _fresh_counters()

    @property
    def samples_per_epoch(self) -> dict[str, int]:
        return {self.streams[0]: self.num_samples}

    @property
    def skipped(self) -> int:
        """Undecodable samples this loader has left out so far."""
        return int(self.corrupt["total_skipped"])

    @property
    def has_words(self) -> bool:
        return bool(self.source.has_words)

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    @property
    def num_samples(self) -> int:
        """Samples (token chunks for `tokens`) in one epoch."""
        return self.source.num_items

    def _cursor(self) -> EpochCursor:
        return EpochCursor(self.num_samples, self.global_batch, *self._base)

    @property
    def steps_per_epoch(self) -> int:
        """Steps of the current epoch, equal on every rank (floor(N / global batch) when fresh)."""
        return self._cursor().steps

    def __len__(self) -> int:
        return self.steps_per_epoch

    @property
    def dropped_per_epoch(self) -> int:
        """Samples a fresh epoch leaves out: N mod global batch (fewer than one global batch)."""
        return self.num_samples % self.global_batch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch `epoch`; a resumed position in that epoch is kept."""
        if epoch != self.epoch:
            self.epoch, self.step, self._base = epoch, 0, (0, 0)
            self._reset_epoch_counters()

    def seek(self, epoch: int, step: int) -> None:
        """Jump to `step` of a fresh epoch `epoch` (same global batch throughout)."""
        self.set_epoch(epoch)
        self.epoch, self.step, self._base = epoch, step, (0, 0)

    def _reset_epoch_counters(self) -> None:
        self.corrupt["epoch_seen"] = 0
        self.corrupt["epoch_skipped"] = 0

    def __iter__(self) -> Iterator[dict[str, LoaderBatch]]:
        name, batches = self.streams[0], self.batches()
        try:
            for batch in batches:
                yield {name: batch}
        finally:
            batches.close()  # stopped early: the workers go now, not when the generator is collected

    def batches(self) -> Generator[LoaderBatch, None, None]:
        """The rest of the current epoch's batches, then the move to the next epoch."""
        cursor = self._cursor()
        if self.step < cursor.steps:
            log.info(
                "%s epoch %d from step %d: %d samples, %d steps of global batch %d, %d left out",
                self.kind, self.epoch, self.step, cursor.num_items, cursor.steps, self.global_batch, cursor.dropped,
            )  # fmt: skip
            order = self.source.order(self.seed, self.epoch)
            stream = _EpochStream(self.source, order, cursor, self.rank, self.batch_size, self.step)
            for batch in self._batches(stream):
                if batch.step != self.step:
                    raise RuntimeError(f"loader got step {batch.step} while expecting {self.step}")
                self._account(batch.corrupt)
                if batch.slot >= 0 and stream.flags is not None:
                    stream.flags.release_when_freed(batch.inputs["pixel_values"], batch.slot)
                self.step = batch.step + 1
                yield self.source.finish(batch)
        self._finish_epoch()

    def _batches(self, stream: _EpochStream) -> Iterator[LoaderBatch]:
        if self.workers == 0:
            return iter(stream)
        if self.recycle_buffers:
            stream.flags = BufferFlags(self.workers, self.prefetch_factor + RING_EXTRA)
        loader = DataLoader(
            stream,
            batch_size=None,
            num_workers=self.workers,
            pin_memory=self.pin_memory,
            prefetch_factor=self.prefetch_factor,
            multiprocessing_context=self.multiprocessing_context,
            in_order=True,  # worker outputs are read round-robin: this is what keeps the order
        )
        return iter(loader)

    def _account(self, corrupt: list[dict[str, Any]]) -> None:
        c = self.corrupt
        c["epoch_seen"] += self.batch_size
        if not corrupt:
            return
        c["epoch_skipped"] += len(corrupt)
        c["total_skipped"] += len(corrupt)
        for item in corrupt:
            c["by_shard"][item["shard"]] = c["by_shard"].get(item["shard"], 0) + 1
            log.warning(
                "skipped undecodable sample %d of %s: %s", item["index"], item["shard"], item["error"]
            )
        # Judged once 1/fraction samples were seen, so one early bad sample is not "over 1%".
        if c["epoch_seen"] * self.max_corrupt_fraction >= 1:
            self._check_corrupt(corrupt[-1])

    def _check_corrupt(self, last: dict[str, Any] | None = None) -> None:
        c = self.corrupt
        if c["epoch_skipped"] <= self.max_corrupt_fraction * c["epoch_seen"]:
            return
        worst = max(c["by_shard"].items(), key=lambda kv: kv[1])
        raise CorruptDataError(
            f"{c['epoch_skipped']} of {c['epoch_seen']} samples undecodable in epoch {self.epoch} on rank "
            f"{self.rank}, over the limit of {self.max_corrupt_fraction:.2%}; most in shard {worst[0]} "
            f"({worst[1]})" + (f"; last: {last['shard']}: {last['error']}" if last else "")
        )

    def _finish_epoch(self) -> None:
        if self.corrupt["epoch_skipped"]:
            log.warning(
                "%s epoch %d: skipped %d undecodable of %d samples on rank %d",
                self.kind, self.epoch, self.corrupt["epoch_skipped"], self.corrupt["epoch_seen"], self.rank,
            )  # fmt: skip
            self._check_corrupt()
        self.epoch, self.step, self._base = self.epoch + 1, 0, (0, 0)
        self._reset_epoch_counters()

    def state_dict(self) -> dict[str, Any]:
        """Position and counters: what `load_state_dict` needs to continue exactly."""
        cursor = self._cursor()
        return {
            "version": STATE_VERSION,
            "kind": self.kind,
            "epoch": self.epoch,
            "step": self.step,
            "consumed": cursor.consumed(self.step),
            "global_batch": self.global_batch,
            "steps_per_epoch": cursor.steps,
            "num_samples": self.num_samples,
            "dropped": cursor.dropped,
            "seed": self.seed,
            "plan": self.source.order_settings(),  # key kept: older states resume
            "fingerprint": self.source.fingerprint,
            "rank": self.rank,
            "world_size": self.world_size,
            "batch_size": self.batch_size,
            "workers": self.workers,
            "corrupt": {**self.corrupt, "by_shard": dict(self.corrupt["by_shard"])},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state`, with any world size and worker count.

        The global batch may differ too: the rest of the epoch is then cut into the new global
        batch from the consumed offset. Seed, order settings and data must be the same.
        """
        for name, mine in (
            ("kind", self.kind),
            ("seed", self.seed),
            ("plan", self.source.order_settings()),
            ("fingerprint", self.source.fingerprint),
            ("num_samples", self.num_samples),
        ):
            if state.get(name) != mine:
                raise ValueError(
                    f"loader state has {name}={state.get(name)!r} but this loader has {mine!r}; "
                    "resuming would not continue the same sample order"
                )
        consumed, step = int(state["consumed"]), int(state["step"])
        self.epoch, self.step, self._base = int(state["epoch"]), step, (consumed, step)
        if state["global_batch"] != self.global_batch:
            log.warning(
                "resuming epoch %d with global batch %d instead of %d: the remaining %d samples are re-cut",
                self.epoch, self.global_batch, state["global_batch"], self.num_samples - consumed,
            )  # fmt: skip
        # The corrupt-sample counters are this rank's own; another rank's (after a topology
        # change) would be counted twice when ranks are summed, so they restart at zero.
        saved = state.get("corrupt") or {}
        if (state.get("rank"), state.get("world_size")) != (self.rank, self.world_size):
            saved = {}
        self.corrupt = {**_fresh_counters(), **saved, "by_shard": dict(saved.get("by_shard", {}))}


def build_loader(
    location: str | os.PathLike | Sequence[str | os.PathLike],
    spec: LoaderSpec | None = None,
    *,
    kind: str | None = None,
    text_location: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    tokenizer: Any = None,
    world_size: int = 1,
    rank: int = 0,
    **changes: Any,
) -> ShardLoader | PairedLoader:
    """The loader of one rank: what every torchrun rank of the trainer calls.

    - `location`: dataset folder(s) or URL(s) of one kind; `kind` defaults to the manifest's.
      With `text_location` (or kind="paired") the result is a `PairedLoader` of the caption
      stream at `location` and the tokens stream at `text_location`.
    - `spec`: every loader setting (see `LoaderSpec`); keyword `changes` replace single fields of
      it, e.g. `build_loader(path, batch_size=16, workers=2)`.
    - `tokenizer` (object or path): captions are tokenized in the workers; without one, batches
      carry only the caption strings.
    - `world_size`, `rank`: this process's place in the job (torchrun's).
    """
    spec = (spec or LoaderSpec()).replace(**changes) if changes else (spec or LoaderSpec())
    if tokenizer is not None and spec.workers > 0:
        # Forked workers tokenize; the Rust thread pool must not be live across the fork.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    def loader(source: Source, batch_size: int, workers: int) -> ShardLoader:
        return ShardLoader(source, batch_size, world_size, rank, workers, spec)

    if kind == "paired" or text_location is not None:
        if text_location is None:
            raise ValueError("kind='paired' needs text_location (the tokens dataset)")
        caption = loader(make_source(location, spec, tokenizer=tokenizer), spec.batch_size, spec.workers)
        if caption.kind == "tokens":
            raise ValueError("the caption stream of a paired loader must be image_text or features")
        text_src = make_source(text_location, spec, kind="tokens", tokenizer=tokenizer)
        text = loader(text_src, spec.text_batch_size or spec.batch_size, spec.text_workers)
        return PairedLoader(caption, text)
    source = make_source(location, spec, kind=kind, tokenizer=tokenizer)
    return loader(source, spec.batch_size, spec.workers)
