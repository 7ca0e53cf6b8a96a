import io
import json
import zlib

import numpy as np
from click.testing import CliRunner
from PIL import Image

from babylm.prep.cli import main as prep_main
from babylm.prep.sources.demo import COLORS, random_scene, write_demo_data


def test_demo_data_has_the_raw_layouts(tmp_path):
    root = write_demo_data(tmp_path, cc3m_rows=120, ln_images=10, text_lines=30, seed=1)
    cc = root / "Conceptual-3M"
    captions = (cc / "Train_GCC-training.tsv").read_text().splitlines()
    report = (cc / "downloaded_training_report.tsv").read_text().splitlines()
    assert len(captions) == len(report) == 120
    for i, (cap_line, rep_line) in enumerate(zip(captions, report, strict=True)):
        caption, url = cap_line.split("\t")
        file, folder, mime, size, status, rep_url = rep_line.split("\t")
        assert rep_url == url and folder == "training"
        if status == "404":
            assert file == mime == size == ""
            continue
        assert file == f"training/{i}_{zlib.crc32(url.encode()) & 0xFFFFFFFF}"
        assert (cc / file).stat().st_size == int(float(size))
    statuses = [r.split("\t")[4] for r in report]
    assert "404" in statuses  # failed downloads are part of the demo
    assert any(r.split("\t")[2] == "text/html" for r in report)
    ln = root / "LocalNarratives/LocalNarratives"
    annos = sorted((ln / "all_anno").glob("*.json"))
    assert len(annos) == 10
    first = json.loads(annos[0].read_text())
    assert (ln / "MSCOCO" / f"{int(first['image_id']):012d}.jpg").exists()
    assert {"dataset_id", "image_id", "annotator_id", "caption"} <= set(first)
    texts = sorted(p.name for p in (root / "babylm_vis_text_2024").iterdir())
    assert texts == [
        f"{s}.train"
        for s in ("bnc_spoken", "childes", "gutenberg", "open_subtitles", "simple_wiki", "switchboard")
    ]


def test_caption_describes_the_picture(tmp_path):
    root = write_demo_data(tmp_path, cc3m_rows=5, ln_images=0, text_lines=1, seed=3)
    cc = root / "Conceptual-3M"
    caption = (cc / "Train_GCC-training.tsv").read_text().splitlines()[0].split("\t")[0]
    file = (cc / "downloaded_training_report.tsv").read_text().splitlines()[0].split("\t")[0]
    img = Image.open(io.BytesIO((cc / file).read_bytes())).convert("RGB")
    colors_in_caption = [c for c in COLORS if f" {c} " in caption]
    pixels = {tuple(p) for p in np.asarray(img).reshape(-1, 3).tolist()}
    for c in colors_in_caption:
        assert any(sum(abs(a - b) for a, b in zip(p, COLORS[c], strict=True)) < 30 for p in pixels), c


def test_scenes_are_seeded():
    import random

    a = [random_scene(random.Random(7)).caption() for _ in range(3)]
    b = [random_scene(random.Random(7)).caption() for _ in range(3)]
    assert a == b and a[0].endswith(" .")


def test_cli(tmp_path):
    result = CliRunner().invoke(
        prep_main,
        ["demo-data", "--out", str(tmp_path), "--cc3m-rows", "30", "--ln-images", "4", "--text-lines", "5"],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "datasets/Conceptual-3M/Validation_GCC-1.1.0-Validation.tsv").exists()
