"""Exports as the BabyLM 2025 evaluation uses them: the processor takes text as transformers'
processors do, AutoModel gives the decoder without its head, the tokenizer encodes `</s> text`
(every word scored), and folders are readable by others. (In the clean venvs of
`make test-export-compat` the same calls run once more on transformers 4.51.3, 4.56.2 and 5.x.)"""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoModelForCausalLM, AutoProcessor, AutoTokenizer

from babylm.train.export import export_model
from babylm.train.models import make_tiny_vit
from tests.train.models.helpers import open_gates, tiny_model, uint8_images

# Each module fixture exports four tiny models (~5-10 s with the loads that follow).
pytestmark = pytest.mark.slow

SENTENCE = "a red circle above a blue square."
KINDS = ("flamingo", "git", "opt", "roberta")


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tiny_tokenizer_dir):
    work = tmp_path_factory.mktemp("export2025")
    vit = make_tiny_vit(work / "vit")
    image_id = AutoTokenizer.from_pretrained(tiny_tokenizer_dir).convert_tokens_to_ids("<image>")
    models = {}
    for kind in KINDS:
        models[kind] = tiny_model(kind, vit, image_id, seed=len(kind))
        if kind == "flamingo":
            open_gates(models[kind], 0.7)
        export_model(models[kind], kind, work / kind, tiny_tokenizer_dir)
    return {"work": work, "models": models, "tokenizer_dir": tiny_tokenizer_dir}


def _images(n: int = 2) -> list:
    from PIL import Image

    return [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in uint8_images(n, seed=3)]


@pytest.mark.parametrize("kind", KINDS)
def test_tokenizer_prepends_bos_and_appends_nothing(exports, kind):
    trained = AutoTokenizer.from_pretrained(exports["tokenizer_dir"])
    exported = AutoTokenizer.from_pretrained(exports["work"] / kind, trust_remote_code=True)
    words = trained(SENTENCE, add_special_tokens=False)["input_ids"]
    # Training encodes `words </s>` and packs each line after the previous one's `</s>`; the
    # training tokenizer stays as it was (prep output does not change), the export evaluates `</s> words`.
    assert trained(SENTENCE)["input_ids"] == [*words, trained.eos_token_id]
    assert exported(SENTENCE)["input_ids"] == [exported.bos_token_id, *words]
    assert exported.bos_token == exported.eos_token == "</s>"
    assert exported(["a b", "c"], padding=True)["input_ids"][1][0] == exported.bos_token_id


@pytest.mark.parametrize("kind", ["flamingo", "git", "opt"])
def test_every_word_is_scored_and_the_last_position_predicts_the_next_word(exports, kind):
    folder = exports["work"] / kind
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    encoding = processor(text=SENTENCE, return_offsets_mapping=True)
    tokens = torch.tensor(encoding["input_ids"])
    # As the zero-shot tasks: the tokens overlapping the sentence are scored, each from the one before.
    scored = torch.tensor([end > 0 for _, end in encoding["offset_mapping"]])[1:]
    with torch.no_grad():
        logprobs = F.log_softmax(model(tokens[None, :-1]).logits[0], -1).gather(-1, tokens[1:, None])[:, 0]
        words = tokens[1:]
        direct = F.log_softmax(model(torch.cat([tokens[:1], words])[None]).logits[0], -1)
    assert bool(scored.all()) and len(scored) == len(words)  # the first word too
    expected = sum(float(direct[i, w]) for i, w in enumerate(words.tolist()))
    assert float((logprobs * scored).sum()) == pytest.approx(expected, abs=1e-4)
    # Reading: the last position of `processor(context)` is the distribution of the next word.
    with torch.no_grad():
        last = model(**processor(SENTENCE[:-1], return_tensors="pt")).logits[0, -1]
    torch.testing.assert_close(last, model(tokens[None, :-1]).logits[0, -1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["flamingo", "git"])
def test_processor_takes_text_as_transformers_processors_do(exports, kind):
    processor = AutoProcessor.from_pretrained(exports["work"] / kind, trust_remote_code=True)
    tokenizer = processor.tokenizer
    expected = tokenizer(SENTENCE)["input_ids"]
    assert processor(SENTENCE)["input_ids"] == processor(text=SENTENCE)["input_ids"] == expected
    batch = processor(["a b", SENTENCE], padding=True, return_tensors="pt")
    assert batch["input_ids"].shape == (2, len(expected)) and batch["attention_mask"][0, -1] == 0
    offsets = processor(text=SENTENCE, return_offsets_mapping=True)["offset_mapping"]
    assert offsets[0] == (0, 0) and offsets[-1][1] == len(SENTENCE) and len(offsets) == len(expected)
    # Every tokenizer keyword reaches the tokenizer.
    assert processor(SENTENCE, add_special_tokens=False)["input_ids"] == expected[1:]
    assert len(processor(SENTENCE, truncation=True, max_length=4)["input_ids"]) == 4
    left = processor(["a b", SENTENCE], padding_side="left", return_tensors="pt")
    assert left["attention_mask"][0, 0] == 0 and left["attention_mask"][0, -1] == 1
    assert "attention_mask" not in processor(SENTENCE, return_attention_mask=False)
    assert processor(SENTENCE, return_special_tokens_mask=True)["special_tokens_mask"][:2] == [1, 0]
    assert processor(SENTENCE, text_kwargs={"max_length": 2, "truncation": True})["input_ids"] == expected[:2]
    pair = processor([("a b", "c")], return_token_type_ids=False)
    assert "token_type_ids" not in pair and pair["input_ids"][0].count(tokenizer.bos_token_id) == 2


@pytest.mark.parametrize("kind", ["flamingo", "git"])
def test_processor_takes_images_positional_or_by_keyword(exports, kind):
    processor = AutoProcessor.from_pretrained(exports["work"] / kind, trust_remote_code=True)
    images = _images()
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    assert pixels.shape[:2] == (2, 3)
    torch.testing.assert_close(processor(images, return_tensors="pt")["pixel_values"], pixels)
    both = processor(images, ["a b", "c"], return_tensors="pt")
    swapped = processor(["a b", "c"], images, return_tensors="pt")
    assert sorted(both) == ["attention_mask", "input_ids", "pixel_values", "token_type_ids"]
    assert torch.equal(both["input_ids"], swapped["input_ids"])
    torch.testing.assert_close(swapped["pixel_values"], pixels)
    # An image keyword goes to the image processor, not the tokenizer.
    assert processor(images=images, do_normalize=False, return_tensors="pt")["pixel_values"].min() >= 0
    with pytest.raises(ValueError, match="images, text or both"):
        processor()


def test_image_token_where_the_model_has_one(exports):
    flamingo = AutoProcessor.from_pretrained(exports["work"] / "flamingo", trust_remote_code=True)
    assert flamingo.image_token == flamingo.tokenizer.image_token == "<image>"
    assert flamingo.tokenizer.image_token_id == exports["models"]["flamingo"].config.media_token_id
    # The 2025 image template "{image_token}{text}" gives what training saw ("<image> text").
    templated = flamingo(text="<image>" + "a red circle")["input_ids"]
    assert templated == flamingo(text="<image> a red circle")["input_ids"]
    git = AutoProcessor.from_pretrained(exports["work"] / "git", trust_remote_code=True)
    assert git.image_token is None and git.tokenizer.image_token is None  # the image goes first


class _Captured(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.mark.parametrize("kind", ["flamingo", "git"])
def test_auto_model_is_the_decoder_without_its_head(exports, kind):
    folder = exports["work"] / kind
    config = json.loads((folder / "config.json").read_text())
    prefix = {"flamingo": "BabyLMFlamingo", "git": "BabyLMGit"}[kind]
    assert config["auto_map"]["AutoModel"] == f"modeling_babylm_{kind}.{prefix}DecoderModel"
    captured = _Captured()
    logging.getLogger("transformers").addHandler(captured)  # transformers does not propagate
    try:
        model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    finally:
        logging.getLogger("transformers").removeHandler(captured)
    assert not [m for m in captured.messages if "initialized" in m or "not used" in m], captured.messages
    assert type(model).__name__ == f"{prefix}DecoderModel"
    assert not any(p.requires_grad for p in model.vision_encoder.parameters())
    lm = exports["models"][kind]
    ids = torch.tensor([[1, 5, 6, 7, 8]])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True)
        reference = lm(ids, output_hidden_states=True).hidden_states
        pixels = AutoProcessor.from_pretrained(folder, trust_remote_code=True)(
            images=_images(1), return_tensors="pt"
        )
        with_image = model(input_ids=ids, **pixels).last_hidden_state
    assert "logits" not in out and len(out.hidden_states) == len(reference)
    torch.testing.assert_close(out.last_hidden_state, reference[-1], rtol=1e-5, atol=1e-5)
    assert float((with_image[:, -5:] - out.last_hidden_state).abs().max()) > 1e-4  # the image reaches it


def _umask(mask: int) -> int:
    return os.umask(mask)


@pytest.mark.parametrize(
    ("umask", "folder_mode", "file_mode"), [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)]
)
def test_folders_and_files_are_readable_as_the_umask_allows(exports, tmp_path, umask, folder_mode, file_mode):
    previous = _umask(umask)
    try:
        out = export_model(exports["models"]["git"], "git", tmp_path / "git", exports["tokenizer_dir"])
    finally:
        _umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == folder_mode
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {file_mode}
    assert "model.safetensors" in {p.name for p in files}


def test_a_folder_name_with_a_dot_is_warned_about(exports, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="babylm.train.export"):
        export_model(exports["models"]["git"], "git", tmp_path / "git.v1", exports["tokenizer_dir"])
    assert "transformers 4.x" in caplog.text and "git_v1" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="babylm.train.export"):
        export_model(exports["models"]["git"], "git", tmp_path / "git_v1", exports["tokenizer_dir"])
        export_model(exports["models"]["opt"], "opt", tmp_path / "opt.v1", exports["tokenizer_dir"])
    assert caplog.text == ""  # no remote code in a stock OPT folder
