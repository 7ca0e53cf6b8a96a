"""Per-sample decoding and batch collation, run inside the DataLoader workers.

Only the members a batch needs are decoded: the caption (`.txt`, UTF-8), the image (simplejpeg,
the fastest JPEG decoder for Python, with PIL for anything else) or the `.npy` feature (through
`babylm.shards.read_npy`, which refuses pickles); `.json` metadata never, and with
`images=False` not the image either. Images are decoded straight into the batch's buffer and
leave the worker as uint8 (B, 3, H, W); normalization to the encoder's mean/std happens on the
device.

Why not webdataset's `Decoder` / `wds.decode`: it cannot decode into a preallocated batch buffer
(so every image would be copied once more), and its per-sample handler chain (a regex per
member) cost ~20 us per sample here, 4-5% of a 224x224 JPEG decode -- the benchmark target
leaves 20% for everything that is not the decode. Its failure mode (drop or raise) also does not
fit: an undecodable sample must be left out *and counted* against its shard.

Captions are tokenized per batch: padded to the longest, truncated at `max_caption_tokens`,
optionally prefixed with `<image> ` (Flamingo's media token); the labels follow the caption-label
rule that `babylm.train.losses.caption_inputs` owns (applied here, in the workers, where it
costs the consumer nothing): -100 on padding, or with `caption_loss="original"` the padding scored
and no attention mask, as the original.

A batch leaves the worker as a `LoaderBatch` (`contract.py`): the model inputs apart from the keys,
captions and word count.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import get_worker_info

from babylm.shards import read_npy
from babylm.shards.errors import CorruptSample
from babylm.shards.images import check_pixels, open_image
from babylm.train.data.buffers import worker_buffer
from babylm.train.data.contract import LoaderBatch
from babylm.train.data.spec import LoaderSpec
from babylm.train.losses import caption_inputs, scores_padding

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


def decode_image(data: bytes) -> np.ndarray:
    """RGB uint8 (H, W, 3) array from JPEG (simplejpeg) or any PIL-readable bytes."""
    import simplejpeg

    try:
        h, w = simplejpeg.decode_jpeg_header(data)[:2]
    except ValueError:  # not a JPEG simplejpeg reads: PIL, under the same pixel limit
        with open_image(data) as img:
            return np.asarray(img.convert("RGB"))
    check_pixels(w, h)
    return simplejpeg.decode_jpeg(data, colorspace="RGB")


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    """Square `size` crop from the center; images smaller than `size` are upscaled first."""
    h, w = img.shape[:2]
    if h == size and w == size:
        return img
    if min(h, w) < size:
        from PIL import Image

        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        img = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))
        h, w = nh, nw
    top, left = (h - size) // 2, (w - size) // 2
    return img[top : top + size, left : left + size]


def decode_image_into(data: bytes, out: np.ndarray) -> None:
    """Decode an image into `out`, a (size, size, 3) uint8 slot of the batch buffer.

    A JPEG of exactly that size (what prep writes) is decoded in place, with no intermediate
    array; anything else is decoded, center-cropped and copied. Raises CorruptSample, also for
    an image over prep's pixel limit (a decompression bomb: never decoded).
    """
    import simplejpeg

    size = out.shape[0]
    try:
        try:
            h, w = simplejpeg.decode_jpeg_header(data)[:2]
        except ValueError:
            h = w = -1  # not a JPEG: PIL below
        if (h, w) == (size, size):
            simplejpeg.decode_jpeg(data, colorspace="RGB", buffer=out)
        else:
            out[...] = center_crop(decode_image(data), size)
    except Exception as e:  # noqa: BLE001 - any decoder failure means this one sample is unusable
        raise CorruptSample(f"cannot decode image: {type(e).__name__}: {e}") from e


def _new_buffer(shape: tuple[int, ...]) -> tuple[torch.Tensor, int]:
    """(uint8 tensor, ring slot or -1). In a DataLoader worker it is in shared memory (as torch's
    default_collate does), from the worker's recycled ring (`buffers.py`), so handing the batch
    to the main process copies nothing and allocates nothing."""
    if get_worker_info() is not None:
        return worker_buffer(shape)
    return torch.empty(shape, dtype=torch.uint8), -1


def load_tokenizer(tokenizer: Any) -> Any:
    """A tokenizer object, loading it with AutoTokenizer when given a path or name."""
    if tokenizer is None or not isinstance(tokenizer, (str, os.PathLike)):
        return tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer))


def tokenize_captions(
    tokenizer: Any,
    captions: Sequence[str],
    prefix: str | None,
    max_length: int,
    score_padding: bool,
) -> dict[str, torch.Tensor]:
    """input_ids / labels (/ attention_mask) of a caption batch, padded to the longest, with the
    labels of the caption-label rule (`caption_inputs`: `score_padding` or not). The settings are
    a `LoaderSpec`'s (`image_prefix`, `max_caption_tokens`, `caption_loss`), which has their defaults."""
    if not captions:
        empty = torch.zeros((0, 0), dtype=torch.long)
        return caption_inputs(empty, empty.clone(), score_padding)
    texts = [f"{prefix}{c}" for c in captions] if prefix else list(captions)
    enc = tokenizer(texts, padding="longest", truncation=True, max_length=max_length, return_tensors="pt")
    return caption_inputs(enc["input_ids"].long(), enc["attention_mask"].long(), score_padding)


class SampleCollate:
    """Turns the raw tar samples of one batch into the batch dict (`image_text` or `features`)."""

    def __init__(self, kind: str, tokenizer: Any, spec: LoaderSpec):
        """`spec` gives the caption and image settings (image_prefix, max_caption_tokens, images,
        image_size); `tokenizer` (object or folder) None means batches carry caption strings only."""
        if kind not in ("image_text", "features"):
            raise ValueError(f"SampleCollate handles image_text and features shards, not {kind!r}")
        self.kind = kind
        self.tokenizer = load_tokenizer(tokenizer)
        self.image_prefix = spec.image_prefix
        self.max_caption_tokens = spec.max_caption_tokens
        self.score_padding = scores_padding(spec.caption_loss)
        self.images = spec.images
        self.image_size = spec.image_size
        self.want_embeds = kind == "features" and spec.images
        # Set by the source when every shard has word counts: batches then carry `words`.
        self.count_words = False

    def _decode(self, raw: dict[str, Any], slot: np.ndarray | None) -> tuple[str, str, np.ndarray | None]:
        key = raw["__key__"]
        if "txt" not in raw:
            raise CorruptSample(f"{key}: no .txt caption member")
        try:
            caption = raw["txt"].decode("utf-8").strip()
        except UnicodeDecodeError as e:
            raise CorruptSample(f"{key}: .txt is not UTF-8: {e}") from e
        embeds = None
        if slot is not None:
            ext = next((e for e in IMAGE_EXTS if e in raw), None)
            if ext is None:
                raise CorruptSample(f"{key}: no image member")
            try:
                decode_image_into(raw[ext], slot)
            except CorruptSample as e:
                raise CorruptSample(f"{key}: .{ext}: {e}") from e
        elif self.want_embeds:
            if "npy" not in raw:
                raise CorruptSample(f"{key}: no .npy feature member")
            try:
                embeds = read_npy(raw["npy"])
            except Exception as e:  # noqa: BLE001 - any parse failure means this sample is unusable
                raise CorruptSample(f"{key}: cannot read .npy: {type(e).__name__}: {e}") from e
            if embeds.dtype.kind != "f" or embeds.ndim not in (1, 2) or not np.isfinite(embeds).all():
                raise CorruptSample(
                    f"{key}: .npy feature of shape {embeds.shape} dtype {embeds.dtype} is unusable"
                )
            embeds = embeds.astype(np.float32, copy=False)
        return key, caption, embeds

    @staticmethod
    def _words(raw: dict[str, Any]) -> int:
        """The caption's word count that prep put in the sample's `.json` member."""
        key = raw["__key__"]
        try:
            words = json.loads(raw["json"])["words"]
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptSample(
                f"{key}: .json has no readable 'words' count ({type(e).__name__}: {e})"
            ) from e
        if not isinstance(words, int) or isinstance(words, bool) or words < 0:
            raise CorruptSample(f"{key}: .json 'words' is {words!r}, not a count")
        return words

    def __call__(self, raws: list[dict[str, Any] | Exception]) -> tuple[LoaderBatch, list[tuple[int, str]]]:
        """(batch, [(position, reason)] of the samples left out as undecodable).

        `raws` holds parsed samples, or the exception that parsing a sample's bytes raised.
        """
        S = self.image_size
        pixels, slot = (
            _new_buffer((len(raws), S, S, 3)) if self.images and self.kind == "image_text" else (None, -1)
        )
        slots = pixels.numpy() if pixels is not None else None
        keys: list[str] = []
        captions: list[str] = []
        embeds: list[np.ndarray] = []
        bad: list[tuple[int, str]] = []
        words = 0
        for j, raw in enumerate(raws):
            try:
                if isinstance(raw, Exception):
                    raise raw
                # A good sample takes the next free slot, so the kept images stay contiguous.
                key, caption, emb = self._decode(raw, slots[len(keys)] if slots is not None else None)
                words += self._words(raw) if self.count_words else 0
            except ValueError as e:  # CorruptSample, bad tar header, bad UTF-8
                bad.append((j, str(e)))
                continue
            keys.append(key)
            captions.append(caption)
            if emb is not None:
                embeds.append(emb)
        out: dict[str, torch.Tensor] = {}
        if pixels is not None:
            # (B, 3, S, S) with channels-last strides: a view of the (B, S, S, 3) decode buffer.
            # The NCHW copy would cost a third of the decode time here; on the device it is free.
            out["pixel_values"] = pixels[: len(keys)].permute(0, 3, 1, 2)
        elif self.want_embeds:
            if len({e.shape for e in embeds}) > 1:
                raise ValueError(f"feature shapes differ within a batch: {sorted({e.shape for e in embeds})}")
            out["image_embeds"] = (
                torch.from_numpy(np.stack(embeds)) if embeds else torch.zeros((0, 768), dtype=torch.float32)
            )
        if self.tokenizer is not None:
            out.update(
                tokenize_captions(
                    self.tokenizer, captions, self.image_prefix, self.max_caption_tokens, self.score_padding
                )
            )
        # words: of the kept samples (a skipped sample is not seen)
        batch = LoaderBatch(out, keys, captions, words if self.count_words else None, slot=slot)
        return batch, bad
