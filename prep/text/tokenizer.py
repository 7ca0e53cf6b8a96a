"""The original's SentencePiece-style Unigram tokenizer (`babylm-prep tokenizer`), and loading one.

The recipe is the original `train_tokenizer.py`: Unigram; normalizers NMT, NFKC, `" {2,}"` -> `" "`,
lowercase; pre-tokenizers Metaspace (prefix space always), individual digits, isolated punctuation;
specials `<pad>`=0 `</s>`=1 `<unk>`=2 `<mask>`=3; a post-processor that appends `</s>`. The
original added `<image>` and `<PERSON>` as special tokens when it loaded the tokenizer
(`get_pretrained_tokenizer_func`); here they are added once, after the learned vocabulary, and
saved with it, so `AutoTokenizer.from_pretrained(DIR)` gives the tokenizer the models trained with.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from babylm.prep.errors import ConfigError
from babylm.prep.text.corpus import CORPORA, SourceFile, corpus_files, read_blocks, scan_file
from babylm.shards.progress import is_terminal

SPECIALS = ("<pad>", "</s>", "<unk>", "<mask>")
IMAGE_TOKEN = "<image>"
PERSON_TOKEN = "<PERSON>"
DEFAULT_VOCAB = 32768


def recipe() -> Tokenizer:
    """An untrained tokenizer with the original's normalizers, pre-tokenizers and post-processor."""
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Nmt(),
            normalizers.NFKC(),
            normalizers.Replace(Regex(" {2,}"), " "),
            normalizers.Lowercase(),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.Punctuation(behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return tok


def train_tokenizer(
    batches: Iterator[list[str]],
    length: int | None,
    vocab_size: int = DEFAULT_VOCAB,
    show_progress: bool = True,
) -> Tokenizer:
    """Train the recipe on an iterator of line batches; nothing but the word counts is kept in
    memory, so a 100M-word corpus streams through. `length` (lines) drives the progress bar."""
    tok = recipe()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIALS), unk_token="<unk>", show_progress=show_progress
    )
    tok.train_from_iterator(batches, trainer=trainer, length=length)
    return tok


def save_tokenizer(tok: Tokenizer, out_dir: Path) -> Path:
    """Save as a folder `AutoTokenizer.from_pretrained` loads with pad, eos, unk, mask set and
    `<image>`, `<PERSON>` as additional special tokens with the ids right after the vocabulary."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
        additional_special_tokens=[IMAGE_TOKEN, PERSON_TOKEN],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out_dir))
    return out_dir


def corpus_batches(sources: list[SourceFile], keep_newline: bool) -> Iterator[list[str]]:
    """The training lines of `sources`, file after file, in batches."""
    for source in sources:
        for block in read_blocks(source, keep_newline=keep_newline):
            yield block.texts


@dataclass
class LoadedTokenizer:
    """A tokenizer resolved from a folder, a `tokenizer.json` or a hub name, with what the
    manifest records about it. `backend_json` is the exact Rust tokenizer `__call__` would use."""

    fast: Any  # transformers.PreTrainedTokenizerFast
    source: str
    sha256: str
    sha256_of: str

    @property
    def backend_json(self) -> str:
        return self.fast.backend_tokenizer.to_str()

    @property
    def vocab_size(self) -> int:
        return len(self.fast)

    def special_ids(self) -> dict[str, int | None]:
        f = self.fast
        image = f.convert_tokens_to_ids(IMAGE_TOKEN) if IMAGE_TOKEN in f.get_vocab() else None
        return {
            "pad_id": f.pad_token_id,
            "eos_id": f.eos_token_id,
            "unk_id": f.unk_token_id,
            "mask_id": f.mask_token_id,
            "image_id": image,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "sha256_of": self.sha256_of,
            "vocab_size": self.vocab_size,
            **self.special_ids(),
        }


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_tokenizer(spec: str) -> LoadedTokenizer:
    """Resolve `--tokenizer`: a local folder (with tokenizer.json), a tokenizer.json file, or a
    Hugging Face name (needs the hub to be reachable). A bare tokenizer.json, like the original's
    `tokenizers/*/tokenizer.json`, is completed the way the original loaded it: `<pad>` as the pad
    token and `<image>`, `<PERSON>` added as special tokens."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = Path(spec)
    if path.is_dir():
        if not (path / "tokenizer.json").is_file():
            raise ConfigError(f"{path}: no tokenizer.json in this folder (a fast tokenizer is needed)")
        try:
            fast = AutoTokenizer.from_pretrained(str(path))
        except Exception as e:  # any loader failure is reported with the folder
            raise ConfigError(f"{path}: cannot load the tokenizer: {e}") from e
        loaded = LoadedTokenizer(fast, spec, _sha256_file(path / "tokenizer.json"), "tokenizer.json")
    elif path.is_file():
        try:
            fast = PreTrainedTokenizerFast(tokenizer_file=str(path))
        except Exception as e:
            raise ConfigError(f"{path}: not a tokenizers JSON file: {e}") from e
        for name in ("<pad>", "</s>", "<unk>", "<mask>"):
            if fast.convert_tokens_to_ids(name) is None:
                raise ConfigError(f"{path}: the vocabulary has no {name}")
        fast.add_special_tokens(
            {
                "pad_token": "<pad>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "mask_token": "<mask>",
                "additional_special_tokens": [IMAGE_TOKEN, PERSON_TOKEN],
            }
        )
        loaded = LoadedTokenizer(fast, spec, _sha256_file(path), "tokenizer.json")
    else:
        # A hub name looks like "name" or "org/name"; anything else was meant as a local path.
        if spec.startswith((".", "/", "~")) or spec.endswith(".json") or spec.count("/") > 1:
            raise ConfigError(f"--tokenizer {spec}: no such file or folder")
        try:
            fast = AutoTokenizer.from_pretrained(spec)
        except Exception as e:
            raise ConfigError(
                f"--tokenizer {spec}: not a local folder or file, and not loadable from the Hugging Face "
                f"hub (is it reachable from this machine?): {e}"
            ) from e
        loaded = LoadedTokenizer(fast, spec, "", "serialized backend tokenizer")
        loaded.sha256 = hashlib.sha256(loaded.backend_json.encode()).hexdigest()
    if not getattr(loaded.fast, "is_fast", False):
        raise ConfigError(f"--tokenizer {spec}: a fast (Rust) tokenizer is needed")
    return loaded


@dataclass(frozen=True)
class TokenizerConfig:
    """One `babylm-prep tokenizer` run: learn from the train split of `corpus` under `root`."""

    corpus: str
    root: Path
    out: Path
    vocab_size: int = DEFAULT_VOCAB  # learned pieces including the 4 specials; <image>, <PERSON> after

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "out", Path(self.out))
        if self.corpus not in CORPORA:
            raise ConfigError(f"--corpus {self.corpus}: choose one of {', '.join(sorted(CORPORA))}")
        if self.vocab_size <= len(SPECIALS):
            raise ConfigError(f"--vocab-size must be more than {len(SPECIALS)}, got {self.vocab_size}")


def run_tokenizer(
    cfg: TokenizerConfig, log: Callable[[str], None] | None = None
) -> tuple[LoadedTokenizer, int]:
    """Train the original's Unigram tokenizer, save it to `cfg.out` and load it back.
    Returns the loaded tokenizer and the number of learned pieces; `log` gets the progress line."""
    paths = corpus_files(cfg.root, cfg.corpus, "train")
    sources = [scan_file(p, CORPORA[cfg.corpus].halve) for p in paths]
    lines = sum(s.lines for s in sources)
    if log is not None:
        log(f"training a {cfg.vocab_size}-piece Unigram tokenizer on {lines:,} lines of {cfg.corpus}")
    # As the original fed its trainer: the 2024 builder kept each line's "\n"; the strict
    # tokenizers were trained on the `datasets` text builder's lines, without it.
    batches = corpus_batches(sources, keep_newline=cfg.corpus == "vis2024")
    # The trainer's own bar redraws with carriage returns; in a log file it stays silent.
    tok = train_tokenizer(batches, lines, cfg.vocab_size, show_progress=is_terminal(sys.stderr))
    save_tokenizer(tok, cfg.out)
    return load_tokenizer(str(cfg.out)), tok.get_vocab_size(with_added_tokens=False)
