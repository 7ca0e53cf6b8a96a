"""Hostile inputs built in the test: forged tar indexes and manifests, a JPEG bomb, and a guard
that turns a hang into a failure."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from babylm.shards.index_file import decode_index, encode_index, sha256_hex


def jpeg_bomb(side: int = 12000) -> bytes:
    """A few-hundred-byte JPEG whose header declares `side` x `side` pixels (its scan data is
    that of a 16x16 image): decoding it would allocate side*side*3 bytes."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buf, "JPEG", quality=50)
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")  # baseline start-of-frame: length, precision, height, width
    data[sof + 5 : sof + 9] = side.to_bytes(2, "big") * 2
    return bytes(data)


def edit_manifest(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite `folder/manifest.json` with `change` applied to its JSON object."""
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def forge_index(folder: Path, shard: int, change: Callable[[np.ndarray, np.ndarray], None]) -> None:
    """Rewrite shard `shard`'s `.idx` with `change(ranges, crcs)` applied, its own checksum and
    the manifest's sha256 of it made to match: a forgery, not damage."""
    manifest = json.loads((folder / "manifest.json").read_text())
    entry = manifest["shards"][shard]
    path = folder / entry["index"]["path"]
    index = decode_index(path.read_bytes(), str(path))
    ranges, crcs = index.ranges.copy(), index.crcs.copy()
    change(ranges, crcs)
    data = encode_index(ranges.astype(np.uint64), crcs, index.shard_bytes, index.shard_sha256)
    path.write_bytes(data)

    def listing(m: dict[str, Any]) -> None:
        m["shards"][shard]["index"].update(bytes=len(data), sha256=sha256_hex(data))

    edit_manifest(folder, listing)


def finishes(fn: Callable[[], Any], timeout: float = 30.0) -> Any:
    """`fn()`'s result or exception, or a test failure if it is still running after `timeout`
    seconds (a read that blocks forever must fail the test, not hang the suite)."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"still running after {timeout} s (blocked on a read?)"
    if "error" in out:
        raise out["error"]
    return out.get("value")
