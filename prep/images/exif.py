"""The EXIF orientation of a JPEG, read from its APP1 segment without opening the image.

The JPEG fast path decodes with libjpeg-turbo, which ignores EXIF; opening the file with PIL just
to read one tag costs about as much as a tenth of the whole decode, so the tag is parsed here.
Anything unexpected gives 1 (no transform), which is also what PIL does with a broken EXIF block.
"""

from __future__ import annotations

import struct

_ORIENTATION_TAG = 0x0112
_SOS, _EOI = 0xDA, 0xD9


def jpeg_orientation(data: bytes) -> int:
    """The orientation tag (1..8) of the first EXIF APP1 segment of a JPEG, else 1."""
    try:
        return _scan(data)
    except (struct.error, IndexError, ValueError):
        return 1


def _scan(data: bytes) -> int:
    pos = 2  # after SOI
    end = len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return 1
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (_SOS, _EOI):
            return 1  # EXIF comes before the image data
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if marker == 0xE1 and data[pos + 4 : pos + 10] == b"Exif\x00\x00":
            return _orientation_in_tiff(data[pos + 10 : pos + 2 + length])
        pos += 2 + length
    return 1


def _orientation_in_tiff(tiff: bytes) -> int:
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None:
        return 1
    (ifd,) = struct.unpack_from(order + "I", tiff, 4)
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    for i in range(count):
        tag, kind, n = struct.unpack_from(order + "HHI", tiff, ifd + 2 + 12 * i)
        if tag == _ORIENTATION_TAG:
            if kind == 3 and n >= 1:  # SHORT, stored in the first two bytes of the value field
                (value,) = struct.unpack_from(order + "H", tiff, ifd + 2 + 12 * i + 8)
            elif kind == 4 and n >= 1:  # LONG (rare, but PIL accepts it)
                (value,) = struct.unpack_from(order + "I", tiff, ifd + 2 + 12 * i + 8)
            else:
                return 1
            return value if 1 <= value <= 8 else 1
    return 1
