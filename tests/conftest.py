"""Fixtures shared by the whole suite. Everything is built in the test, nothing downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

SPECIALS = ["<pad>", "</s>", "<unk>", "<mask>"]
CORPUS = [
    "a small red circle above a blue square .",
    "a large green triangle left of a yellow circle .",
    "the child said hello to the dog and the cat .",
    "an angler fishes river on a snowy day .",
    "A:\tyeah i think so , uh-huh .",
    "people walk along the beach at sunset 12 34 .",
    "she reads a book about 3 little pigs !",
    "what is that ? it is a photo of a man riding a horse ;",
]


def build_tiny_tokenizer(out_dir: Path, vocab_size: int = 200) -> Path:
    """A small tokenizer with the original recipe's shape (Unigram, NFKC+lowercase, Metaspace,
    specials pad=0 </s>=1 <unk>=2 <mask>=3, </s> appended, <image>/<PERSON> added after the
    learned vocabulary), saved as a folder AutoTokenizer loads."""
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence(
        [normalizers.Nmt(), normalizers.NFKC(), normalizers.Replace(r"\s+", " "), normalizers.Lowercase()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.Punctuation(behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(CORPUS * 20, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
        additional_special_tokens=["<image>"],
    )
    fast.add_tokens(["<PERSON>"])
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    """Path of a saved tiny tokenizer folder (AutoTokenizer.from_pretrained works on it)."""
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tokenizer"))
