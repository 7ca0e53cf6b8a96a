"""`babylm-prep localnarr` in both layouts: image paths, cleaning, skips and their accounting."""

from __future__ import annotations

import json
from collections import Counter

from babylm.prep.sources.narratives import image_path, prefix_of_dataset
from babylm.shards import open_dataset, verify_dataset
from tests.prep.cli_helpers import read_samples, run_prep, skipped_lines
from tests.prep.raw_fixtures import (
    REAL_LN_LINE,
    REAL_OPEN_IMAGES_IDS,
    LnAnnotation,
    bad_image_bytes,
    jpeg_bytes,
    write_ln_anno,
    write_ln_jsonl,
)


def annotations() -> list[LnAnnotation]:
    ids = REAL_OPEN_IMAGES_IDS
    return [
        LnAnnotation(
            "mscoco",
            "00000000",
            "137576",
            "In this image there are\u00a0group of  cows .",
            jpeg_bytes(0, (120, 90)),
        ),
        LnAnnotation("mscoco", "00000001", "9", "A man\u00a0holds a  kite", jpeg_bytes(1, (90, 120))),
        LnAnnotation("open_images", "00096010", ids[0], "In this picture we can see a cat", jpeg_bytes(2)),
        LnAnnotation(
            "open_images",
            "00096011",
            ids[0],
            "Another narrative of the same image",
            jpeg_bytes(2),
            annotator_id=7,
        ),
        LnAnnotation("open_images_test", "00126010", ids[1], "A rocket on a launch pad", jpeg_bytes(3)),
        LnAnnotation("open_images", "00096012", ids[2], "An image that was never downloaded", None),
        LnAnnotation("open_images", "00096013", ids[3], " \u00a0 ", jpeg_bytes(0)),
        LnAnnotation(
            "open_images_test", "00126011", "ffffffffffffffff", "an html page", bad_image_bytes()["html"]
        ),
        LnAnnotation("flickr30k", "00000005", "1000092795", "A flickr image", jpeg_bytes(1)),
    ]


def test_anno_layout_accounting_and_image_paths(tmp_path):
    anns = annotations()
    raw = {
        "mscoco_00000099.json": b'{"image_id": "5", "caption": "cut off',
        "open_images_00000100.json": b"[1, 2]",
    }
    write_ln_anno(tmp_path, anns, raw=raw)
    out = tmp_path / "out"
    run_prep(
        "localnarr", "--root", str(tmp_path), "--out", str(out), "--samples-per-shard", "4", "--workers", "2"
    )
    m = open_dataset(out).manifest
    expected = Counter(missing_file=1, empty_caption=1, not_an_image=1, unknown_source=1, malformed_json=2)
    assert Counter(m.skipped) == expected
    assert m.num_samples + m.num_skipped == len(anns) + len(raw) == m.params["input_rows"]
    assert m.params["layout"] == "anno" and m.params["caption_cleaning"].startswith("ln:")
    samples = read_samples(out)
    assert set(samples) == {
        "ln-mscoco-00000000",
        "ln-mscoco-00000001",
        "ln-open_images-00096010",
        "ln-open_images-00096011",
        "ln-open_images_test-00126010",
    }
    s = samples["ln-mscoco-00000000"]
    assert s["txt"].decode() == "In this image there are group of cows ."
    meta = json.loads(s["json"])
    assert (
        meta["image"] == "MSCOCO/000000137576.jpg" and meta["annotation"] == "all_anno/mscoco_00000000.json"
    )
    assert meta["source"] == "localized_narratives" and meta["split"] == "mscoco_train2017"
    assert (meta["width"], meta["height"]) == (120, 90)
    assert (
        json.loads(samples["ln-open_images_test-00126010"]["json"])["image"]
        == f"OpenImages_test/{REAL_OPEN_IMAGES_IDS[1]}.jpg"
    )
    details = {s["key"]: s for s in skipped_lines(out)}
    assert details["ln-mscoco-00000099"]["reason"] == "malformed_json"
    assert details["ln-open_images-00096012"]["reason"] == "missing_file"
    assert not verify_dataset(open_dataset(out), deep=True)


def test_jsonl_layout_with_the_official_sample_line(tmp_path):
    images = tmp_path / "images"
    anns = annotations()[:5]
    real = dict(REAL_LN_LINE, caption="In this image there are group of cows standing and eating grass.")
    lines = [
        json.dumps(real),  # same key as annotations()[0] (mscoco 137576, annotator 93 vs 1): a new annotation
        "",  # blank lines are not rows
        '{"dataset_id": "mscoco_val2017", "image_id": "1", "caption": ',  # cut off
        json.dumps(anns[2].record()),  # the very same annotation again
        json.dumps(dict(anns[2].record(), annotator_id=99)),  # other annotator, same image and caption
        json.dumps(
            {"dataset_id": "flickr30k_train", "image_id": "1000092795", "annotator_id": 1, "caption": "a dog"}
        ),
        json.dumps(
            {"dataset_id": "mscoco_val2017", "image_id": "x1", "annotator_id": 1, "caption": "bad id"}
        ),
    ]
    path = write_ln_jsonl(tmp_path / "coco_val_localized_narratives.jsonl", anns, images, raw_lines=lines)
    out = tmp_path / "out"
    run_prep(
        "localnarr", "--layout", "jsonl", "--jsonl", str(path), "--images", str(images), "--out", str(out)
    )
    m = open_dataset(out).manifest
    assert Counter(m.skipped) == Counter(malformed_json=2, duplicate=2, unknown_source=1)
    assert m.num_samples + m.num_skipped == len(anns) + len(lines) - 1 == m.params["input_rows"]
    samples = read_samples(out)
    real_sample = samples["ln-mscoco-137576-93"]
    assert real_sample["txt"].decode() == real["caption"]
    meta = json.loads(real_sample["json"])
    assert (
        meta["image"] == "MSCOCO/000000137576.jpg" and meta["split"] == "mscoco_val2017" and meta["line"] == 6
    )
    dup = [s for s in skipped_lines(out) if s["reason"] == "duplicate"]
    assert {s["key"] for s in dup} == {
        "ln-coco_val_localized_narratives-L9",
        "ln-open_images-0001eeaf4aed83f9-99",
    }
    assert m.params["inputs"]["jsonl_files"][path.name]["bytes"] == path.stat().st_size


def test_image_path_rules(tmp_path):
    assert image_path(tmp_path, "mscoco", "42") == tmp_path / "MSCOCO/000000000042.jpg"
    assert (
        image_path(tmp_path, "open_images", "0001eeaf4aed83f9")
        == tmp_path / "OpenImages/0001eeaf4aed83f9.jpg"
    )
    assert image_path(tmp_path, "open_images_test", "ab") == tmp_path / "OpenImages_test/ab.jpg"
    assert (
        prefix_of_dataset("mscoco_val2017") == "mscoco"
        and prefix_of_dataset("open_images_test") == "open_images_test"
    )
    assert (
        prefix_of_dataset("open_images_validation") == "open_images"
        and prefix_of_dataset("ade20k_train") is None
    )
