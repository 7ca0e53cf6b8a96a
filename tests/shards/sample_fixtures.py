"""Small image samples and datasets the shard tests write (built here, never checked in)."""

import io
from pathlib import Path

from PIL import Image

from babylm.shards import Manifest, RollingWriter, write_manifest


def jpeg_bytes(color: str = "red", size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, "JPEG")
    return buf.getvalue()


def image_samples(n: int) -> list[dict]:
    colors = ["red", "green", "blue", "yellow"]
    return [
        {
            "__key__": f"s{i:05d}",
            "jpg": jpeg_bytes(colors[i % 4]),
            "txt": f"a {colors[i % 4]} square",
            "json": {"i": i},
        }
        for i in range(n)
    ]


def write_image_dataset(out: Path) -> Path:
    """An image_text dataset of 10 samples in 3 tar shards (4, 4, 2), 2 decode errors counted."""
    with RollingWriter(out, "tar", max_samples=4) as w:
        for s in image_samples(10):
            w.write(s)
    write_manifest(out, Manifest(kind="image_text", shards=w.entries, skipped={"decode_error": 2}))
    return out


def write_token_dataset(out: Path) -> Path:
    """A tokens dataset of 12 rows (row i: i + 1 tokens, i words) in 3 Arrow shards, vocabulary 50."""
    with RollingWriter(out, "arrow", max_samples=5, vocab_size=50) as w:
        for i in range(12):
            w.write([i % 50] * (i + 1), words=i)
    write_manifest(out, Manifest(kind="tokens", shards=w.entries, params={"vocab_size": 50}))
    return out
