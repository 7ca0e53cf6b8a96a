"""`babylm-prep text`: parity with the original's token stream, bad input, resume, splits, workers.

The original's line semantics, written out (its dataset builders `babyLM_for_hf.py` and
`babyLM_2024_for_hf.py`, not the `datasets` "text" builder): per source file in a fixed order,
`open(path, encoding="utf-8").readlines()` -- universal newlines, so "\\r\\n" and a lone "\\r" end a
line and become "\\n"; every line keeps its "\\n"; a last line without a break stays without one --;
strict_50M keeps `lines[: len(lines) // 2]`; then a line whose `.strip()` is empty is the example
"", any other line is the example as it is; each example goes through `PreTrainedTokenizerFast`.
(The `datasets` text builder with keep_linebreaks=True reads the same way except that it keeps a
blank line as "\\n" rather than "".)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from babylm.prep.cli import main
from babylm.prep.text import pool
from babylm.prep.text.corpus import CORPORA
from babylm.prep.text.fastpath import FastPath
from babylm.prep.text.tokenizer import save_tokenizer, train_tokenizer
from babylm.shards import ArrowShardWriter, open_dataset, read_token_table, token_column, verify_dataset
from tests.prep.raw_fixtures import TRICKY, write_corpus


@pytest.fixture(scope="module")
def recipe_tokenizer_dir(tmp_path_factory) -> Path:
    """A small tokenizer trained with the real recipe (so the ASCII fast path applies to it)."""
    lines = [t for text in TRICKY.values() for t in text.splitlines()] * 20
    tok = train_tokenizer(iter([lines]), len(lines), vocab_size=150, show_progress=False)
    return save_tokenizer(tok, tmp_path_factory.mktemp("recipe_tok"))


@pytest.fixture(params=["tiny", "recipe"])
def any_tokenizer_dir(request, tiny_tokenizer_dir, recipe_tokenizer_dir) -> Path:
    """The shared tiny tokenizer (Rust path only) and a recipe one (fast path for ASCII lines)."""
    return tiny_tokenizer_dir if request.param == "tiny" else recipe_tokenizer_dir


def original_examples(path: Path, halve: bool = False) -> list[str]:
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    if halve:
        lines = lines[: len(lines) // 2]
    return [row if row.strip() else "" for row in lines]


def original_rows(folder: Path, corpus: str, split: str, tokenizer_dir: Path) -> list[list[int]]:
    """The original's token ids per example, over the files in their order."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    spec = CORPORA[corpus]
    examples = []
    for source in spec.sources:
        examples += original_examples(folder / f"{source}.{split}", spec.halve)
    return tok(examples)["input_ids"]


def shard_rows(out: Path) -> list[list[int]]:
    ds = open_dataset(out)
    rows: list[list[int]] = []
    for entry in ds.manifest.shards:
        rows += token_column(read_token_table(ds.shard_url(entry))).to_pylist()
    return rows


def run_text(*args: str, ok: bool = True):
    result = CliRunner().invoke(main, ["text", *args])
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def text_args(root: Path, tok: Path, out: Path, corpus: str = "strict_10M", *extra: str) -> list[str]:
    return ["--corpus", corpus, "--root", str(root), "--tokenizer", str(tok), "--out", str(out), *extra]


def folder_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def test_token_stream_equals_the_original_token_for_token(tmp_path, any_tokenizer_dir):
    folder = write_corpus(tmp_path, "strict_10M")
    out = tmp_path / "out"
    run_text(
        *text_args(tmp_path, any_tokenizer_dir, out, "strict_10M", "--shard-rows", "8", "--workers", "1")
    )
    expected = original_rows(folder, "strict_10M", "train", any_tokenizer_dir)
    got = shard_rows(out)
    assert got == expected  # row for row, hence the concatenated stream token for token
    assert sum(got, []) == sum(expected, [])
    # The newline is a lone "▁" before </s>; a blank line is </s> alone.
    eos = 1
    assert got[1] == [eos] and got[0][-1] == eos
    m = open_dataset(out).manifest
    assert m.kind == "tokens" and m.name == "text_strict_10M_train"
    assert m.num_samples == len(expected) and m.num_tokens == sum(len(r) for r in expected)
    assert not verify_dataset(open_dataset(out), deep=True)


def test_manifest_records_files_tokenizer_and_options(tmp_path, tiny_tokenizer_dir):
    import hashlib

    from transformers import AutoTokenizer

    folder = write_corpus(tmp_path, "strict_10M")
    out = tmp_path / "out"
    run_text(*text_args(tmp_path, tiny_tokenizer_dir, out, "strict_10M", "--shard-rows", "5"))
    params = open_dataset(out).manifest.params
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    by_name = {f["name"]: f for f in params["files"]}
    assert [f["name"] for f in params["files"]] == [f"{s}.train" for s in CORPORA["strict_10M"].sources]
    for name, f in by_name.items():
        examples = original_examples(folder / name)
        assert f["lines"] == f["rows"] == len(examples), name
        assert f["tokens"] == sum(len(ids) for ids in (tok(examples)["input_ids"] if examples else []))
        assert f["sha256"] == hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert f["bytes"] == (folder / name).stat().st_size
    assert by_name["gutenberg.train"]["bom"] and not by_name["cbt.train"]["bom"]
    empty = by_name["open_subtitles.train"]  # an empty file is allowed and recorded
    assert empty["lines"] == empty["tokens"] == empty["bytes"] == 0
    t = params["tokenizer"]
    assert t["sha256"] == hashlib.sha256((tiny_tokenizer_dir / "tokenizer.json").read_bytes()).hexdigest()
    assert params["vocab_size"] == t["vocab_size"] == len(tok)
    assert (t["pad_id"], t["eos_id"], t["unk_id"], t["mask_id"]) == (0, 1, 2, 3)
    assert t["image_id"] == tok.convert_tokens_to_ids("<image>")
    assert params["strip_newlines"] is False and params["seq_len"] == 128
    assert (params["corpus"], params["split"], params["on_bad_utf8"]) == ("strict_10M", "train", "replace")


def test_strip_newlines_tokenizes_lines_without_their_break(tmp_path, tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    folder = write_corpus(tmp_path, "strict_10M")
    out = tmp_path / "out"
    run_text(*text_args(tmp_path, tiny_tokenizer_dir, out, "strict_10M", "--strip-newlines"))
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    examples = []
    for s in CORPORA["strict_10M"].sources:
        examples += [e.removesuffix("\n") for e in original_examples(folder / f"{s}.train")]
    assert shard_rows(out) == tok(examples)["input_ids"]
    assert open_dataset(out).manifest.params["strip_newlines"] is True


def test_crlf_and_bom_give_the_same_rows_as_plain_lf(tmp_path, tiny_tokenizer_dir):
    text = "first line .\n\nsecond line !\nthird\n"
    outs = []
    for name, data in [
        ("lf", text.encode()),
        ("crlf", b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()),
    ]:
        write_corpus(tmp_path / name, "strict_10M", contents={s: data for s in CORPORA["strict_10M"].sources})
        run_text(*text_args(tmp_path / name, tiny_tokenizer_dir, tmp_path / f"out-{name}"))
        outs.append(shard_rows(tmp_path / f"out-{name}"))
    assert outs[0] == outs[1] and len(outs[0]) == 40


def test_workers_batches_and_fast_path_do_not_change_a_byte(tmp_path, recipe_tokenizer_dir):
    write_corpus(tmp_path, "strict_10M")
    runs = {
        "w1": ["--workers", "1"],
        "w2": ["--workers", "2", "--batch-lines", "3"],
        "rust": ["--no-fast-path"],
    }
    for name, extra in runs.items():
        run_text(
            *text_args(tmp_path, recipe_tokenizer_dir, tmp_path / name, "strict_10M", "--shard-rows", "7"),
            *extra,
        )
    assert folder_bytes(tmp_path / "w1") == folder_bytes(tmp_path / "w2") == folder_bytes(tmp_path / "rust")
    assert len(open_dataset(tmp_path / "w1").manifest.shards) > 4


def test_rerun_after_interruption_gives_the_same_shards_and_manifest(
    tmp_path, tiny_tokenizer_dir, monkeypatch
):
    write_corpus(tmp_path, "strict_10M")
    args = text_args(tmp_path, tiny_tokenizer_dir, tmp_path / "whole", "strict_10M", "--shard-rows", "6")
    run_text(*args)

    interrupted = tmp_path / "interrupted"
    original_write = ArrowShardWriter.write_rows

    def dying_write(self, lengths, values, words):  # killed while the 4th shard is half written
        if self.name == "shard-000003.arrow" and self.samples:
            raise RuntimeError("simulated kill")
        original_write(self, lengths, values, words)

    monkeypatch.setattr(ArrowShardWriter, "write_rows", dying_write)
    resume_args = text_args(tmp_path, tiny_tokenizer_dir, interrupted, "strict_10M", "--shard-rows", "6")
    failed = run_text(*resume_args, "--batch-lines", "2", ok=False)
    assert "simulated kill" in repr(failed.exception)
    assert sorted(p.name for p in interrupted.glob("shard-*")) == [f"shard-00000{i}.arrow" for i in range(3)]
    assert not (interrupted / "manifest.json").exists()
    (interrupted / ".shard-000003.arrow.4242.tmp").write_bytes(b"partial")  # what a SIGKILL leaves
    monkeypatch.setattr(ArrowShardWriter, "write_rows", original_write)

    run_text(*resume_args)
    assert folder_bytes(interrupted) == folder_bytes(tmp_path / "whole")
    assert (interrupted / "manifest.json").read_bytes() == (tmp_path / "whole" / "manifest.json").read_bytes()
    assert not list(interrupted.glob(".*.tmp"))
    # A rerun of a finished job changes nothing.
    run_text(*resume_args)
    assert folder_bytes(interrupted) == folder_bytes(tmp_path / "whole")


def test_rerun_with_other_options_into_the_same_folder_is_refused(tmp_path, tiny_tokenizer_dir):
    write_corpus(tmp_path, "strict_10M")
    out = tmp_path / "out"
    run_text(*text_args(tmp_path, tiny_tokenizer_dir, out, "strict_10M", "--shard-rows", "6"))
    result = run_text(
        *text_args(tmp_path, tiny_tokenizer_dir, out, "strict_10M", "--shard-rows", "6"),
        "--strip-newlines",
        ok=False,
    )
    assert result.exit_code != 0 and "different text prep" in result.output


def test_missing_corpus_file_lists_the_expected_files_and_folder(tmp_path, tiny_tokenizer_dir):
    folder = write_corpus(tmp_path, "strict_10M")
    (folder / "qed.train").unlink()
    result = run_text(*text_args(tmp_path, tiny_tokenizer_dir, tmp_path / "out"), ok=False)
    assert result.exit_code != 0
    assert f"missing 1 of 10 corpus files in folder {folder}: qed.train" in result.output
    assert "expected: aochildes.train, bnc_spoken.train" in result.output
    result = run_text(*text_args(tmp_path, tiny_tokenizer_dir, tmp_path / "out", "vis2024"), ok=False)
    assert "babylm_vis_text_2024 (which does not exist)" in result.output and "childes.train" in result.output


BAD = b"fine line\n" + b"caf\xe9 au lait\n" + b"ok again\n"


@pytest.mark.parametrize("policy", ["replace", "skip", "error"])
def test_bytes_that_are_not_utf8(tmp_path, tiny_tokenizer_dir, policy):
    from transformers import AutoTokenizer

    folder = write_corpus(tmp_path, "strict_10M", contents={"cbt": BAD})
    out = tmp_path / "out"
    result = run_text(
        *text_args(tmp_path, tiny_tokenizer_dir, out), "--on-bad-utf8", policy, ok=policy != "error"
    )
    where = f"{folder / 'cbt.train'}:2"
    if policy == "error":
        assert result.exit_code != 0 and where in result.output and "not UTF-8" in result.output
        assert not (out / "manifest.json").exists()
        return
    assert where in result.output and "0xe9 at column 4" in result.output
    m = open_dataset(out).manifest
    cbt = next(f for f in m.params["files"] if f["name"] == "cbt.train")
    assert cbt["bad_utf8"] == 1 and m.params["bad_utf8_lines"] == 1
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    kept = (
        ["fine line\n", "caf\ufffd au lait\n", "ok again\n"]
        if policy == "replace"
        else ["fine line\n", "ok again\n"]
    )
    before = sum(len(original_examples(folder / f"{s}.train")) for s in ("aochildes", "bnc_spoken"))
    cbt_rows = shard_rows(out)[before : before + len(kept)]
    assert cbt_rows == tok(kept)["input_ids"]
    assert cbt["rows"] == len(kept) and cbt["lines"] == 3
    assert m.skipped == ({"bad_utf8": 1} if policy == "skip" else {})


@pytest.mark.parametrize("split", ["dev", "test"])
def test_dev_and_test_splits(tmp_path, tiny_tokenizer_dir, split):
    folder = write_corpus(tmp_path, "strict_100M", split)
    out = tmp_path / "out"
    run_text(*text_args(tmp_path, tiny_tokenizer_dir, out, "strict_100M"), "--split", split)
    m = open_dataset(out).manifest
    assert m.name == f"text_strict_100M_{split}" and m.params["split"] == split
    assert m.params["source_folder"] == f"babylm_{split}" and folder.name == f"babylm_{split}"
    assert [f["name"] for f in m.params["files"]][0] == f"aochildes.{split}"
    assert shard_rows(out) == original_rows(folder, "strict_100M", split, tiny_tokenizer_dir)
    vis = write_corpus(tmp_path, "vis2024", split)
    run_text(*text_args(tmp_path, tiny_tokenizer_dir, tmp_path / "vis", "vis2024"), "--split", split)
    assert vis.name == f"babylm_{split}_2024"
    assert shard_rows(tmp_path / "vis") == original_rows(vis, "vis2024", split, tiny_tokenizer_dir)


def test_strict_50M_keeps_the_first_half_of_each_100M_file(tmp_path, tiny_tokenizer_dir):
    folder = write_corpus(tmp_path, "strict_50M")
    assert folder.name == "babylm_100M"
    out = tmp_path / "out"
    run_text(*text_args(tmp_path, tiny_tokenizer_dir, out, "strict_50M"))
    m = open_dataset(out).manifest
    wiki = next(f for f in m.params["files"] if f["name"] == "wikipedia.train")
    assert (wiki["lines_in_file"], wiki["lines"]) == (25, 12)
    assert shard_rows(out) == original_rows(folder, "strict_50M", "train", tiny_tokenizer_dir)


def test_default_out_and_help(tmp_path, tiny_tokenizer_dir, monkeypatch):
    write_corpus(tmp_path / "datasets", "vis2024")
    monkeypatch.setenv("BABYLM_ROOT_DIR", str(tmp_path))
    monkeypatch.delenv("BABYLM_DATASET_ROOT_DIR", raising=False)
    run_text("--corpus", "vis2024", "--tokenizer", str(tiny_tokenizer_dir))
    manifest = json.loads((tmp_path / "shards" / "text_vis2024_train" / "manifest.json").read_text())
    assert manifest["params"]["corpus"] == "vis2024" and len(manifest["params"]["files"]) == 6
    help_text = CliRunner().invoke(main, ["text", "--help"]).output
    options = (
        "corpus root tokenizer out split strip-newlines workers on-bad-utf8 shard-rows batch-lines fast-path"
    )
    assert all(f"--{option}" in help_text for option in options.split())


def test_fast_path_gives_the_rust_tokenizers_ids(recipe_tokenizer_dir, tiny_tokenizer_dir, monkeypatch):
    import random
    import string

    from tokenizers import Tokenizer

    # The shared tiny tokenizer's normalizer is not the recipe's: all its lines go through Rust.
    assert FastPath.for_tokenizer(Tokenizer.from_file(str(tiny_tokenizer_dir / "tokenizer.json"))) is None

    rng = random.Random(7)
    alphabet = (
        string.ascii_letters + string.digits + string.punctuation + "    \t\t\n\x0b\x0c\x7f\x00éñ—▁\ufffd"
    )
    texts = ["".join(rng.choices(alphabet, k=rng.randint(0, 60))) for _ in range(3000)]
    texts += ["", "\n", " \n", "<image> a\n", "a <PERSON>\n", "Ünïcode line\n", "tab\tsep\n", "x" * 300]
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # _init sets it; restored afterwards
    monkeypatch.setattr(pool, "_TOKENIZER", None)
    monkeypatch.setattr(pool, "_FAST", None)
    pool._init((recipe_tokenizer_dir / "tokenizer.json").read_text(), False, True)
    assert pool._FAST is not None
    lengths, values, words = pool.tokenize(texts)  # fast path with Rust rows spliced in
    tok = Tokenizer.from_file(str(recipe_tokenizer_dir / "tokenizer.json"))
    expected = [e.ids for e in tok.encode_batch(texts)]
    assert lengths.tolist() == [len(ids) for ids in expected]
    assert values.tolist() == sum(expected, [])
    assert words.tolist() == [len(t.split()) for t in texts]
    _, _, fallback, _ = pool._FAST.encode_batch(texts)
    assert 0 < len(fallback) < len(texts)  # both paths were exercised


def test_reader_splits_lines_like_text_mode_at_any_chunk_size(tmp_path, monkeypatch):
    """Random bytes (CR, CRLF, blank, bad UTF-8, no final break) read with tiny chunks, resumed at
    random lines, halved: always the original's examples, and `row_line` finds each row's line."""
    import random

    from babylm.prep.text import corpus

    rng = random.Random(3)
    alphabet = [b"a", b" ", b"\n", b"\r", b"\r\n", b"\t", "é".encode(), "\u2028".encode(), b"\xff", b"\xc3"]
    path = tmp_path / "f.train"
    for _ in range(400):
        monkeypatch.setattr(corpus, "CHUNK_BYTES", rng.choice([1, 2, 3, 7, 1 << 20]))
        path.write_bytes(b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))))
        halve = rng.random() < 0.3
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
        expected = [r if r.strip() else "" for r in (lines[: len(lines) // 2] if halve else lines)]
        source = corpus.scan_file(path, halve)
        assert source.lines == len(expected)
        start = rng.randint(0, len(expected))
        policy = rng.choice(["replace", "skip"])
        blocks = list(corpus.read_blocks(source, True, policy, start, rng.choice([1, 2, 4096])))
        got = [(b.row_line(i), t) for b in blocks for i, t in enumerate(b.texts)]
        skipped = {n for b in blocks for n in b.skipped}
        assert got == [(n, e) for n, e in enumerate(expected, 1) if n > start and n not in skipped]
        assert all("\ufffd" in expected[n - 1] for n in skipped)


def _die(texts):  # module level, so the forked worker finds it by name
    os._exit(9)


def test_a_worker_that_dies_fails_the_run_instead_of_hanging(tmp_path, tiny_tokenizer_dir, monkeypatch):
    write_corpus(tmp_path, "strict_10M")
    monkeypatch.setattr(pool, "tokenize", _die)
    result = run_text(*text_args(tmp_path, tiny_tokenizer_dir, tmp_path / "out"), "--workers", "2", ok=False)
    assert result.exit_code != 0 and "a tokenizer worker died" in result.output
    assert not (tmp_path / "out" / "manifest.json").exists()
