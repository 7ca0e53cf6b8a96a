"""Small image samples the shard writer tests write (built here, never checked in)."""

import io

from PIL import Image


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
