"""Small byte-level BPE tokenizers shaped like the 2023 baselines': facebook/opt-125m's (GPT-2 BPE,
no BOS, <image> </c> <PERSON> added) and roberta-base's (<s> ... </s> per line, <mask>)."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from tests.conftest import CORPUS


def build_bpe_tokenizer(out_dir: Path, kind: str, vocab_size: int = 300) -> Path:
    """`kind` "opt" or "roberta": a folder AutoTokenizer loads, like a local copy of the original."""
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>"] + (["<mask>"] if kind == "roberta" else [])
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([line + "\n" for line in CORPUS] * 20, trainer=trainer)
    names = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
    if kind == "roberta":
        tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, mask_token="<mask>", **names)
    else:
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, **names)
        fast.add_special_tokens({"additional_special_tokens": ["<image>", "</c>", "<PERSON>"]})
    fast.save_pretrained(out_dir)
    return out_dir
