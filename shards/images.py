"""The pixel limit every reader of shard images decodes under (prep's default, the loader's,
`verify --deep`'s and `inspect --sheet`'s): a 600-byte JPEG can declare 12000x12000 pixels
and cost gigabytes to decode, so the size in the header is checked before decoding."""

from __future__ import annotations

import io
import warnings
from typing import Any

# PIL's own default bomb threshold (about 89.5 megapixels, a 0.25 GB RGB buffer); prep refuses
# larger raw images (`--max-pixels`, default this) and writes small ones, so a shard image above
# it was not written by prep.
MAX_IMAGE_PIXELS = 89_478_485


class ImageTooLarge(ValueError):
    """An image whose header declares more pixels than `MAX_IMAGE_PIXELS` (a decompression bomb)."""


def check_pixels(width: int, height: int, limit: int = MAX_IMAGE_PIXELS) -> None:
    """ImageTooLarge if a `width` x `height` image is over `limit` pixels."""
    if width * height > limit:
        raise ImageTooLarge(f"{width}x{height} image exceeds the {limit}-pixel limit (decompression bomb?)")


def open_image(data: bytes, limit: int = MAX_IMAGE_PIXELS) -> Any:
    """A PIL image of `data`, header read and size checked, pixels not yet decoded.

    PIL's own guard is process-wide (`Image.MAX_IMAGE_PIXELS`, which prep raises to its
    --max-pixels) and only warns below twice its value; this check does not depend on it."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as e:
            raise ImageTooLarge(f"decompression bomb: {e}") from e
    try:
        check_pixels(*im.size, limit)
    except ImageTooLarge:
        im.close()
        raise
    return im
