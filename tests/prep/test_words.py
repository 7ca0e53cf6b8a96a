"""Prep counts words (`len(text.split())`): per row in token shards, per sample in caption
shards, per shard entry and per dataset in every manifest; `inspect` shows them."""

from __future__ import annotations

import json

from click.testing import CliRunner

from babylm.prep.cli import main
from babylm.prep.text.corpus import CORPORA
from babylm.shards import iter_tar_samples, open_dataset, read_token_table, verify_dataset
from babylm.shards.reader import words_column
from tests.prep.cli_helpers import read_samples, run_prep
from tests.prep.raw_fixtures import (
    REAL_CC3M_ROWS,
    good_cc3m_rows,
    write_cc3m_downloader,
    write_corpus,
    write_features,
)


def _original_lines(folder, corpus: str) -> list[str]:
    lines = []
    for source in CORPORA[corpus].sources:
        with open(folder / f"{source}.train", encoding="utf-8") as f:
            lines += f.readlines()
    return lines


def test_token_shards_count_the_words_of_every_line(tmp_path, tiny_tokenizer_dir):
    folder = write_corpus(tmp_path, "strict_10M")
    out = tmp_path / "out"
    args = ["--corpus", "strict_10M", "--root", str(tmp_path), "--tokenizer", str(tiny_tokenizer_dir)]
    result = CliRunner().invoke(main, ["text", *args, "--out", str(out), "--shard-rows", "5"])
    assert result.exit_code == 0, result.output
    ds = open_dataset(out)
    per_row: list[int] = []
    for entry in ds.manifest.shards:
        table = read_token_table(ds.shard_url(entry))
        column = words_column(table)
        assert column is not None and str(column.type) == "uint32"
        shard_words = column.to_pylist()
        assert entry.words == sum(shard_words) and len(shard_words) == entry.samples
        per_row += shard_words
    expected = [len(line.split()) for line in _original_lines(folder, "strict_10M")]
    assert per_row == expected and sum(expected) > 0
    m = ds.manifest
    assert m.num_words == m.totals()["words"] == sum(expected)
    assert json.loads((out / "manifest.json").read_text())["totals"]["words"] == sum(expected)
    by_file = {f["name"]: f["words"] for f in m.params["files"]}
    assert sum(by_file.values()) == sum(expected)
    assert not verify_dataset(ds, deep=True)
    shown = CliRunner().invoke(main, ["inspect", str(out)])
    assert f"words {sum(expected):,}" in shown.output


def test_caption_shards_count_the_words_of_every_caption(tmp_path):
    rows = good_cc3m_rows(10)
    write_cc3m_downloader(tmp_path / "raw", rows)
    out = tmp_path / "out"
    run_prep("cc3m", "--root", str(tmp_path / "raw"), "--out", str(out), "--samples-per-shard", "4")
    ds = open_dataset(out)
    total = 0
    for entry in ds.manifest.shards:
        with ds.open_shard(entry) as f:
            words = [json.loads(s["json"])["words"] for s in iter_tar_samples(f, entry.path)]
        assert entry.words == sum(words)
        total += entry.words
    samples = read_samples(out)
    assert len(samples) == ds.manifest.num_samples > 0
    for s in samples.values():
        # the stored (cleaned) caption, what training reads: "day ." became "day."
        assert json.loads(s["json"])["words"] == len(s["txt"].decode().split())
    assert ds.manifest.num_words == ds.manifest.totals()["words"] == total


def test_feature_shards_count_the_words_of_every_caption(tmp_path):
    captions = [c for c, _ in REAL_CC3M_ROWS]
    cap_path, states, _ = write_features(tmp_path / "raw", captions, dim=8, splits=1)
    out = tmp_path / "out"
    run_prep("features", "--captions", str(cap_path), "--states", str(states[0]), "--out", str(out))
    samples = read_samples(out)
    words = [json.loads(s["json"])["words"] for s in samples.values()]
    assert words == [len(s["txt"].decode().split()) for s in samples.values()]
    assert open_dataset(out).manifest.num_words == sum(words) > 0


def test_verify_catches_a_words_column_that_disagrees_with_the_manifest(tmp_path, tiny_tokenizer_dir):
    write_corpus(tmp_path, "strict_10M")
    out = tmp_path / "out"
    args = ["--corpus", "strict_10M", "--root", str(tmp_path), "--tokenizer", str(tiny_tokenizer_dir)]
    assert CliRunner().invoke(main, ["text", *args, "--out", str(out)]).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["shards"][0]["words"] += 1
    (out / "manifest.json").write_text(json.dumps(manifest))
    problems = verify_dataset(open_dataset(out))
    assert any("word count" in p.problem for p in problems), problems


def _old_caption_dataset(folder) -> None:
    """Captions as prep wrote them before word counts: no `words` in the json or the manifest."""
    from babylm.shards import Manifest, RollingWriter, write_manifest

    with RollingWriter(folder, "tar", max_samples=3) as w:
        for i in range(7):
            caption = "a photo of" + " a dog" * i + "."
            w.write({"__key__": f"k{i:03d}", "jpg": bytes([i]) * 50, "txt": caption, "json": {"i": i}})
    write_manifest(
        folder, Manifest(kind="image_text", shards=w.entries, skipped={"decode_error": 2}, name="old")
    )
    assert open_dataset(folder).manifest.num_words is None


def test_add_words_counts_the_stored_captions_of_an_old_caption_dataset(tmp_path):
    _old_caption_dataset(tmp_path / "old")
    (tmp_path / "old" / "skipped.jsonl").write_text('{"key": "x", "reason": "decode_error"}\n')
    result = CliRunner().invoke(main, ["add-words", str(tmp_path / "old"), "--out", str(tmp_path / "new")])
    assert result.exit_code == 0, result.output
    new = open_dataset(tmp_path / "new").manifest
    samples = read_samples(tmp_path / "new")
    assert len(samples) == new.num_samples == 7 and new.skipped == {"decode_error": 2}
    for key, s in samples.items():
        i = int(key[1:])
        assert json.loads(s["json"]) == {"i": i, "words": 3 + 2 * i}
        assert s["jpg"] == bytes([i]) * 50
    assert new.num_words == sum(3 + 2 * i for i in range(7))
    assert [e.words for e in new.shards] == [3 + 5 + 7, 9 + 11 + 13, 15]
    assert not verify_dataset(open_dataset(tmp_path / "new"), deep=False)
    assert (tmp_path / "new" / "skipped.jsonl").read_text().startswith('{"key": "x"')


def test_add_words_refuses_token_datasets_and_a_used_out(tmp_path, tiny_tokenizer_dir):
    write_corpus(tmp_path, "strict_10M")
    args = ["--corpus", "strict_10M", "--root", str(tmp_path), "--tokenizer", str(tiny_tokenizer_dir)]
    assert CliRunner().invoke(main, ["text", *args, "--out", str(tmp_path / "tok")]).exit_code == 0
    result = CliRunner().invoke(main, ["add-words", str(tmp_path / "tok"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "rerun babylm-prep text" in result.output
    _old_caption_dataset(tmp_path / "old")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "f").write_text("")
    result = CliRunner().invoke(main, ["add-words", str(tmp_path / "old"), "--out", str(tmp_path / "used")])
    assert result.exit_code == 2 and "not empty" in result.output
