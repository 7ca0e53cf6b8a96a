"""One test per kind of image input: broken bytes are skipped with their reason, unusual ones kept."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from babylm.prep.images.exif import jpeg_orientation
from babylm.prep.images.process import (
    ImagePolicy,
    ImageSkip,
    _decode_jpeg_fast,
    process_image,
    sniff,
)
from babylm.prep.images.resize import resize_array
from babylm.prep.sources.captions import clean_cc3m_caption, clean_ln_caption
from tests.prep.raw_fixtures import bad_image_bytes, exif_jpeg, jpeg_bytes, photo, png_claiming_size

POLICY = ImagePolicy()
BAD = bad_image_bytes()


def decoded(jpeg: bytes) -> np.ndarray:
    im = Image.open(io.BytesIO(jpeg))
    assert im.format == "JPEG" and im.mode == "RGB"
    return np.asarray(im)


def skip_reason(data: bytes, policy: ImagePolicy = POLICY) -> str:
    with pytest.raises(ImageSkip) as e:
        process_image(data, policy)
    return e.value.reason


def test_zero_byte_file_is_empty_file():
    assert skip_reason(BAD["zero_byte"]) == "empty_file"


def test_truncated_jpeg_is_decode_error():
    assert skip_reason(BAD["truncated_jpeg"]) == "decode_error"


def test_corrupt_jpeg_is_decode_error_with_a_stable_detail():
    with pytest.raises(ImageSkip) as e:
        process_image(BAD["corrupt_jpeg"], POLICY)
    assert e.value.reason == "decode_error"
    assert "0x" not in e.value.detail  # no object address: reruns give the same skipped.jsonl


def test_html_behind_a_jpeg_name_is_not_an_image():
    assert skip_reason(BAD["html"]) == "not_an_image"


@pytest.mark.parametrize("kind,fmt", [("png", "png"), ("gif", "gif"), ("webp", "webp"), ("bmp", "bmp")])
def test_other_formats_are_sniffed_and_kept(kind, fmt):
    assert sniff(BAD[kind]) == fmt
    out = process_image(BAD[kind], POLICY)
    assert out.format == fmt
    assert decoded(out.jpeg).shape == (224, 224, 3)


def test_sniff_ignores_names_and_knows_magic_bytes():
    assert sniff(jpeg_bytes()) == "jpeg"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert sniff(b"<html>") is None and sniff(b"") is None and sniff(b"%PDF-1.4") is None


def test_cmyk_jpeg_is_converted_to_rgb():
    out = process_image(BAD["cmyk_jpeg"], POLICY)
    ref = process_image(BAD["png"], POLICY)  # the same photo, stored as RGB
    diff = np.abs(decoded(out.jpeg).astype(int) - decoded(ref.jpeg).astype(int)).mean()
    assert diff < 12


def test_grayscale_jpeg_becomes_three_equal_channels():
    arr = decoded(process_image(BAD["gray_jpeg"], POLICY).jpeg).astype(int)
    assert np.abs(arr[..., 0] - arr[..., 2]).max() <= 3


def test_palette_png_is_converted():
    assert decoded(process_image(BAD["palette_png"], POLICY).jpeg).std() > 20


def test_rgba_is_composited_on_white():
    arr = decoded(process_image(BAD["rgba_png"], POLICY).jpeg).astype(int)
    assert (arr[:, :100] > 240).all()  # transparent half -> white
    assert abs(arr[:, 130:, 0].mean() - 200) < 6 and arr[:, 130:, 1].mean() < 10  # opaque red half


def test_16_bit_image_is_scaled_not_clipped():
    arr = decoded(process_image(BAD["i16_png"], POLICY).jpeg)
    assert abs(arr.mean() - 128) < 3  # 32896/65535 of full scale; a naive convert would clip to 255


def test_exif_orientation_is_applied():
    # Stored 200x100, left red / right blue; orientation 6 = rotate 90 degrees clockwise to show.
    out = process_image(exif_jpeg(6), ImagePolicy(resize="shorter", size=50))
    assert out.orientation == 6 and (out.width, out.height) == (200, 100)
    arr = decoded(out.jpeg).astype(int)
    assert arr.shape[:2] == (100, 50)
    assert arr[:40, :, 0].mean() > 200 and arr[:40, :, 2].mean() < 50  # top is red
    assert arr[60:, :, 2].mean() > 200 and arr[60:, :, 0].mean() < 50  # bottom is blue
    assert POLICY.to_params()["exif_transpose"] is True


def test_decompression_bomb_header_is_too_large_before_decoding():
    assert skip_reason(BAD["bomb_png"]) == "too_large"
    # below PIL's own threshold, our --max-pixels guard decides
    assert skip_reason(png_claiming_size(5000, 5000), ImagePolicy(max_pixels=1_000_000)) == "too_large"


def test_tiny_image_is_too_small():
    assert skip_reason(BAD["tiny_jpeg"]) == "too_small"
    assert process_image(BAD["tiny_jpeg"], ImagePolicy(min_size=2)).width == 6


def test_exact_and_shorter_resize():
    data = jpeg_bytes(2, (400, 300))
    assert decoded(process_image(data, ImagePolicy(resize="exact")).jpeg).shape == (224, 224, 3)
    assert decoded(process_image(data, ImagePolicy(resize="shorter", size=150)).jpeg).shape == (150, 200, 3)


def test_jpeg_is_decoded_at_reduced_dct_scale():
    data = jpeg_bytes(0, (800, 600))
    small = _decode_jpeg_fast(data, POLICY)
    assert small is not None and small.shape == (225, 300, 3)  # 3/8 scale: smallest with both sides >= 224
    out = decoded(process_image(data, POLICY).jpeg)
    naive = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((224, 224), Image.BILINEAR))
    assert np.abs(out.astype(int) - naive.astype(int)).mean() < 8


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_parser_agrees_with_pil(orientation):
    data = exif_jpeg(orientation)
    assert jpeg_orientation(data) == Image.open(io.BytesIO(data)).getexif().get(0x0112) == orientation
    out = decoded(process_image(data, ImagePolicy(resize="shorter", size=50)).jpeg).astype(int)
    ref = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    ref = np.asarray(ref.resize(out.shape[1::-1], Image.BILINEAR)).astype(int)
    assert np.abs(out - ref).mean() < 4  # same orientation as PIL's exif_transpose


def test_orientation_parser_survives_missing_or_broken_exif():
    assert jpeg_orientation(jpeg_bytes()) == 1
    broken = exif_jpeg(6)
    i = broken.index(b"Exif")
    assert jpeg_orientation(broken[: i + 12]) == 1  # cut inside the EXIF block
    assert jpeg_orientation(b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00XX") == 1


def test_resize_matches_pil_bilinear():
    arr = np.asarray(photo(1, (333, 250)))
    ours = resize_array(arr, (224, 224))
    pil = np.asarray(Image.fromarray(arr).resize((224, 224), Image.BILINEAR))
    assert ours.shape == (224, 224, 3) and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - pil.astype(int)).max() <= 2
    up = resize_array(arr[:20, :30], (60, 40))  # small images are scaled up
    assert up.shape == (40, 60, 3)


def test_quality_option_changes_the_encoding():
    data = jpeg_bytes(3, (300, 200))
    assert len(process_image(data, ImagePolicy(quality=30)).jpeg) < len(process_image(data, POLICY).jpeg)


def test_caption_cleaning_rules():
    cap = "where 's the best place to show off your nails ? right in front of the castle , of course !"
    assert (
        clean_cc3m_caption(cap)
        == "where 's the best place to show off your nails? right in front of the castle, of course!"
    )
    assert clean_cc3m_caption(" author : a life ; ok . ") == "author: a life; ok."
    assert clean_ln_caption("In\u00a0this  image\n there\tare cows ") == "In this image there are cows"
