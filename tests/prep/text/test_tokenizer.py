"""`babylm-prep tokenizer`: the original's recipe, special ids, and loading by folder or file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from babylm.prep.cli import main
from babylm.prep.errors import PrepError
from babylm.prep.text.tokenizer import load_tokenizer, train_tokenizer
from tests.prep.raw_fixtures import write_corpus

LINES = [
    "The child said hello to the dog and the cat .",
    "A:\tyeah i think so , uh-huh .",
    "she reads a book about 3 little pigs !",
    "what is that ? it is a photo of a man riding a horse ;",
    "people walk along the beach at sunset 12 34 .",
    "Mommy, where is my red ball? It's under the table.",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A 300-piece tokenizer trained by the command on a tiny vis2024 corpus."""
    root = tmp_path_factory.mktemp("raw")
    text = "".join(f"{line} {i % 10}\n" for i in range(40) for line in LINES)
    write_corpus(root, "vis2024", contents={s: text for s in ("childes", "switchboard", "simple_wiki")})
    out = root / "tok"
    args = ["tokenizer", "--corpus", "vis2024", "--root", str(root), "--out", str(out), "--vocab-size", "300"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "saved" in result.output
    return out


def learned_size(folder: Path) -> int:
    return len(json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"])


def test_autotokenizer_loads_it_with_the_special_tokens(trained):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(trained))
    n = learned_size(trained)
    assert 100 < n <= 300
    assert (tok.pad_token, tok.eos_token, tok.unk_token, tok.mask_token) == (
        "<pad>",
        "</s>",
        "<unk>",
        "<mask>",
    )
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, tok.mask_token_id) == (0, 1, 2, 3)
    # <image> and <PERSON> right after the learned vocabulary, as special tokens.
    assert tok.convert_tokens_to_ids(["<image>", "<PERSON>"]) == [n, n + 1]
    assert "<image>" in tok.all_special_tokens and len(tok) == n + 2
    ids = tok("a photo <image> of <PERSON>")["input_ids"]
    assert n in ids and n + 1 in ids and ids[-1] == 1


def test_recipe_normalizes_splits_and_appends_eos(trained):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(trained))
    ids = lambda s: tok(s)["input_ids"]  # noqa: E731
    assert ids("The   CHILD said") == ids("the child said")  # collapse spaces, lowercase
    assert ids("ｔｈｅ child") == ids("the child")  # NFKC
    pieces = tok.convert_ids_to_tokens(ids("123 dog!"))
    assert pieces[-1] == "</s>" and "!" in pieces
    assert [p.strip("▁") for p in pieces if p.strip("▁").isdigit()] == ["1", "2", "3"]  # single digits
    assert tok.decode(ids("the child said hello ."), skip_special_tokens=True) == "the child said hello ."
    assert ids("") == [1] and ids("\n") == [tok.convert_tokens_to_ids("▁"), 1]  # newline -> lone "▁"


def test_recipe_matches_the_original_json(trained):
    data = json.loads((trained / "tokenizer.json").read_text())
    assert [n["type"] for n in data["normalizer"]["normalizers"]] == ["Nmt", "NFKC", "Replace", "Lowercase"]
    assert data["normalizer"]["normalizers"][2]["pattern"] == {"Regex": " {2,}"}
    pre = data["pre_tokenizer"]["pretokenizers"]
    assert [p["type"] for p in pre] == ["Metaspace", "Digits", "Punctuation"]
    assert (
        pre[0]["prepend_scheme"] == "always"
        and pre[1]["individual_digits"]
        and pre[2]["behavior"] == "Isolated"
    )
    assert data["model"]["type"] == "Unigram" and data["model"]["unk_id"] == 2
    assert [t["content"] for t in data["added_tokens"]] == [
        "<pad>",
        "</s>",
        "<unk>",
        "<mask>",
        "<image>",
        "<PERSON>",
    ]


def test_training_streams_from_a_generator_with_a_length():
    consumed = []

    def batches():
        for i in range(30):
            consumed.append(i)
            yield [f"{line} {i}" for line in LINES]

    tok = train_tokenizer(batches(), length=30 * len(LINES), vocab_size=120, show_progress=False)
    assert consumed == list(range(30))
    assert 60 < tok.get_vocab_size() <= 120 and tok.token_to_id("<unk>") == 2
    assert tok.encode("the dog").ids[-1] == 1


def test_bare_tokenizer_json_is_completed_like_the_original_loader(trained):
    loaded = load_tokenizer(str(trained / "tokenizer.json"))
    n = learned_size(trained)
    assert loaded.special_ids() == {"pad_id": 0, "eos_id": 1, "unk_id": 2, "mask_id": 3, "image_id": n}
    assert loaded.vocab_size == n + 2 and loaded.sha256_of == "tokenizer.json"
    assert load_tokenizer(str(trained)).sha256 == loaded.sha256


def test_bad_tokenizer_arguments_are_clear_errors(tmp_path):
    with pytest.raises(PrepError, match="no such file or folder"):
        load_tokenizer(str(tmp_path / "nope" / "tokenizer.json"))
    with pytest.raises(PrepError, match="no tokenizer.json in this folder"):
        load_tokenizer(str(tmp_path))


def test_missing_corpus_file_is_reported_by_the_tokenizer_command(tmp_path):
    result = CliRunner().invoke(
        main, ["tokenizer", "--corpus", "strict_10M", "--root", str(tmp_path), "--out", "x"]
    )
    assert result.exit_code != 0 and "missing 10 of 10 corpus files" in result.output
    assert "aochildes.train" in result.output
