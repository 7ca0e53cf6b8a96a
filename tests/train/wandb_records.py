"""Read the records of an offline W&B run file (`run-ID.wandb`) with wandb's own protobuf classes.

wandb 0.31 ships no Python reader of that file any more (its datastore module is gone; `wandb sync`
has no view); the framing is LevelDB's log format, which W&B documents: a 7-byte file header
(":W&B", magic 0xBEE1, version), then 32 KiB blocks of chunks, each with a 7-byte header (CRC-32C,
length, type: full, first, middle, last) and zero padding at the end of a block.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BLOCK = 32768
CHUNK_HEADER = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _chunks(data: bytes) -> Iterator[bytes]:
    ident, magic, _version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic) == (b":W&B", 0xBEE1), f"not a W&B run file: {ident!r} {magic:#x}"
    pos, pending = 7, b""
    while pos + CHUNK_HEADER.size <= len(data):
        if BLOCK - pos % BLOCK < CHUNK_HEADER.size:  # the block's zero padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = CHUNK_HEADER.unpack_from(data, pos)
        if kind == 0:
            break
        body = data[pos + CHUNK_HEADER.size : pos + CHUNK_HEADER.size + length]
        pos += CHUNK_HEADER.size + length
        if kind == FULL:
            yield body
        elif kind == FIRST:
            pending = body
        elif kind == MIDDLE:
            pending += body
        elif kind == LAST:
            yield pending + body


def read_run_file(path: Path) -> dict[str, Any]:
    """The run id, its config and its history rows ({key: value} with `_step`) of one file."""
    from wandb.proto import wandb_internal_pb2 as pb

    out: dict[str, Any] = {"id": None, "config": {}, "history": []}
    for body in _chunks(path.read_bytes()):
        rec = pb.Record()
        rec.ParseFromString(body)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["id"] = rec.run.run_id
            out["project"] = rec.run.project
            out["config"].update({_key(i): json.loads(i.value_json) for i in rec.run.config.update})
        elif kind == "config":
            out["config"].update({_key(i): json.loads(i.value_json) for i in rec.config.update})
        elif kind == "history":
            out["history"].append({_key(i): json.loads(i.value_json) for i in rec.history.item})
    return out


def _key(item: Any) -> str:
    """An item's key: `key`, or for the nested form (what newer versions write) `nested_key`."""
    return item.key or "/".join(item.nested_key)
