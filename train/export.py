"""Write a trained model as a Hugging Face folder the BabyLM evaluation pipeline can load.

Flamingo and GIT are saved with their own `model_type` and `auto_map`, next to copies of their
self-contained modeling/configuration files and a processor, so that
`AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)`, `AutoTokenizer` and
`AutoProcessor` load them where babylm-pipeline is not installed, on every transformers release
from 4.46 to the newest 5.x; `AutoModelForSequenceClassification` gives the GLUE fine-tuning class
and `AutoModel` the decoder without its head (the 2025 fine-tuning). The exported tokenizer encodes
`</s> text` (see `_prepend_bos`); the folder is readable as the umask allows.
OPT and RoBERTa are plain transformers models and are saved as such.

A folder is written under a temporary name next to `out_dir` and renamed when complete, so a
failed export leaves nothing behind, and an existing non-empty `out_dir` is refused.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
import transformers
from tokenizers import Tokenizer, processors
from transformers import AutoImageProcessor, AutoTokenizer

from babylm.shards.atomic import atomic_folder

from .errors import TrainError
from .kinds import ModelKind, kind_of
from .losses import unwrap_model
from .models import model_class
from .models.processing_babylm import BabyLMProcessor
from .models.vision import _ViTImageProcessor

_MODELS_DIR = Path(__file__).resolve().parent / "models"
_COMMON_FILES = (
    "configuration_babylm_common.py",
    "modeling_babylm_common.py",
    "modeling_babylm_layers.py",
    "processing_babylm.py",
)
# The Auto classes the BabyLM evaluation uses (lm_eval, DevBench: CausalLM; GLUE: SequenceClassification;
# the 2025 fine-tuning: AutoModel, the decoder without its head).
_AUTO_CLASSES = {
    "AutoModel": "DecoderModel",
    "AutoModelForCausalLM": "ForCausalLM",
    "AutoModelForSequenceClassification": "ForSequenceClassification",
}
log = logging.getLogger(__name__)
# Keys transformers writes that describe the exporting machine, not the tokenizer.
_MACHINE_KEYS = (
    "is_local",
    "local_files_only",
    "cache_dir",
    "token",
    "use_auth_token",
    "_commit_hash",
    "name_or_path",
)


class ExportError(TrainError, ValueError):
    """An export that cannot be written as asked (the message names the path and the reason)."""


def export_model(
    model: torch.nn.Module,
    kind: str,
    out_dir: str | Path,
    tokenizer_dir_or_obj: Any,
    image_processor: Any = None,
) -> Path:
    """Write `model` (a `build_model` model, possibly DDP-wrapped) of `kind` to `out_dir`.

    The folder holds safetensors weights (the frozen vision encoder included, so it works
    standalone), config.json, the tokenizer, and for Flamingo/GIT the remote-code files and a
    processor (`processor_config.json`, `preprocessor_config.json`). `image_processor` defaults to
    the one the model was built with. `out_dir` must be absent or empty (ExportError otherwise);
    it appears only once complete. Returns the folder.
    """
    spec = kind_of(kind)
    model = unwrap_model(model)
    out = Path(out_dir)
    if not isinstance(model, model_class(spec.name)):
        # a `noimg` run exports as the GIT it is
        raise ExportError(f"{out}: the model is a {type(model).__name__}, not a {spec.architecture} model")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out}: exists and is not an empty folder; export to a new one")
    tokenizer = _load_tokenizer(tokenizer_dir_or_obj)
    _check_tokenizer(model, spec, tokenizer)
    out.parent.mkdir(parents=True, exist_ok=True)
    if spec.remote_code is not None and "." in out.name:
        log.warning(
            "%s: a folder name with '.' cannot load its remote code on transformers 4.x "
            "(No module named 'transformers_modules.%s'), which the BabyLM fine-tuning needs; "
            "rename it (e.g. %s) or load it as ORG/NAME from a hub cache (--revisions)",
            out,
            out.name.split(".")[0],
            out.name.replace(".", "_"),
        )
    remove_stale_partials(out)
    with atomic_folder(out, prefix=f".{out.name}.{os.getpid()}.", suffix=".partial") as tmp:
        _write_folder(model, spec, tmp, tokenizer, image_processor)
        _make_readable(tmp)
    return out


def remove_stale_partials(out: Path) -> None:
    """Delete the `.partial` folders of exports to `out` that were killed: their process (its id
    is in the name) is gone. A live export's folder is left alone."""
    for tmp in out.parent.glob(f".{glob.escape(out.name)}.*.partial"):
        pid = tmp.name[len(out.name) + 2 :].split(".", 1)[0]
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def export_checkpoint(
    checkpoint: str | Path, out_dir: str | Path, tokenizer: Any = None, kind: str | None = None
) -> Path:
    """Export a checkpoint folder, or a run folder's newest checkpoint, to `out_dir`.

    `tokenizer` defaults to the one the run trained with; `kind`, when given, must be the
    checkpoint's. Errors name the path: no checkpoint there, a checkpoint of another kind, or
    weights that do not fit the kind it records.
    """
    from .checkpoint import load_model, resolve_checkpoint

    try:
        path = resolve_checkpoint(checkpoint)
    except FileNotFoundError as err:
        raise ExportError(str(err)) from None
    try:
        model, found_kind, cfg = load_model(path)
    except (RuntimeError, KeyError, ValueError, OSError) as err:
        raise ExportError(f"{path}: not a loadable model checkpoint ({type(err).__name__}: {err})") from None
    if kind is not None and kind_of(kind).architecture != kind_of(found_kind).architecture:
        raise ExportError(f"{path}: a {found_kind} checkpoint, not {kind}")
    return export_model(model, found_kind, out_dir, tokenizer or cfg["tokenizer"])


def _write_folder(
    model: torch.nn.Module, spec: ModelKind, out: Path, tokenizer: Any, image_processor: Any
) -> None:
    """Remote-code kinds: the model, its code files and a processor; the others: the stock
    transformers class. Then the tokenizer, made portable."""
    if spec.remote_code is not None:
        _save_remote_code_model(model, spec, out)
        image_processor = image_processor or _default_image_processor(model)
        # The token that places an image in a prompt; GIT has none (its image always goes first).
        image_token = spec.image_token
        BabyLMProcessor(image_processor, tokenizer, image_token=image_token).save_pretrained(out)
        # AutoImageProcessor reads preprocessor_config.json on every release; the processor's own
        # file then only names the class (see _register_processor).
        image_processor.save_pretrained(out)
        _register_processor(out, image_token)
    else:
        stock = getattr(transformers, spec.stock_class)(model.config)
        stock.load_state_dict(model.state_dict())
        stock.save_pretrained(out)
        tokenizer.save_pretrained(out)
    bos = tokenizer.convert_ids_to_tokens(model.config.bos_token_id)
    _make_tokenizer_portable(out, bos)
    _prepend_bos(out, tokenizer, bos)
    _drop_machine_paths(out / "config.json")


def _load_tokenizer(tokenizer_dir_or_obj: Any) -> Any:
    if isinstance(tokenizer_dir_or_obj, (str, Path)):
        return AutoTokenizer.from_pretrained(str(tokenizer_dir_or_obj))
    return tokenizer_dir_or_obj


def _check_tokenizer(model: torch.nn.Module, spec: ModelKind, tokenizer: Any) -> None:
    """Catch a tokenizer that does not match the model before writing a broken folder."""
    if len(tokenizer) > model.config.vocab_size:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens, the model only {model.config.vocab_size}")
    if spec.image_token is not None:
        image_id = tokenizer.convert_tokens_to_ids(spec.image_token)
        if image_id != model.config.media_token_id:
            raise ValueError(
                f"tokenizer's {spec.image_token} is id {image_id}, the model's media token "
                f"{model.config.media_token_id}"
            )


def _save_remote_code_model(model: torch.nn.Module, spec: ModelKind, out: Path) -> None:
    code = spec.remote_code
    config_module, config_class, modeling_module, prefix = (
        code.config_module,
        code.config_class,
        code.modeling_module,
        code.class_prefix,
    )
    # Our own model_type plus auto_map: transformers then runs the copied files, never its GIT/OPT.
    auto_map = {"AutoConfig": f"{config_module}.{config_class}"}
    auto_map |= {auto: f"{modeling_module}.{prefix}{suffix}" for auto, suffix in _AUTO_CLASSES.items()}
    model.config.auto_map = auto_map
    model.config.architectures = [f"{prefix}ForCausalLM"]
    model.save_pretrained(out, safe_serialization=True)
    for name in (f"{config_module}.py", f"{modeling_module}.py", *_COMMON_FILES, *code.extra_files):
        shutil.copyfile(_MODELS_DIR / name, out / name)


def _default_image_processor(model: torch.nn.Module) -> Any:
    """The processor the model was built with, else the encoder's own, else a DINO-like one."""
    processor = getattr(model, "babylm_image_processor", None)
    if processor is not None:
        return processor
    source = getattr(model, "babylm_build_args", {}).get("vision_encoder")
    if source:
        try:
            return AutoImageProcessor.from_pretrained(source)
        except OSError:  # the encoder's folder is gone: rebuild from what the config recorded
            pass
    size = model.image_size
    return _ViTImageProcessor(
        do_resize=True,
        size={"height": size, "width": size},
        resample=2,  # bilinear, as DINO's processor
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=model.image_mean,
        image_std=model.image_std,
    )


def _register_processor(out: Path, image_token: str | None) -> None:
    """Point AutoProcessor at the shipped processor class (needs trust_remote_code).

    processor_config.json keeps only the class: transformers 5 nests the image processor there,
    and 4.x passes every key of that file to the processor's __init__, where a nested
    `image_processor` collides with the loaded one ("got multiple values for argument").
    Both lines load the image processor from preprocessor_config.json instead. `image_token`
    reaches the processor's __init__ from there on both.
    """
    entry = {
        "processor_class": "BabyLMProcessor",
        "auto_map": {"AutoProcessor": "processing_babylm.BabyLMProcessor"},
    }
    _write_json(out / "processor_config.json", {**entry, "image_token": image_token})
    path = out / "preprocessor_config.json"
    _write_json(path, {**json.loads(path.read_text()), **entry})


def _make_tokenizer_portable(out: Path, bos_token: str) -> None:
    """A tokenizer_config.json that loads the same on 4.x and 5.x, without the exporting
    machine's keys, and with `bos_token`: the token the model was trained to see before a text.

    transformers 5 writes `TokenizersBackend` (a class 4.x lacks; the fast tokenizer class loads
    the same tokenizer.json in both) and the added specials as an `extra_special_tokens` list
    (4.x reads that key as a dict of named tokens and fails; `additional_special_tokens` is the
    name both read).
    """
    path = out / "tokenizer_config.json"
    data = json.loads(path.read_text())
    if data.get("tokenizer_class") == "TokenizersBackend":
        data["tokenizer_class"] = "PreTrainedTokenizerFast"
    if isinstance(data.get("extra_special_tokens"), list):
        data["additional_special_tokens"] = data.pop("extra_special_tokens")
    for key in _MACHINE_KEYS:
        data.pop(key, None)
    data["bos_token"] = bos_token
    _write_json(path, data)


def _prepend_bos(out: Path, tokenizer: Any, bos_token: str) -> None:
    """Encode for evaluation as the model saw text in training: `</s> text`, nothing appended.

    A training tokenizer that appends `</s>` to every line (ours, and the original's) packs each
    line right after the previous one's `</s>`; evaluation scores single sentences, so the exported
    tokenizer puts that `</s>` in front instead (as OPT's tokenizer prepends its BOS): every word of
    a scored sentence is then scored in context, and the last position predicts the next word.
    Other tokenizers (OPT's and RoBERTa's for the 2023 settings) are left as they are.
    """
    path = out / "tokenizer.json"
    eos_id = tokenizer.eos_token_id
    if not path.exists() or eos_id is None or tokenizer.convert_ids_to_tokens(eos_id) != bos_token:
        return
    backend = Tokenizer.from_file(str(path))
    plain = backend.encode("a b", add_special_tokens=False).ids
    if backend.encode("a b").ids != [*plain, eos_id]:
        return
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos_token} $A",
        pair=f"{bos_token} $A {bos_token} $B:1",
        special_tokens=[(bos_token, eos_id)],
    )
    backend.save(str(path))


def _make_readable(folder: Path) -> None:
    """Folders 0777 and files 0666 less the umask (0755 / 0644 usually), as `mkdir` and `open`
    would make them: `mkdtemp` and some writers create 0700 / 0600, which colleagues cannot read."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _drop_machine_paths(path: Path) -> None:
    """Remove `_name_or_path` (a folder on the exporting machine) from config.json, nested ones too."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k != "_name_or_path"}
        return value

    _write_json(path, clean(json.loads(path.read_text())))


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
