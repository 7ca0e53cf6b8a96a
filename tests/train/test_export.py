"""Exported folders work with the BabyLM 2024 evaluation pipeline's calls, in a Python where
babylm cannot be imported, and give the same logits as the model that was exported."""

from __future__ import annotations

import ast
import json
import sys

import pytest
import torch
from transformers import AutoTokenizer

from babylm.train import export as export_module
from babylm.train.checkpoint import CheckpointWriter
from babylm.train.export import ExportError, export_checkpoint, export_model
from babylm.train.models import make_tiny_vit, normalize_images
from tests.train.models.helpers import (
    IMAGE_TOKENS,
    last_json_line,
    open_gates,
    run_isolated,
    tiny_model,
    uint8_images,
)

# One module-scoped fixture exports four models and runs them in a fresh interpreter (~20-40 s).
pytestmark = pytest.mark.slow

KINDS = ("flamingo", "git", "opt", "roberta")
IDS = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 13, 14]])  # no <image>, as evaluation prompts
TEXTS = ["<image> the caption for this image is: a dog.", "<image> a red circle"]

# Runs in the isolated interpreter: everything the evaluation pipeline does with a model folder.
EVAL_SCRIPT = r"""
import json
import torch
from PIL import Image
from transformers import (AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSequenceClassification,
                          AutoProcessor, AutoTokenizer)

work = sys.argv[1]
inputs = torch.load(f"{work}/inputs.pt")
images = [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in inputs["images"]]
ids = inputs["input_ids"]
results = {"babylm_importable": BABYLM_IMPORTABLE}
for kind in ("flamingo", "git", "opt", "roberta"):
    folder = f"{work}/{kind}"
    r = results[kind] = {}
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    r["encoded"] = tok(inputs["texts"][0])["input_ids"]
    auto = AutoModelForMaskedLM if kind == "roberta" else AutoModelForCausalLM
    # As lm_eval's HFLM: dtype "auto", then eval() and tie_weights().
    model = auto.from_pretrained(folder, trust_remote_code=True, torch_dtype="auto")
    r["training"] = model.training
    model.eval()
    model.tie_weights()
    r["class"] = f"{type(model).__module__}.{type(model).__name__}"
    # GLUE fine-tuning: a sequence classifier of every kind, text only.
    clf = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2, trust_remote_code=True)
    clf_out = clf(ids, labels=torch.tensor([0, 1]))
    r["clf"] = (type(clf).__name__, tuple(clf_out.logits.shape), float(clf_out.loss))
    with torch.no_grad():
        r["text_logits"] = model(ids).logits
        if kind == "roberta":
            r["loss"] = float(model(ids, labels=ids).loss)
            continue
        gen_args = dict(max_new_tokens=4, min_new_tokens=4, do_sample=False, output_logits=True,
                        return_dict_in_generate=True)
        if kind == "opt":
            gen = model.generate(ids[:1], **gen_args)
        else:
            proc = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
            r["processor"] = type(proc).__name__
            pixel_values = proc(images=images, return_tensors="pt")["pixel_values"]
            r["pixel_values"] = pixel_values
            r["image_logits"] = model(ids, pixel_values=pixel_values).logits
            encoding = proc(images=images, text=inputs["texts"], return_tensors="pt")
            r["processor_keys"] = sorted(encoding.keys())
            encoding.pop("token_type_ids")  # DevBench does exactly this
            encoding["labels"] = encoding["input_ids"]
            out = model(**encoding, output_hidden_states=True)
            r["loss"], r["n_hidden"] = float(out["loss"]), len(out["hidden_states"])
            r["last_hidden_shape"] = tuple(out["hidden_states"][-1].shape)
            encoder = model.git.image_encoder if kind == "git" else model.model.decoder.img_encoder
            r["encoder"] = type(encoder).__name__
            r["encoder_frozen"] = not any(p.requires_grad for p in encoder.parameters())
            gen = model.generate(ids[:1], pixel_values=pixel_values[:1], **gen_args)
            if kind == "git":  # a caption from the image alone
                r["caption"] = model.generate(pixel_values=pixel_values[:1], max_new_tokens=4)
        r["gen_sequences"], r["gen_logits"] = gen.sequences, torch.stack(gen.logits, dim=1)
torch.save(results, f"{work}/results.pt")
print(json.dumps({"babylm_importable": BABYLM_IMPORTABLE}))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_tokenizer_dir):
    """Export tiny models of every kind, then run the evaluation calls on them in isolation."""
    work = tmp_path_factory.mktemp("export")
    vit = make_tiny_vit(work / "vit")
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    models = {}
    for kind in KINDS:
        models[kind] = tiny_model(kind, vit, image_id, seed=len(kind))
        if kind == "flamingo":
            open_gates(models[kind], 0.7)  # so that the image visibly reaches the text
        out = export_model(models[kind], kind, work / kind, tiny_tokenizer_dir)
        assert out == work / kind
    torch.save({"input_ids": IDS, "images": uint8_images(2, seed=9), "texts": TEXTS}, work / "inputs.pt")
    stdout = run_isolated(EVAL_SCRIPT, [str(work)], work)
    assert last_json_line(stdout) == {"babylm_importable": False}
    results = torch.load(work / "results.pt")
    return {"work": work, "models": models, "results": results, "tokenizer": tokenizer}


def test_evaluated_where_babylm_cannot_be_imported(exported):
    results = exported["results"]
    assert results["babylm_importable"] is False  # the isolated interpreter proved it
    # Flamingo and GIT ran from the copied remote code, the text models as stock transformers.
    assert results["flamingo"]["class"].startswith("transformers_modules.")
    assert results["flamingo"]["class"].endswith("modeling_babylm_flamingo.BabyLMFlamingoForCausalLM")
    assert results["git"]["class"].endswith("modeling_babylm_git.BabyLMGitForCausalLM")
    assert results["opt"]["class"] == "transformers.models.opt.modeling_opt.OPTForCausalLM"
    assert results["roberta"]["class"] == "transformers.models.roberta.modeling_roberta.RobertaForMaskedLM"
    assert not any(results[k]["training"] for k in KINDS)


@pytest.mark.parametrize("kind", ["flamingo", "git"])
def test_folder_layout_and_self_contained_code(exported, kind):
    folder = exported["work"] / kind
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == f"babylm_{kind}"  # not the built-in git/opt
    assert (
        config["auto_map"]["AutoModelForCausalLM"] == f"modeling_babylm_{kind}.{config['architectures'][0]}"
    )
    assert (folder / "model.safetensors").exists() and not (folder / "pytorch_model.bin").exists()
    processor_config = json.loads((folder / "processor_config.json").read_text())
    assert processor_config["processor_class"] == "BabyLMProcessor"
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_babylm.BabyLMProcessor"
    for source in folder.glob("*.py"):
        tree = ast.parse(source.read_text())
        imported = {
            a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
        }
        imported |= {
            n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0
        }
        # The standard library, torch and transformers: what any evaluation environment has.
        assert imported - set(sys.stdlib_module_names) <= {"torch", "transformers"}, (source.name, imported)


@pytest.mark.parametrize("kind", KINDS)
def test_logits_are_the_same_after_export(exported, kind):
    model, r = exported["models"][kind], exported["results"][kind]
    with torch.no_grad():
        torch.testing.assert_close(r["text_logits"], model(IDS).logits, rtol=1e-5, atol=1e-5)
        if kind in ("flamingo", "git"):
            ref = model(IDS, pixel_values=r["pixel_values"]).logits
            torch.testing.assert_close(r["image_logits"], ref, rtol=1e-5, atol=1e-5)
            assert float((r["image_logits"][:, -5:] - r["text_logits"]).abs().max()) > 1e-4  # image used


def test_positions_per_token(exported):
    flamingo, git = exported["results"]["flamingo"], exported["results"]["git"]
    assert flamingo["text_logits"].shape[:2] == flamingo["image_logits"].shape[:2] == (2, 5)
    assert git["text_logits"].shape[:2] == (2, 5)
    assert git["image_logits"].shape[:2] == (2, IMAGE_TOKENS + 5)  # image tokens first (test_git)


@pytest.mark.parametrize("kind", ["flamingo", "git"])
def test_processor_loss_hidden_states_and_encoder(exported, kind):
    r, model = exported["results"][kind], exported["models"][kind]
    assert r["processor"] == "BabyLMProcessor"
    assert r["processor_keys"] == ["attention_mask", "input_ids", "pixel_values", "token_type_ids"]
    # The exported processor and the trainer's on-device normalisation agree.
    torch.testing.assert_close(
        r["pixel_values"], normalize_images(uint8_images(2, seed=9), model), rtol=0, atol=1e-5
    )
    assert r["loss"] == pytest.approx(r["loss"]) and 0 < r["loss"] < 20
    n_layers = len(model.model.decoder.layers) if kind == "flamingo" else len(model.git.encoder.layer)
    assert r["n_hidden"] == n_layers + 1
    assert r["last_hidden_shape"][-1] == model.config.hidden_size
    assert r["encoder"] == "ViTModel" and r["encoder_frozen"]


@pytest.mark.parametrize("kind", ["flamingo", "git", "opt"])
def test_generate_matches_the_model(exported, kind):
    r, model = exported["results"][kind], exported["models"][kind]
    seq = r["gen_sequences"]
    assert seq.shape == (1, 5 + 4) and torch.equal(seq[:, :5], IDS[:1])
    extra = {"pixel_values": r["pixel_values"][:1]} if kind != "opt" else {}
    with torch.no_grad():
        full = model(seq, **extra).logits[:, -seq.shape[1] :]
    torch.testing.assert_close(r["gen_logits"], full[:, 4:-1], rtol=1e-4, atol=1e-4)
    if kind == "git":
        assert r["caption"].shape[0] == 1 and 2 <= r["caption"].shape[1] <= 5


def test_tokenizer_round_trips(exported):
    tokenizer = exported["tokenizer"]
    # The training tokenizer's tokens, with the `</s>` it appends put in front instead.
    expected = [tokenizer.eos_token_id, *tokenizer(TEXTS[0], add_special_tokens=False)["input_ids"]]
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    for kind in KINDS:
        assert exported["results"][kind]["encoded"] == expected
    assert expected[1] == image_id  # "<image>" stays one token


@pytest.mark.parametrize("kind", KINDS)
def test_sequence_classifiers_load_for_glue(exported, kind):
    name, shape, loss = exported["results"][kind]["clf"]
    prefix = {"flamingo": "BabyLMFlamingo", "git": "BabyLMGit", "opt": "OPT", "roberta": "Roberta"}[kind]
    assert name == f"{prefix}ForSequenceClassification"
    assert shape == (2, 2) and 0 < loss < 5


@pytest.mark.parametrize("kind", KINDS)
def test_folder_is_portable(exported, kind):
    folder = exported["work"] / kind
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    assert not {"is_local", "local_files_only", "name_or_path"} & tokenizer_config.keys()
    # Each training line follows the previous one's </s>: that is the bos evaluation prepends.
    assert tokenizer_config["bos_token"] == "</s>"
    assert "_name_or_path" not in (folder / "config.json").read_text()
    if kind in ("flamingo", "git"):
        config = json.loads((folder / "config.json").read_text())
        assert config["auto_map"]["AutoModelForSequenceClassification"].endswith("ForSequenceClassification")
        processor_config = json.loads((folder / "processor_config.json").read_text())
        assert "image_processor" not in processor_config  # 4.x would pass it to __init__ twice


def test_export_refuses_a_mismatched_tokenizer(exported, tmp_path):
    model = exported["models"]["flamingo"]
    model.config.media_token_id, saved = 7, model.config.media_token_id
    try:
        with pytest.raises(ValueError, match="<image>"):
            export_model(model, "flamingo", tmp_path / "bad", exported["tokenizer"])
    finally:
        model.config.media_token_id = saved
    with pytest.raises(ValueError, match="kind"):
        export_model(model, "gpt2", tmp_path / "bad2", exported["tokenizer"])


# ---- bad input: a clear error naming the path, nothing half-written ------------------------------
@pytest.fixture(scope="module")
def flamingo_run(tmp_path_factory, tiny_tokenizer_dir):
    """A run folder with one checkpoint of a tiny Flamingo, as the trainer writes it."""
    work = tmp_path_factory.mktemp("run")
    image_id = AutoTokenizer.from_pretrained(tiny_tokenizer_dir).convert_tokens_to_ids("<image>")
    model = tiny_model("flamingo", make_tiny_vit(work / "vit"), image_id)
    _write_checkpoint(work / "run", model, "flamingo", tiny_tokenizer_dir)
    return {"run": work / "run", "model": model, "tokenizer": tiny_tokenizer_dir}


def _write_checkpoint(run_dir, model, kind: str, tokenizer_dir) -> None:
    trainer_state = {
        "step": 1,
        "kind": kind,
        "config": json.dumps({"tokenizer": str(tokenizer_dir)}),
        "build_args": json.dumps(model.babylm_build_args),
        "model_config": model.config.to_json_string(),
    }
    writer = CheckpointWriter(run_dir, rank=0, world_size=1, keep=2, barrier=lambda: None)
    writer.save(1, 0, ["final"], trainer_state, model.state_dict(), rank_state={})


def _leftovers(parent) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.endswith(".partial"))


def test_export_checkpoint_of_a_run(flamingo_run, tmp_path):
    out = export_checkpoint(flamingo_run["run"], tmp_path / "hf")
    assert (out / "model.safetensors").exists() and (out / "modeling_babylm_layers.py").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export_checkpoint(flamingo_run["run"], empty) == empty  # an empty folder is fine
    assert _leftovers(tmp_path) == []


def test_run_folder_without_checkpoint(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(ExportError, match=str(run)):
        export_checkpoint(run, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_checkpoint_of_another_kind(flamingo_run, tmp_path):
    with pytest.raises(ExportError, match=r"a flamingo checkpoint, not git"):
        export_checkpoint(flamingo_run["run"], tmp_path / "hf", kind="git")
    # A checkpoint that records one kind and holds another's weights.
    mixed = tmp_path / "mixed"
    _write_checkpoint(mixed, flamingo_run["model"], "git", flamingo_run["tokenizer"])
    with pytest.raises(ExportError, match=f"{mixed}.*not a loadable model checkpoint"):
        export_checkpoint(mixed, tmp_path / "hf")
    with pytest.raises(ExportError, match="not a git model"):
        export_model(flamingo_run["model"], "git", tmp_path / "hf", flamingo_run["tokenizer"])
    assert not (tmp_path / "hf").exists() and _leftovers(tmp_path) == []


def test_non_empty_output_folder_is_refused(flamingo_run, tmp_path):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match=f"{out}: exists and is not an empty folder"):
        export_checkpoint(flamingo_run["run"], out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and _leftovers(tmp_path) == []


def test_a_failed_export_leaves_nothing(flamingo_run, tmp_path, monkeypatch):
    def fail(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(export_module, "_make_tokenizer_portable", fail)
    with pytest.raises(OSError, match="disk full"):
        export_model(flamingo_run["model"], "flamingo", tmp_path / "hf", flamingo_run["tokenizer"])
    assert list(tmp_path.iterdir()) == []
