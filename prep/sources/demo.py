"""A small demo dataset (`babylm-prep demo-data`) in the exact raw layouts of the real ones.

The images are learnable scenes of coloured shapes whose captions describe them ("a small red
circle above a blue square ."), so a tiny model trained for minutes can learn to use the picture.
Everything is generated from a seed; nothing is downloaded.
"""

from __future__ import annotations

import io
import json
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from babylm.prep.errors import ConfigError
from babylm.shards.progress import progress

COLORS = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (40, 70, 220),
    "yellow": (240, 210, 20),
    "purple": (140, 40, 170),
    "orange": (250, 130, 10),
}
SHAPES = ("circle", "square", "triangle")
RELATIONS = {"above": (0, -1), "below": (0, 1), "left of": (-1, 0), "right of": (1, 0)}
BACKGROUNDS = ((245, 245, 240), (225, 235, 245), (240, 230, 215))

TEXT_SOURCES = ("bnc_spoken", "childes", "gutenberg", "open_subtitles", "simple_wiki", "switchboard")
_SUBJECTS = (
    "the child",
    "mommy",
    "the dog",
    "a little bird",
    "my friend",
    "the teacher",
    "daddy",
    "the baby",
)
_VERBS = ("sees", "draws", "likes", "finds", "points at", "picks up", "paints", "wants")
_OBJECTS = [f"the {c} {s}" for c in COLORS for s in SHAPES] + ["a ball", "the book", "some milk"]


@dataclass
class Scene:
    """Two shapes and the relation between them; the caption is a function of the scene."""

    first: tuple[str, str, str]  # size, colour, shape
    relation: str
    second: tuple[str, str, str]

    def caption(self) -> str:
        a, b = (" ".join(x) for x in (self.first, self.second))
        return f"a {a} {self.relation} a {b} ."

    def narrative(self) -> str:
        a, b = (" ".join(x) for x in (self.first, self.second))
        # Localized-Narratives style: spoken, capitalised, with a non-breaking space to clean up.
        return f"In this image we can see a {a}.\u00a0It is {self.relation}  a {b}. The background is plain."


def random_scene(rng: random.Random) -> Scene:
    def shape() -> tuple[str, str, str]:
        return (rng.choice(("small", "large")), rng.choice(list(COLORS)), rng.choice(SHAPES))

    first, second = shape(), shape()
    while second[1:] == first[1:]:
        second = shape()
    return Scene(first, rng.choice(list(RELATIONS)), second)


def draw_scene(scene: Scene, rng: random.Random, width: int, height: int) -> Image.Image:
    """Render a scene: the first shape sits on the `relation` side of the second."""
    img = Image.new("RGB", (width, height), rng.choice(BACKGROUNDS))
    draw = ImageDraw.Draw(img)
    dx, dy = RELATIONS[scene.relation]
    cx, cy = width / 2, height / 2
    offset = 0.25
    centers = [
        (cx + dx * offset * width, cy + dy * offset * height),
        (cx - dx * offset * width, cy - dy * offset * height),
    ]
    for (size, color, kind), (x, y) in zip((scene.first, scene.second), centers, strict=True):
        r = min(width, height) * (0.16 if size == "large" else 0.08) * rng.uniform(0.9, 1.1)
        x += rng.uniform(-0.04, 0.04) * width
        y += rng.uniform(-0.04, 0.04) * height
        box = [x - r, y - r, x + r, y + r]
        fill = COLORS[color]
        if kind == "circle":
            draw.ellipse(box, fill=fill)
        elif kind == "square":
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=fill)
    return img


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _scene_image(rng: random.Random) -> tuple[Scene, bytes]:
    scene = random_scene(rng)
    # Web-like sizes and aspect ratios, so prep's resize has real work to do.
    w, h = rng.choice(((320, 240), (300, 300), (400, 300), (240, 320), (360, 270)))
    return scene, _jpeg(draw_scene(scene, rng, w, h))


def write_cc3m(root: Path, split: str, rows: int, rng: random.Random, broken: bool = True) -> int:
    """`Conceptual-3M/` for one split: caption TSV, 6-column download report, extension-less files.

    With `broken`, a few rows are the kinds of failures real downloads have: 404s, an HTML page
    saved as an image, a truncated JPEG, a PNG behind a JPEG MIME type.
    """
    base = root / "Conceptual-3M"
    folder = base / split
    folder.mkdir(parents=True, exist_ok=True)
    tsv_name = "Train_GCC-training.tsv" if split == "training" else "Validation_GCC-1.1.0-Validation.tsv"
    captions, report = [], []
    for row in range(rows):
        scene, data = _scene_image(rng)
        url = f"http://images.example.org/{split}/{row:06d}/{scene.first[2]}.jpg"
        captions.append(f"{scene.caption()}\t{url}\n")
        name = f"{row}_{zlib.crc32(url.encode('utf-8')) & 0xFFFFFFFF}"
        mime = "image/jpeg"
        kind = row % 97 if broken else -1
        if kind == 13:  # failed download: empty file, mimetype and size
            report.append(f"\t{split}\t\t\t404\t{url}\n")
            continue
        if kind == 29:
            data, mime = b"<!DOCTYPE html><html><body>Image not found</body></html>", "text/html"
        elif kind == 41:
            data = data[: len(data) // 3]
        elif kind == 53:
            buf = io.BytesIO()
            Image.open(io.BytesIO(data)).save(buf, "PNG")
            data = buf.getvalue()
        (folder / name).write_bytes(data)
        report.append(f"{split}/{name}\t{split}\t{mime}\t{float(len(data))}\t200\t{url}\n")
    (base / tsv_name).write_text("".join(captions), encoding="utf-8")
    (base / f"downloaded_{split}_report.tsv").write_text("".join(report), encoding="utf-8")
    return rows


def write_localnarr(root: Path, images: int, rng: random.Random) -> int:
    """`LocalNarratives/LocalNarratives/` with `all_anno/*.json`, `MSCOCO/` and `OpenImages/`."""
    base = root / "LocalNarratives" / "LocalNarratives"
    for sub in ("all_anno", "MSCOCO", "OpenImages"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for i in range(images):
        scene, data = _scene_image(rng)
        if i % 2 == 0:
            prefix, dataset_id, image_id = "mscoco", "mscoco_train2017", str(100000 + i)
            (base / "MSCOCO" / f"{int(image_id):012d}.jpg").write_bytes(data)
        else:
            prefix, dataset_id, image_id = "open_images", "open_images_train", f"{rng.getrandbits(64):016x}"
            (base / "OpenImages" / f"{image_id}.jpg").write_bytes(data)
        anno = {
            "dataset_id": dataset_id,
            "image_id": image_id,
            "annotator_id": rng.randint(1, 150),
            "caption": scene.narrative(),
            "timed_caption": [{"utterance": "In this", "start_time": 0.0, "end_time": 0.4}],
            "traces": [[{"x": 0.2086, "y": -0.0533, "t": 0.022}]],
        }
        (base / "all_anno" / f"{prefix}_{i:08d}.json").write_text(json.dumps(anno), encoding="utf-8")
    return images


def _text_line(source: str, rng: random.Random) -> str:
    sentence = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
    if source == "simple_wiki" and rng.random() < 0.3:
        # Plurals and comparatives of the caption words: Unigram training keeps a piece only if it
        # occurs in two different words, so this lets the tokenizer learn the caption words whole.
        colors = rng.sample(list(COLORS), 3)
        shapes = rng.sample(list(SHAPES), 2)
        return (
            f"The painter mixed {colors[0]}s, {colors[1]}s and {colors[2]}s; the {shapes[0]}s were "
            f"{rng.choice(('smaller', 'larger'))} than the {shapes[1]}s, {rng.choice(('aboveground', 'belowground'))}, "
            f"on the {rng.choice(('lefthand', 'righthand'))} side, often."
        )
    if source in ("simple_wiki", "gutenberg") and rng.random() < 0.5:
        # Scene descriptions in the text corpus too, so the tokenizer learns the caption words.
        scene = random_scene(rng)
        return f"The {' '.join(scene.first)} is {scene.relation} the {' '.join(scene.second)}."
    if source == "switchboard":
        return f"{rng.choice('AB')}:\t{sentence.capitalize()}, uh, you know."
    if source == "childes":
        return f"*CHI:\t{sentence} ."
    if rng.random() < 0.05:
        return ""  # blank lines exist in the real files
    return sentence.capitalize() + rng.choice((".", "!", "?"))


def write_text(root: Path, lines_per_source: int, rng: random.Random) -> int:
    """`babylm_vis_text_2024/*.train`: one example per line, as in the 2024 release."""
    folder = root / "babylm_vis_text_2024"
    folder.mkdir(parents=True, exist_ok=True)
    for source in TEXT_SOURCES:
        lines = [_text_line(source, rng) for _ in range(lines_per_source)]
        (folder / f"{source}.train").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines_per_source * len(TEXT_SOURCES)


@dataclass(frozen=True)
class DemoDataConfig:
    """One `babylm-prep demo-data` run; raw data goes to `out/datasets/`."""

    out: Path
    cc3m_rows: int = 1500  # CC-3M training rows (validation gets a tenth)
    ln_images: int = 300  # Localized Narratives annotations (half COCO, half Open Images)
    text_lines: int = 2000  # lines per text source file
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        for name in ("cc3m_rows", "ln_images", "text_lines"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 0, got {getattr(self, name)}")


def run_demo_data(cfg: DemoDataConfig) -> Path:
    """Write the demo dataset of `cfg`; returns the raw-data folder."""
    return write_demo_data(cfg.out, cfg.cc3m_rows, cfg.ln_images, cfg.text_lines, cfg.seed)


def write_demo_data(out: Path, cc3m_rows: int, ln_images: int, text_lines: int, seed: int) -> Path:
    """Write the whole demo dataset under `out/datasets/` and return that folder."""
    root = Path(out) / "datasets"
    rng = random.Random(seed)
    with progress(4, "demo data", "part") as bar:
        write_cc3m(root, "training", cc3m_rows, rng)
        bar.update()
        write_cc3m(root, "validation", max(20, cc3m_rows // 10), rng)
        bar.update()
        write_localnarr(root, ln_images, rng)
        bar.update()
        write_text(root, text_lines, rng)
        bar.update()
    return root
