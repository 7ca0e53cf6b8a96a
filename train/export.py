"""Write a trained model as a Hugging Face folder the BabyLM evaluation pipeline can load.

Flamingo and GIT are saved with their own `model_type` and `auto_map`, next to copies of their
self-contained modeling/configuration files and a processor, so that
`AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)`, `AutoTokenizer` and
`AutoProcessor` load them where babylm-pipeline is not installed. OPT and RoBERTa are plain
transformers models and are saved as such.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import AutoImageProcessor, AutoTokenizer, OPTForCausalLM, RobertaForMaskedLM

from .models import MULTIMODAL_KINDS, architecture
from .models.losses import unwrap_model
from .models.processing_babylm import BabyLMProcessor
from .models.vision import _ViTImageProcessor

_MODELS_DIR = Path(__file__).resolve().parent / "models"
_COMMON_FILES = (
    "configuration_babylm_common.py",
    "modeling_babylm_common.py",
    "modeling_babylm_layers.py",
    "processing_babylm.py",
)
_KIND_FILES = {"flamingo": ("modeling_babylm_perceiver.py",)}
# kind -> (configuration module, config class, modeling module, model class)
_REMOTE_CODE = {
    "flamingo": (
        "configuration_babylm_flamingo",
        "BabyLMFlamingoConfig",
        "modeling_babylm_flamingo",
        "BabyLMFlamingoForCausalLM",
    ),
    "git": ("configuration_babylm_git", "BabyLMGitConfig", "modeling_babylm_git", "BabyLMGitForCausalLM"),
}
_STOCK_CLASSES = {"opt": OPTForCausalLM, "roberta": RobertaForMaskedLM}


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
    the one the model was built with. Returns the folder.
    """
    kind = architecture(kind)  # a `noimg` run exports as the GIT it is
    model = unwrap_model(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _load_tokenizer(tokenizer_dir_or_obj)
    _check_tokenizer(model, kind, tokenizer)

    if kind in MULTIMODAL_KINDS:
        _save_remote_code_model(model, kind, out)
        image_processor = image_processor or _default_image_processor(model)
        BabyLMProcessor(image_processor, tokenizer).save_pretrained(out)
        # transformers 5 nests the image processor in processor_config.json; older releases and
        # AutoImageProcessor read preprocessor_config.json, so write that too.
        image_processor.save_pretrained(out)
        _register_processor(out)
    else:
        stock = _STOCK_CLASSES[kind](model.config)
        stock.load_state_dict(model.state_dict())
        stock.save_pretrained(out)
        tokenizer.save_pretrained(out)
    _make_tokenizer_portable(out)
    return out


def _load_tokenizer(tokenizer_dir_or_obj: Any) -> Any:
    if isinstance(tokenizer_dir_or_obj, (str, Path)):
        return AutoTokenizer.from_pretrained(str(tokenizer_dir_or_obj))
    return tokenizer_dir_or_obj


def _check_tokenizer(model: torch.nn.Module, kind: str, tokenizer: Any) -> None:
    """Catch a tokenizer that does not match the model before writing a broken folder."""
    if len(tokenizer) > model.config.vocab_size:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens, the model only {model.config.vocab_size}")
    if kind == "flamingo":
        image_id = tokenizer.convert_tokens_to_ids("<image>")
        if image_id != model.config.media_token_id:
            raise ValueError(
                f"tokenizer's <image> is id {image_id}, the model's media token {model.config.media_token_id}"
            )


def _save_remote_code_model(model: torch.nn.Module, kind: str, out: Path) -> None:
    config_module, config_class, modeling_module, model_class = _REMOTE_CODE[kind]
    # Our own model_type plus auto_map: transformers then runs the copied files, never its GIT/OPT.
    model.config.auto_map = {
        "AutoConfig": f"{config_module}.{config_class}",
        "AutoModelForCausalLM": f"{modeling_module}.{model_class}",
    }
    model.config.architectures = [model_class]
    model.save_pretrained(out, safe_serialization=True)
    for name in (f"{config_module}.py", f"{modeling_module}.py", *_COMMON_FILES, *_KIND_FILES.get(kind, ())):
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


def _register_processor(out: Path) -> None:
    """Point AutoProcessor at the shipped processor class (needs trust_remote_code)."""
    entry = {
        "processor_class": "BabyLMProcessor",
        "auto_map": {"AutoProcessor": "processing_babylm.BabyLMProcessor"},
    }
    for name in ("processor_config.json", "preprocessor_config.json"):
        path = out / name
        data = json.loads(path.read_text()) if path.exists() else {}
        data.update(entry)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _make_tokenizer_portable(out: Path) -> None:
    """transformers 5 writes `TokenizersBackend`, a class older releases lack; the fast tokenizer
    class name loads the same tokenizer.json in both."""
    path = out / "tokenizer_config.json"
    if path.exists():
        data = json.loads(path.read_text())
        if data.get("tokenizer_class") == "TokenizersBackend":
            data["tokenizer_class"] = "PreTrainedTokenizerFast"
            path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
