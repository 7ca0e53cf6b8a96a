"""What the BabyLM evaluation pipeline does with an exported folder, run in a clean environment
(torch, transformers, accelerate; no babylm-pipeline): `python check_export.py EXPORTS`, where
EXPORTS holds flamingo/, git/, opt/, roberta/ and reference.pt from `make_exports`.

Standalone on purpose (imports neither babylm nor the test suite), so it proves that the folder
alone is enough on this environment's transformers release. Exits non-zero on the first failure.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import tempfile
from pathlib import Path

import torch
import transformers
from PIL import Image
from transformers import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoProcessor,
    AutoTokenizer,
    Trainer,
    TrainingArguments,
)

# -I leaves the script's folder off sys.path; its sibling holds the 2025 pipeline's calls.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_calls_2025 import check_all  # noqa: E402

ATOL = 1e-4  # another release's ViT may round differently; the decoders are plain torch
MACHINE_KEYS = {"is_local", "local_files_only", "cache_dir", "token", "use_auth_token", "_commit_hash"}


class _Warnings(logging.Handler):
    """Collects transformers' warnings (the processor must load without a deprecation one)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    diff = float((actual - expected).abs().max())
    assert actual.shape == expected.shape and diff <= ATOL, (
        f"{what}: shape {tuple(actual.shape)}, max diff {diff}"
    )


def check_tokenizer(folder: Path) -> None:
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert not MACHINE_KEYS & config.keys(), (
        f"machine-specific keys in tokenizer_config.json: {config.keys()}"
    )
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    assert tok.bos_token == "</s>" and tok.bos_token_id == 1, (tok.bos_token, tok.bos_token_id)
    assert tok.pad_token_id == 0 and tok.eos_token_id == 1
    assert tok.convert_tokens_to_ids("<image>") not in (None, tok.unk_token_id)


def check_multimodal(kind: str, folder: Path, ref: dict, inputs: dict) -> None:
    """CausalLM + AutoProcessor as lm_eval and DevBench use them, against the exporting model."""
    warnings = _Warnings()
    logging.getLogger("transformers").addHandler(warnings)
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    logging.getLogger("transformers").removeHandler(warnings)
    deprecated = [m for m in warnings.messages if "deprecated" in m]
    assert not deprecated, deprecated
    assert processor.image_processor is not None and processor.tokenizer is not None  # DevBench reads them
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True, torch_dtype="auto").eval()
    ids = inputs["input_ids"]
    images = [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in inputs["images"]]
    with torch.no_grad():
        pixel_values = processor(images=images, return_tensors="pt")["pixel_values"]
        close(pixel_values, ref["pixel_values"], f"{kind} pixel_values")
        close(model(ids).logits, ref["text_logits"], f"{kind} text logits")
        close(model(ids, pixel_values=pixel_values).logits, ref["image_logits"], f"{kind} image logits")
        # DevBench: the encoder path, processor(images=, text=) with token_type_ids, loss, hidden states.
        encoder = model.git.image_encoder if kind == "git" else model.model.decoder.img_encoder
        assert not any(p.requires_grad for p in encoder.parameters())
        encoding = processor(images=images, text=inputs["texts"], return_tensors="pt")
        assert sorted(encoding) == ["attention_mask", "input_ids", "pixel_values", "token_type_ids"], sorted(
            encoding
        )
        encoding.pop("token_type_ids")
        out = model(**encoding, labels=encoding["input_ids"], output_hidden_states=True)
        assert 0 < float(out["loss"]) < 20 and len(out["hidden_states"]) == model.config.num_hidden_layers + 1
        # Cached generation gives what full forwards give (greedy), with and without an image.
        for extra in ({"pixel_values": pixel_values[:1]}, {}):
            gen = model.generate(ids[:1], max_new_tokens=4, min_new_tokens=4, do_sample=False, **extra)
            full = model(gen, **extra).logits[:, -gen.shape[1] :]
            assert torch.equal(gen[0, 5:], full[0, 4:-1].argmax(-1)), (kind, gen, extra.keys())
        if kind == "git":  # a caption from the image alone
            assert model.generate(pixel_values=pixel_values[:1], max_new_tokens=3).shape[0] == 1


def check_text(kind: str, folder: Path, ref: dict, inputs: dict) -> None:
    auto = AutoModelForMaskedLM if kind == "roberta" else AutoModelForCausalLM
    model = auto.from_pretrained(folder, trust_remote_code=True).eval()
    with torch.no_grad():
        close(model(inputs["input_ids"]).logits, ref["text_logits"], f"{kind} logits")


class _TwoClasses(torch.utils.data.Dataset):
    """A tiny two-class set: captions about circles (0) against captions about triangles (1)."""

    def __init__(self, tokenizer):
        texts = [f"a {c} circle" for c in ("red", "blue", "green", "big")]
        texts += [f"two {c} triangles" for c in ("red", "blue", "green", "big")]
        self.encoding = tokenizer(texts, padding=True, return_tensors="pt")
        self.labels = torch.tensor([0] * 4 + [1] * 4)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.encoding["input_ids"][i], "attention_mask": self.encoding["attention_mask"][i],
                "labels": self.labels[i]}  # fmt: skip


def check_sequence_classification(kind: str, folder: Path) -> dict:
    """GLUE fine-tuning as the pipeline's finetune_classification.py does it: Trainer on
    AutoModelForSequenceClassification(num_labels=2); the loss must go down."""
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2, trust_remote_code=True)
    data = _TwoClasses(tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=8, per_device_eval_batch_size=8, max_steps=12,
            learning_rate=3e-3, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
            seed=0, disable_tqdm=True,
        )  # fmt: skip
        trainer = Trainer(model=model, args=args, train_dataset=data, eval_dataset=data)
        before = trainer.evaluate()["eval_loss"]
        trainer.train()
        after = trainer.evaluate()["eval_loss"]
    assert after < before * 0.7, f"{kind}: eval loss {before:.4f} -> {after:.4f}"
    return {"class": type(model).__name__, "loss_before": round(before, 4), "loss_after": round(after, 4)}


def main(exports: Path) -> None:
    assert importlib.util.find_spec("babylm") is None, "babylm is importable in the clean environment"
    inputs = torch.load(exports / "reference.pt")
    summary = {"transformers": transformers.__version__, "torch": torch.__version__}
    for kind in ("flamingo", "git"):
        check_tokenizer(exports / kind)
        check_multimodal(kind, exports / kind, inputs[kind], inputs)
    for kind in ("opt", "roberta"):
        check_text(kind, exports / kind, inputs[kind], inputs)
    for kind in ("flamingo", "git", "opt", "roberta"):
        summary[kind] = check_sequence_classification(kind, exports / kind)
        summary[kind] |= check_all(kind, exports, inputs)
    print(json.dumps(summary))


if __name__ == "__main__":
    transformers.utils.logging.disable_progress_bar()
    main(Path(sys.argv[1]))
