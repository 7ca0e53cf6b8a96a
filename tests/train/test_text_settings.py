"""The 2023 text baselines with their own tokenizers: `babylm-prep text` takes any tokenizer folder
(GPT-2 BPE, RoBERTa) with the original's line semantics, and `--setting opt125m_s1 / roberta_s1`
checks the tokenizer and builds the original's vocabulary."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from transformers import AutoTokenizer

from babylm.prep.text.run import TextConfig, run_text
from babylm.shards import open_dataset, read_token_table, token_column
from babylm.train.cli import main
from babylm.train.kinds import KINDS
from tests.conftest import CORPUS
from tests.train.bpe_fixtures import build_bpe_tokenizer
from tests.train.trainer_fixtures import COMMON, final_weights, run

LINES = [*CORPUS, "", *CORPUS] * 6


@pytest.fixture(scope="module", params=["opt", "roberta"])
def text_run(request, tmp_path_factory):
    kind = request.param
    root = tmp_path_factory.mktemp(kind)
    tok_dir = build_bpe_tokenizer(root / "tok", kind)
    raw = root / "raw" / "babylm_10M"
    raw.mkdir(parents=True)
    from babylm.prep.text.corpus import CORPORA

    for source in CORPORA["strict_10M"].sources:
        (raw / f"{source}.train").write_text("\n".join(LINES) + "\n")
    cfg = TextConfig(
        corpus="strict_10M",
        root=root / "raw",
        tokenizer=str(tok_dir),
        out=root / "tokens",
        workers=1,
        progress=False,
    )
    run_text(cfg)
    return kind, tok_dir, root


def test_prep_text_keeps_the_tokenizers_own_line_semantics(text_run):
    kind, tok_dir, root = text_run
    tok = AutoTokenizer.from_pretrained(tok_dir)
    ds = open_dataset(root / "tokens")
    rows = token_column(read_token_table(ds.shard_urls[0]))
    for i, line in enumerate(LINES[:20]):
        # The original's lines: each with its newline; a blank line becomes "" (no newline).
        assert rows[i].as_py() == tok(line + "\n" if line.strip() else "")["input_ids"], (kind, line)
    first = rows[0].as_py()
    if kind == "opt":  # GPT-2 BPE as opt125m_s1 used it: no BOS, no EOS, the newline a token
        assert tok.bos_token_id not in first and tok.eos_token_id not in first
        assert rows[len(CORPUS)].as_py() == []  # a blank line: zero tokens, as in the original
    else:  # roberta-base: <s> ... </s> around every line
        assert first[0] == tok.bos_token_id and first[-1] == tok.eos_token_id
        assert rows[len(CORPUS)].as_py() == [tok.bos_token_id, tok.eos_token_id]  # a blank line


def _train(kind: str, tok_dir, root, out, *extra: str):
    model = "opt" if kind == "opt" else "roberta"
    args = [model, "--data", str(root / "tokens"), "--tokenizer", str(tok_dir), "--out", str(out)]
    return [*args, *COMMON, "--max-steps", "1", *extra]


def test_setting_refuses_another_tokenizer_naming_both(text_run, tmp_path):
    kind, tok_dir, root = text_run
    setting = "opt125m_s1" if kind == "opt" else "roberta_s1"
    result = CliRunner().invoke(main, _train(kind, tok_dir, root, tmp_path / "x", "--setting", setting))
    assert result.exit_code == 2, result.output
    assert f"--setting {setting}" in result.output and str(tok_dir) in result.output
    assert "--override-setting" in result.output


def test_setting_builds_the_original_vocabulary(text_run, tmp_path):
    kind, tok_dir, root = text_run
    setting = "opt125m_s1" if kind == "opt" else "roberta_s1"
    out = tmp_path / "run"
    run(_train(kind, tok_dir, root, out, "--setting", setting, "--override-setting"))
    weights = final_weights(out)
    embed = next(
        v
        for k, v in weights.items()
        if k.endswith("embed_tokens.weight") or k.endswith("word_embeddings.weight")
    )
    assert embed.shape[0] == KINDS[kind].setting_vocab
    plain = tmp_path / "plain"  # without --setting: the tokenizer's size + 8
    run(_train(kind, tok_dir, root, plain))
    tok = AutoTokenizer.from_pretrained(tok_dir)
    embed = next(
        v
        for k, v in final_weights(plain).items()
        if k.endswith(("embed_tokens.weight", "word_embeddings.weight"))
    )
    assert embed.shape[0] == len(tok) + 8


def test_original_chunking_matches_the_original_pipeline_token_for_token(tmp_path, tiny_tokenizer_dir):
    """Raw files with CRLF, blank lines and no final newline, over 1000 lines: babylm-prep text,
    then the loader with --chunking original, give the original's chunks (readlines in text mode,
    blank lines as "", each line tokenized, datasets.map groups of 1000, remainders dropped)."""
    from babylm.prep.text.corpus import CORPORA
    from babylm.train.data.loader import build_loader

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    raw = tmp_path / "raw" / "babylm_10M"
    raw.mkdir(parents=True)
    files = []
    for i, source in enumerate(CORPORA["strict_10M"].sources):
        lines = [CORPUS[(i + j) % len(CORPUS)] if j % 7 else "  " for j in range(130 + 11 * i)]
        text = ("\r\n" if i % 2 else "\n").join(lines) + ("" if i % 3 == 0 else "\n")
        (raw / f"{source}.train").write_bytes(text.encode())
        files.append(raw / f"{source}.train")
    run_text(TextConfig(corpus="strict_10M", root=tmp_path / "raw", tokenizer=str(tiny_tokenizer_dir),
                        out=tmp_path / "tokens", workers=1, progress=False))  # fmt: skip
    original_rows = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            original_rows += [tok(row if row.strip() else "")["input_ids"] for row in f.readlines()]
    assert len(original_rows) > 1000
    chunks = []
    for i in range(0, len(original_rows), 1000):
        stream = sum(original_rows[i : i + 1000], [])
        chunks += [tuple(stream[j : j + 32]) for j in range(0, len(stream) // 32 * 32, 32)]
    loader = build_loader(tmp_path / "tokens", batch_size=1, seq_len=32, chunking="original")
    assert loader.num_samples == len(chunks)
    assert sorted(tuple(r) for b in loader.batches() for r in b.inputs["input_ids"].tolist()) == sorted(
        chunks
    )
