"""Builders of raw dataset layouts for tests and demo data (nothing binary is checked in).

Images are real photographs shipped with scikit-image (cropped and resized; they load from the
package folder, no network) or generated with PIL. Layouts:

- `write_cc3m_downloader(root, rows, split)`: `Conceptual-3M/` with the caption TSV, the download
  report in the current 6-column layout (or the old 7-column one) and image files named
  `<split>/<row>_<crc32(url)>` without extension, as DownloadConceptualCaptions leaves them.
- `write_cc3m_img2dataset(folder, rows)`: `{shard:05d}.tar` + `.parquet` + `_stats.json`.
- `write_ln_anno(root, annotations)`: `LocalNarratives/LocalNarratives/all_anno/<prefix>_<uid>.json`
  + `MSCOCO/`, `OpenImages/`, `OpenImages_test/` images.
- `write_ln_jsonl(path, annotations)`: the official one-annotation-per-line release format.
- `write_features(folder, captions, dims, splits)`: captions JSON + (N, D) `.npy` arrays.
- `bad_image_bytes()`: one byte string per kind of broken or unusual image.
- `write_corpus(root, corpus, split)`: the files of a BabyLM text corpus (TRICKY lines unless given).
"""

from __future__ import annotations

import io
import json
import struct
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# Real CC-3M validation rows (caption TAB url), incl. non-ASCII ones; see shared/realdata/SOURCES.md.
REAL_CC3M_ROWS = [
    (
        "author : a life in photography -- in pictures",
        "https://i.pinimg.com/736x/66/01/6c/66016c3ba27c0e04f39e2bd81a934e3e--anita-ekberg-bob-hope.jpg",
    ),
    (
        "an angler fishes river on a snowy day .",
        "http://www.standard.net/image/2015/02/04/800x_a16-9_b0_q81_p1/winter-fly-fishing.jpg",
    ),
    (
        "the player staring intently at a computer screen .",
        "http://www.abc.net.au/news/image/9066492-3x2-700x467.jpg",
    ),
    (
        "globes : the green 3d person carrying in hands globe",
        "https://www.featurepics.com/StockImage/20090316/carrying-globe-stock-image-1115085.jpg",
    ),
    (
        "where 's the best place to show off your nails ? right in front of the castle , of course !",
        "https://i.pinimg.com/736x/27/d5/94/27d59424cd786be35f0fa2a4ee11d088--minnie-mouse-nail-art-mickey-mouse-manicure.jpg",
    ),
    (
        "young woman seated on the beach",
        "https://media.gettyimages.com/photos/young-woman-seated-on-the-beach-picture-id97545987?s=612x612",
    ),
    (
        "i ordered a cake for my fiancé 's 25th birthday .",
        "https://i.pinimg.com/736x/38/4e/4d/384e4dd36c0bf04c95b0a01b22cb2b19--th-birthday-birthdays.jpg",
    ),
    (
        "pupils celebrate raising £ 1,735.37 for organisation",
        "http://www.gazetteseries.co.uk/resources/images/6137763.jpg?display=1&htype=0&type=responsive-gallery",
    ),
]
# The official documentation's Localized Narratives sample line (truncated there).
REAL_LN_LINE = {
    "dataset_id": "mscoco_val2017",
    "image_id": "137576",
    "annotator_id": 93,
    "caption": "In this image there are group of cows standing and eating th...",
    "timed_caption": [{"utterance": "In this", "start_time": 0.0, "end_time": 0.4}],
    "traces": [[{"x": 0.2086, "y": -0.0533, "t": 0.022}]],
    "voice_recording": "coco_val/coco_val_137576_93.ogg",
}
# Open Images LN image ids (16 lowercase hex characters).
REAL_OPEN_IMAGES_IDS = ["0001eeaf4aed83f9", "0004886b7d043cfd", "000595fe6fee6369", "0007d6cf88afaa4a"]

_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def photo(index: int = 0, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A real RGB photograph (scikit-image's samples, cycled by `index`) resized to (w, h)."""
    import skimage.data

    arr = getattr(skimage.data, _PHOTOS[index % len(_PHOTOS)])()
    im = Image.fromarray(arr).convert("RGB")
    # Vary the crop with the index so photos differ even when the source repeats.
    dx, dy = (index * 17) % max(1, im.width // 4), (index * 11) % max(1, im.height // 4)
    return im.crop((dx, dy, im.width - dx // 2, im.height - dy // 2)).resize(size, Image.BILINEAR)


def encode(im: Image.Image, fmt: str = "JPEG", **kwargs: Any) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **kwargs)
    return out.getvalue()


def jpeg_bytes(index: int = 0, size: tuple[int, int] = (160, 120), quality: int = 90) -> bytes:
    return encode(photo(index, size), "JPEG", quality=quality)


def halves(size: tuple[int, int] = (200, 100)) -> Image.Image:
    """Left half red, right half blue: shows where a rotation or flip went."""
    w, h = size
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = (255, 0, 0)
    arr[:, w // 2 :] = (0, 0, 255)
    return Image.fromarray(arr)


def exif_jpeg(orientation: int, size: tuple[int, int] = (200, 100)) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(halves(size), "JPEG", quality=95, exif=exif.tobytes())


def png_claiming_size(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (a decompression bomb's header; tiny payload)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def bad_image_bytes() -> dict[str, bytes]:
    """One byte string per kind of broken or unusual input, keyed by a descriptive name."""
    good = jpeg_bytes(1, (160, 120))
    rgba = np.zeros((64, 96, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, 48:, 3] = 255  # left half fully transparent
    i16 = np.full((64, 96), 32896, np.uint16)  # mid gray in 16 bits
    return {
        "zero_byte": b"",
        "truncated_jpeg": good[: len(good) // 2],
        "corrupt_jpeg": good[:20] + bytes(range(256)) * 8,
        "html": b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>gone</body></html>\n",
        "png": encode(photo(2, (120, 90)), "PNG"),
        "gif": encode(photo(3, (120, 90)).convert("P", palette=Image.ADAPTIVE), "GIF"),
        "webp": encode(photo(0, (120, 90)), "WEBP", quality=80),
        "bmp": encode(photo(1, (96, 64)), "BMP"),
        "cmyk_jpeg": encode(photo(2, (120, 90)).convert("CMYK"), "JPEG", quality=90),
        "gray_jpeg": encode(photo(3, (120, 90)).convert("L"), "JPEG", quality=90),
        "palette_png": encode(photo(0, (120, 90)).convert("P", palette=Image.ADAPTIVE), "PNG"),
        "rgba_png": encode(Image.fromarray(rgba, "RGBA"), "PNG"),
        "i16_png": encode(Image.fromarray(i16), "PNG"),
        "exif_rotated_jpeg": exif_jpeg(6),
        "bomb_png": png_claiming_size(100_000, 100_000),
        "tiny_jpeg": jpeg_bytes(0, (6, 5)),
    }


def cc3m_file_name(split: str, row: int, url: str) -> str:
    """The downloader's file name: `<split>/<row>_<crc32(url)>` (no extension)."""
    return f"{split}/{row}_{zlib.crc32(url.encode('utf-8')) & 0xFFFFFFFF}"


@dataclass
class Cc3mRow:
    """One CC-3M row: image None = failed download; `on_disk=False` = listed but file missing."""

    caption: str
    url: str
    image: bytes | None = None
    mimetype: str = "image/jpeg"
    status: int = 200
    on_disk: bool = True


def write_cc3m_downloader(
    root: Path, rows: list[Cc3mRow], split: str = "training", old_layout: bool = False
) -> Path:
    """Write `root/Conceptual-3M` as the downloader leaves it; returns that folder."""
    from babylm.prep.sources.cc3m import SPLIT_FILES

    src = root / "Conceptual-3M"
    (src / split).mkdir(parents=True, exist_ok=True)
    cap_name, rep_name = SPLIT_FILES[split]
    captions, report = [], []
    for i, r in enumerate(rows):
        captions.append(f"{r.caption}\t{r.url}")
        if r.image is None:
            file = mime = size = ""
            status = str(r.status if r.status != 200 else 404)
        else:
            # The old downloader named files <split>/<crc32(url)>, the current one <split>/<row>_<crc32>.
            crc = zlib.crc32(r.url.encode("utf-8")) & 0xFFFFFFFF
            file = f"{split}/{crc}" if old_layout else cc3m_file_name(split, i, r.url)
            mime, size, status = r.mimetype, f"{float(len(r.image))}", str(r.status)
            if r.on_disk:
                (src / file).write_bytes(r.image)
        if old_layout:
            # pandas quoted the headers dict and doubled its quotes, as in the real old report.
            headers = "{'Content-Type': '%s', 'ETag': '\"\"abc\"\"'}" % (mime or "text/html")
            report.append("\t".join([r.url, split, status, mime, size, file, f'"{headers}"']))
        else:
            report.append("\t".join([file, split, mime, size, status, r.url]))
    (src / cap_name).write_text("\n".join(captions) + "\n", encoding="utf-8")
    (src / rep_name).write_text("\n".join(report) + "\n", encoding="utf-8")
    return src


def good_cc3m_rows(n: int, start: int = 0, size: tuple[int, int] = (96, 72)) -> list[Cc3mRow]:
    """`n` valid rows with real captions (made unique) and real photos."""
    out = []
    for i in range(start, start + n):
        cap, url = REAL_CC3M_ROWS[i % len(REAL_CC3M_ROWS)]
        out.append(Cc3mRow(f"{cap} {i}", f"{url}#{i}", jpeg_bytes(i, size)))
    return out


def write_cc3m_img2dataset(folder: Path, rows: list[Cc3mRow], per_shard: int = 4) -> Path:
    """Write an img2dataset output folder: tar members for successes, parquet rows for all."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    for shard in range(0, len(rows), per_shard):
        sid = shard // per_shard
        records = []
        with tarfile.open(folder / f"{sid:05d}.tar", "w") as tar:
            for j, r in enumerate(rows[shard : shard + per_shard]):
                key = f"{sid:05d}{j:04d}"
                ok = r.image is not None
                rec = {
                    "key": key,
                    "url": r.url,
                    "caption": r.caption,
                    "status": "success" if ok else "failed_to_download",
                    "error_message": None if ok else "HTTP Error 404: Not Found",
                }
                records.append(rec)
                if not ok:
                    continue
                meta = dict(rec, original_width=640, original_height=480)
                for ext, data in (
                    ("jpg", r.image),
                    ("txt", r.caption.encode()),
                    ("json", json.dumps(meta).encode()),
                ):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)  # type: ignore[arg-type]
                    tar.addfile(info, io.BytesIO(data))  # type: ignore[arg-type]
        pq.write_table(pa.Table.from_pylist(records), folder / f"{sid:05d}.parquet")
        ok_n = sum(r["status"] == "success" for r in records)
        stats = {"count": len(records), "successes": ok_n, "failed_to_download": len(records) - ok_n}
        (folder / f"{sid:05d}_stats.json").write_text(json.dumps(stats))
    return folder


@dataclass
class LnAnnotation:
    """One Localized Narrative; `image` None = the image file is not on disk."""

    prefix: str  # mscoco, open_images, open_images_test (or anything, to test unknown ones)
    uid: str
    image_id: str
    caption: str
    image: bytes | None = None
    annotator_id: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        dataset = {
            "mscoco": "mscoco_train2017",
            "open_images": "open_images_train_v6",
            "open_images_test": "open_images_test",
        }
        return {
            "dataset_id": dataset.get(self.prefix, self.prefix),
            "image_id": self.image_id,
            "annotator_id": self.annotator_id,
            "caption": self.caption,
            "timed_caption": [{"utterance": self.caption[:10], "start_time": 0.0, "end_time": 0.4}],
            "traces": [[{"x": 0.2, "y": 0.1, "t": 0.02}]],
            **self.extra,
        }


def ln_image_path(images: Path, prefix: str, image_id: str) -> Path:
    folder = {"mscoco": "MSCOCO", "open_images": "OpenImages", "open_images_test": "OpenImages_test"}[prefix]
    name = f"{int(image_id):012d}.jpg" if prefix == "mscoco" else f"{image_id}.jpg"
    return images / folder / name


def write_ln_images(images: Path, annotations: list[LnAnnotation]) -> None:
    for a in annotations:
        if a.image is not None and a.prefix in ("mscoco", "open_images", "open_images_test"):
            p = ln_image_path(images, a.prefix, a.image_id)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(a.image)


def write_ln_anno(root: Path, annotations: list[LnAnnotation], raw: dict[str, bytes] | None = None) -> Path:
    """Write `root/LocalNarratives/LocalNarratives` (all_anno + image folders); `raw` adds files
    with verbatim content (e.g. malformed JSON) under all_anno. Returns that folder."""
    src = root / "LocalNarratives" / "LocalNarratives"
    (src / "all_anno").mkdir(parents=True, exist_ok=True)
    for a in annotations:
        (src / "all_anno" / f"{a.prefix}_{a.uid}.json").write_text(json.dumps(a.record()))
    for name, data in (raw or {}).items():
        (src / "all_anno" / name).write_bytes(data)
    write_ln_images(src, annotations)
    return src


def write_ln_jsonl(
    path: Path, annotations: list[LnAnnotation], images: Path, raw_lines: list[str] = ()
) -> Path:
    """Write one official-format JSONL file (+ the images under `images`); `raw_lines` are appended verbatim."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(a.record()) for a in annotations] + list(raw_lines)
    path.write_text("\n".join(lines) + "\n")
    write_ln_images(images, annotations)
    return path


def write_features(
    folder: Path, captions: list[Any], dim: int = 768, splits: int = 2, seed: int = 0, name: str = "cc_3M"
) -> tuple[Path, list[Path], np.ndarray]:
    """`{name}_captions.json` + `{name}_dino_v2_states_{i}of{splits}.npy`; returns (captions, states, all rows)."""
    folder.mkdir(parents=True, exist_ok=True)
    feats = np.random.default_rng(seed).standard_normal((len(captions), dim)).astype(np.float32)
    cap_path = folder / f"{name}_captions.json"
    cap_path.write_text(json.dumps(captions))
    bounds = np.linspace(0, len(captions), splits + 1).astype(int)
    states = []
    for i in range(splits):
        p = folder / f"{name}_dino_v2_states_{i + 1}of{splits}.npy"
        np.save(p, feats[bounds[i] : bounds[i + 1]])
        states.append(p)
    return cap_path, states, feats


# Every case the reader must get right, spread over the files of a corpus.
TRICKY = {
    "aochildes": "*CHI:\tmore juice .\n\nyeah !\n   \n\tok\n",
    "bnc_spoken": "Hello   there, 12 cats!\r\nsecond line\r\n\r\nlast crlf line\r\n",
    "cbt": "no final newline here",
    "children_stories": "lone\rcarriage\rreturns\n",
    "gutenberg": "\ufeffa BOM starts this file .\nthen <image> and <PERSON> tokens .\n",
    "open_subtitles": "",
    "qed": "form\x0cfeed and line\u2028separator stay inside one line\n\x0b\n",
    "simple_wikipedia": "Ｆｕｌｌｗｉｄｔｈ ﬁ ligature — dashes “quotes” café\n" * 3,
    "switchboard": "A:\tyeah i think so , uh-huh .\nB:\tOkay, uh,\n",
    "wikipedia": "".join(f"line {i} of the last file about 3 little pigs .\n" for i in range(25)),
}


def write_corpus(
    root: Path, corpus: str, split: str = "train", contents: dict[str, str | bytes] | None = None
) -> Path:
    """Write every file of `corpus`/`split` under `root` (TRICKY text unless given); the folder."""
    from babylm.prep.text.corpus import CORPORA

    spec = CORPORA[corpus]
    folder = root / spec.folder(split)
    folder.mkdir(parents=True, exist_ok=True)
    for i, source in enumerate(spec.sources):
        data = (contents or {}).get(source, TRICKY.get(source, f"{source} says {i} things .\nand more\n"))
        (folder / f"{source}.{split}").write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return folder
