"""The calls the BabyLM 2025 evaluation makes on an export, written here from scratch (the
pipeline itself is not needed): text first or by keyword, offsets, tokenizer keywords,
AutoModel with a take-final-token classifier, revisions from a hub cache, and a sentence
log-probability through the offsets path. Imported by check_export.py in the clean venvs
(torch and transformers only, no babylm)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AutoModel, AutoModelForCausalLM, AutoProcessor, AutoTokenizer

SENTENCE = "a red circle above a blue square."
BOS = 1  # </s>: the tiny tokenizer's id, which exports prepend and training put before each line


class _Warnings(logging.Handler):
    """Collects transformers' warnings while a model loads."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> _Warnings:
        logging.getLogger("transformers").addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger("transformers").removeHandler(self)


def check_encoding(folder: Path) -> None:
    """`</s>` prepended, nothing appended: every word is scored, the last position is the next word."""
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    ids = tok(SENTENCE)["input_ids"]
    words = tok(SENTENCE, add_special_tokens=False)["input_ids"]
    assert ids == [BOS, *words] and words[-1] != BOS, (ids, words)
    pair = tok("a b", "c")["input_ids"]
    assert pair[0] == BOS and pair.count(BOS) == 2, pair


def check_processor(kind: str, folder: Path, images: list) -> None:
    """Text first or by keyword, every tokenizer keyword reaching the tokenizer, images as before."""
    proc = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    tok = proc.tokenizer
    expected = tok(SENTENCE)["input_ids"]
    assert proc(SENTENCE)["input_ids"] == proc(text=SENTENCE)["input_ids"] == expected
    batch = proc(["a b", "a red circle"], padding=True, return_tensors="pt")
    assert batch["input_ids"].shape[0] == 2 and batch["attention_mask"][0, -1] == 0  # padded right
    left = proc(["a b", "a red circle"], padding=True, padding_side="left", return_tensors="pt")
    assert left["attention_mask"][0, 0] == 0 and torch.equal(
        left["input_ids"][0][left["attention_mask"][0].bool()],
        batch["input_ids"][0][batch["attention_mask"][0].bool()],
    )
    offsets = proc(text=SENTENCE, return_offsets_mapping=True)["offset_mapping"]
    assert len(offsets) == len(expected) and tuple(offsets[0]) == (0, 0) and offsets[-1][1] == len(SENTENCE)
    assert proc(SENTENCE, add_special_tokens=False)["input_ids"] == expected[1:]
    assert len(proc(SENTENCE, truncation=True, max_length=3)["input_ids"]) == 3
    assert "attention_mask" not in proc(SENTENCE, return_attention_mask=False)
    assert proc(SENTENCE, return_special_tokens_mask=True)["special_tokens_mask"][0] == 1
    # Images: positional or by keyword, alone or with text in either order.
    by_keyword = proc(images=images, return_tensors="pt")["pixel_values"]
    assert torch.equal(proc(images, return_tensors="pt")["pixel_values"], by_keyword)
    both = proc(["a b", "c"], images, return_tensors="pt")
    assert torch.equal(both["pixel_values"], by_keyword) and both["input_ids"].shape[0] == 2
    swapped = proc(images, ["a b", "c"], return_tensors="pt")
    assert torch.equal(swapped["input_ids"], both["input_ids"])
    image_token = "<image>" if kind == "flamingo" else None
    assert proc.image_token == tok.image_token == image_token, (proc.image_token, tok.image_token)
    if image_token:
        assert tok.image_token_id == tok.convert_tokens_to_ids(image_token) != tok.unk_token_id


def check_auto_model(kind: str, folder: Path, pixel_values: torch.Tensor) -> None:
    """AutoModel: the decoder without its head, loading with nothing newly initialised; its last
    hidden state is the causal LM's."""
    with _Warnings() as warnings:
        model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    noisy = [m for m in warnings.messages if "initialized" in m or "not used" in m]
    assert not noisy, noisy
    assert type(model).__name__.endswith("DecoderModel"), type(model).__name__
    lm = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    ids = torch.tensor([[BOS, 5, 6, 7, 8]])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True)
        assert "logits" not in out and out.last_hidden_state.shape == (1, 5, model.config.hidden_size)
        assert len(out.hidden_states) == model.config.num_hidden_layers + 1
        reference = lm(ids, output_hidden_states=True).hidden_states[-1]
        assert torch.allclose(out.last_hidden_state, reference, atol=1e-5)
        with_image = model(input_ids=ids, pixel_values=pixel_values[:1]).last_hidden_state
        assert not torch.allclose(with_image[:, -5:], out.last_hidden_state, atol=1e-4)


def check_take_final_classifier(kind: str, folder: Path) -> dict:
    """The 2025 fine-tuning with `--take_final --padding_side left`: a head on AutoModel's last
    position, trained a few steps; the loss must fall."""
    proc = AutoProcessor.from_pretrained(folder, trust_remote_code=True, padding_side="left")
    texts = [f"a {c} circle" for c in ("red", "blue", "green", "big")]
    texts += [f"two {c} triangles" for c in ("red", "blue", "green", "big")]
    batch = proc(texts, return_tensors="pt", padding=True, truncation=True, max_length=64)
    assert bool((batch["attention_mask"][:, -1] == 1).all()), "left padding puts every last token at -1"
    labels = torch.tensor([0] * 4 + [1] * 4)
    torch.manual_seed(0)
    model = AutoModel.from_pretrained(folder, trust_remote_code=True)
    head = torch.nn.Linear(model.config.hidden_size, 2)
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=3e-3)
    losses = []
    for _ in range(12):
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        loss = F.cross_entropy(head(hidden[:, -1]), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.7, f"{kind}: take-final loss {losses[0]:.4f} -> {losses[-1]:.4f}"
    return {"loss_before": round(losses[0], 4), "loss_after": round(losses[-1], 4)}


def check_revisions(kind: str, exports: Path, ref: dict) -> None:
    """Each revision of babylm-test/KIND in the hub cache OUT/hub loads its own weights offline."""
    hub = Path(os.environ["HF_HUB_CACHE"])
    assert hub == exports / "hub" and os.environ["HF_HUB_OFFLINE"] == "1", hub
    repo = f"babylm-test/{kind}"
    ids = ref["input_ids"]
    for revision, expected in ref[kind]["revisions"].items():
        model = AutoModelForCausalLM.from_pretrained(repo, revision=revision, trust_remote_code=True).eval()
        with torch.no_grad():
            logits = model(ids).logits
        assert torch.allclose(logits, expected, atol=1e-4), (kind, revision)
        assert (
            AutoTokenizer.from_pretrained(repo, revision=revision, trust_remote_code=True)("a")["input_ids"][
                0
            ]
            == BOS
        )
        proc = AutoProcessor.from_pretrained(repo, revision=revision, trust_remote_code=True)
        assert type(proc).__name__ == "BabyLMProcessor"
    early, final = ref[kind]["revisions"]["chck_1M"], ref[kind]["revisions"]["main"]
    assert not torch.allclose(early, final, atol=1e-3)


def check_sentence_logprob(kind: str, folder: Path) -> float:
    """A whole-sentence log-probability as the zero-shot tasks compute it (offsets select the
    scored tokens, inputs = tokens[:-1], targets = tokens[1:]) equals a direct forward pass over
    `</s> words`, and the first word is among the scored tokens."""
    proc = AutoProcessor.from_pretrained(folder, trust_remote_code=True)  # OPT: its tokenizer
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    encoding = proc(text=SENTENCE, return_offsets_mapping=True)
    tokens = torch.tensor(encoding["input_ids"])
    scored = torch.tensor([end > 0 for _, end in encoding["offset_mapping"]])  # the whole sentence
    with torch.no_grad():
        logits = model(input_ids=tokens[None, :-1], attention_mask=torch.ones(1, len(tokens) - 1)).logits[0]
    logprobs = F.log_softmax(logits, -1).gather(-1, tokens[1:, None])[:, 0]
    via_offsets = float((logprobs * scored[1:]).sum())
    words = getattr(proc, "tokenizer", proc)(SENTENCE, add_special_tokens=False)["input_ids"]
    assert int(scored[1:].sum()) == len(words) and bool(scored[1]), "the first word must be scored"
    direct = 0.0
    with torch.no_grad():
        full = F.log_softmax(model(torch.tensor([[BOS, *words]])).logits[0], -1)
    for i, word in enumerate(words):
        direct += float(full[i, word])
    assert abs(via_offsets - direct) < 1e-4, (kind, via_offsets, direct)
    return round(direct, 4)


def check_all(kind: str, exports: Path, ref: dict) -> dict:
    """Every check above for one exported kind; returns what the summary prints."""
    folder = exports / kind
    check_encoding(folder)
    if kind == "roberta":
        return {}
    summary = {"sentence_logprob": check_sentence_logprob(kind, folder)}
    if kind in ("flamingo", "git"):
        images = [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in ref["images"]]
        check_processor(kind, folder, images)
        check_auto_model(kind, folder, ref[kind]["pixel_values"])
        summary["take_final"] = check_take_final_classifier(kind, folder)
        check_revisions(kind, exports, ref)
    return summary
