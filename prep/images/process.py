"""Turn the bytes of one downloaded image into a resized RGB JPEG, or a reason to skip it.

The content decides, never the file name or the server's MIME type: the bytes are sniffed,
their header is checked for size before any pixel is decoded, JPEGs are decoded straight to a
reduced size in the DCT domain (libjpeg-turbo scaling via simplejpeg, or PIL draft mode), and
only the reduced image is resampled, with PIL's antialiased bilinear filter (`resize`). Every
failure maps to one skip reason.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import simplejpeg
from PIL import Image, ImageOps

from babylm.prep.errors import ConfigError
from babylm.prep.errors import RowSkip as ImageSkip
from babylm.prep.images.exif import jpeg_orientation
from babylm.prep.images.resize import resize_array
from babylm.shards.images import MAX_IMAGE_PIXELS

# Magic bytes of the formats we keep. Anything else (HTML error pages, SVG, JSON, ...) is
# `not_an_image`.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "png"),
    (0, b"GIF87a", "gif"),
    (0, b"GIF89a", "gif"),
    (0, b"BM", "bmp"),
    (0, b"II*\x00", "tiff"),
    (0, b"MM\x00*", "tiff"),
)

RESIZE_MODES = ("exact", "shorter")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
# The JPEG encoder's chroma subsampling; 4:2:0 is also what PIL uses at these qualities.
SUBSAMPLING = "420"


@dataclass(frozen=True)
class ImagePolicy:
    """How every image is turned into a training sample; recorded in the manifest params."""

    size: int = 224
    resize: str = "exact"
    quality: int = 95
    min_size: int = 10
    # PIL's own default bomb threshold (about 89.5 megapixels); the loader decodes under it too.
    max_pixels: int = MAX_IMAGE_PIXELS

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ConfigError(f"--resize {self.resize}: choose one of {', '.join(RESIZE_MODES)}")
        if self.size < 8:
            raise ConfigError(f"--image-size must be at least 8, got {self.size}")
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"--quality must be between 1 and 100, got {self.quality}")
        if self.min_size < 1 or self.max_pixels < 1:
            raise ConfigError(
                f"--min-size and --max-pixels must be at least 1, got {self.min_size}, {self.max_pixels}"
            )

    @property
    def max_file_bytes(self) -> int:
        """The largest image file read: 8 bytes a pixel (16-bit RGBA, uncompressed) at
        `max_pixels`, plus 1 MiB of headers and metadata. Derived from `max_pixels`, so the
        manifest's params already record it; checked from the file's size before reading."""
        return 8 * self.max_pixels + (1 << 20)

    def to_params(self) -> dict[str, Any]:
        """The policy plus the fixed choices, as recorded in the manifest."""
        d = asdict(self)
        d.update(
            resample="bilinear (antialiased, as PIL)",
            exif_transpose=True,
            jpeg_draft=True,
            alpha="composited on white",
            high_bit_depth="scaled to 8 bits",
            animation="first frame",
            subsampling="4:2:0",
            formats=sorted(set(k for _, _, k in _MAGIC) | {"webp"}),
        )
        return d


@dataclass
class ProcessedImage:
    """The encoded result and the facts about the original that go into `{key}.json`."""

    jpeg: bytes
    format: str
    width: int
    height: int
    orientation: int = 1


def sniff(data: bytes) -> str | None:
    """The image format named by the first bytes of `data`, or None if it is not one we keep."""
    for offset, magic, kind in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def target_size(width: int, height: int, policy: ImagePolicy) -> tuple[int, int]:
    """Output (width, height): `exact` is size x size; `shorter` keeps the aspect ratio."""
    if policy.resize == "exact":
        return policy.size, policy.size
    if width <= height:
        return policy.size, max(1, round(height * policy.size / width))
    return max(1, round(width * policy.size / height)), policy.size


def _check_size(width: int, height: int, policy: ImagePolicy) -> None:
    if width * height > policy.max_pixels:
        raise ImageSkip("too_large", f"{width}x{height} exceeds {policy.max_pixels} pixels")
    if min(width, height) < policy.min_size:
        raise ImageSkip("too_small", f"{width}x{height} below {policy.min_size} px")


def _exif_orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:  # a broken EXIF block must not cost the image
        return 1


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode to RGB: alpha over white, 16/32-bit and float scaled down, CMYK converted."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(im).astype(np.float64)
        if mode == "F":
            peak = 1.0 if arr.size and np.nanmax(arr) <= 1.0 else 255.0
        elif mode == "I":
            peak = 65535.0 if arr.size and arr.max() > 255 else 255.0
        else:
            peak = 65535.0
        gray = np.clip(np.nan_to_num(arr) * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    return im.convert("RGB")


def _resize_encode(arr: np.ndarray, policy: ImagePolicy) -> bytes:
    arr = resize_array(arr, target_size(arr.shape[1], arr.shape[0], policy))
    return simplejpeg.encode_jpeg(
        np.ascontiguousarray(arr), quality=policy.quality, colorspace="RGB", colorsubsampling=SUBSAMPLING
    )


def _decode_jpeg_fast(data: bytes, policy: ImagePolicy) -> np.ndarray | None:
    """Scaled decode with libjpeg-turbo; None when the file needs PIL (CMYK, warnings)."""
    try:
        # Both sides >= size keeps enough pixels for `exact` and for `shorter` alike, and the
        # condition is symmetric, so a later EXIF rotation cannot break it.
        return simplejpeg.decode_jpeg(data, "RGB", min_height=policy.size, min_width=policy.size)
    except ValueError:
        # strict mode: truncated data and recoverable warnings land here; PIL decides.
        return None


def _jpeg_fast_path(data: bytes, policy: ImagePolicy) -> ProcessedImage | None:
    """JPEGs in YCbCr/gray/RGB, from the header alone and a DCT-scaled decode; None = use PIL."""
    try:
        height, width, colorspace, _sub = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    if colorspace not in ("Gray", "YCbCr", "RGB"):
        return None
    _check_size(width, height, policy)
    decoded = _decode_jpeg_fast(data, policy)
    if decoded is None:
        return None
    orientation = jpeg_orientation(data)
    if orientation != 1:
        decoded = np.asarray(_apply_orientation(Image.fromarray(decoded, "RGB"), orientation))
    jpeg = _resize_encode(decoded, policy)
    return ProcessedImage(jpeg=jpeg, format="jpeg", width=width, height=height, orientation=orientation)


def _pil_path(data: bytes, kind: str, policy: ImagePolicy) -> ProcessedImage:
    """Every other image: PIL decodes (JPEG in draft mode), orients and converts."""
    im = Image.open(io.BytesIO(data))
    width, height = im.size
    _check_size(width, height, policy)
    orientation = _exif_orientation(im)
    if kind == "jpeg":
        im.draft("RGB", (policy.size, policy.size))
    elif getattr(im, "n_frames", 1) > 1:
        im.seek(0)
    im.load()
    decoded: Image.Image = im
    if orientation != 1:
        decoded = _apply_orientation(decoded, orientation)
    jpeg = _resize_encode(np.asarray(_to_rgb(decoded)), policy)
    return ProcessedImage(jpeg=jpeg, format=kind, width=width, height=height, orientation=orientation)


def process_image(data: bytes, policy: ImagePolicy) -> ProcessedImage:
    """Decode, orient, convert to RGB, resize and re-encode one image; raise ImageSkip if unusable."""
    if not data:
        raise ImageSkip("empty_file", "0 bytes")
    if len(data) > policy.max_file_bytes:
        raise ImageSkip("too_large", f"{len(data)} bytes, more than {policy.max_file_bytes}")
    kind = sniff(data)
    if kind is None:
        # Never quote the bytes: a row may name a file that is not meant to be read (a secret).
        raise ImageSkip("not_an_image", f"not a known image format ({len(data)} bytes)")
    # PIL's own bomb guard runs inside Image.open; keep it at least as loose as ours, and turn
    # its warning into an error so that it can only ever mean `too_large`.
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < policy.max_pixels:
        Image.MAX_IMAGE_PIXELS = policy.max_pixels
    try:
        done = _jpeg_fast_path(data, policy) if kind == "jpeg" else None
        if done is not None:
            return done
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _pil_path(data, kind, policy)
    except ImageSkip:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageSkip("too_large", str(e)) from e
    except Exception as e:  # any decoder failure of a broken file is a skip, not a crash
        # Drop object addresses ("<_io.BytesIO object at 0x7f...>") so reruns write the same details.
        raise ImageSkip("decode_error", _ADDRESS.sub("", f"{type(e).__name__}: {e}")) from e


_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _apply_orientation(im: Image.Image, orientation: int) -> Image.Image:
    """The EXIF orientation transform (same table as PIL's ImageOps.exif_transpose)."""
    method = _TRANSPOSE.get(orientation)
    return im.transpose(method) if method is not None else im


def naive_process(data: bytes, policy: ImagePolicy) -> bytes:
    """The straightforward path (full decode, convert, resize, PIL encode); the benchmark baseline."""
    im = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    im = im.resize(target_size(im.width, im.height, policy), Image.BILINEAR)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=policy.quality)
    return out.getvalue()
