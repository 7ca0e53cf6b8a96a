"""What a run is built from: the model of a config (seeded), the rank's loader (a `TrainLoader`),
the vision encoder to load. Errors a user can cause here are `SetupError`s."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from babylm.train.config import TrainConfig
from babylm.train.distributed import Dist
from babylm.train.errors import SetupError
from babylm.train.kinds import KINDS

if TYPE_CHECKING:
    from babylm.train.data.contract import TrainLoader

__all__ = ["SetupError", "build_data", "build_model_for", "check_inputs", "vision_encoder_path"]


def model_vocab_size(cfg: TrainConfig, tokenizer: Any) -> int:
    """--vocab-size, else len(tokenizer) + 8 spare rows (the original's 32778 for its 32770-token
    tokenizer); never fewer rows than the tokenizer has ids."""
    if cfg.vocab_size is None:
        return len(tokenizer) + 8
    if cfg.vocab_size < len(tokenizer):
        raise SetupError(
            f"--vocab-size {cfg.vocab_size} is smaller than --tokenizer {cfg.tokenizer} ({len(tokenizer)} tokens)"
        )
    return cfg.vocab_size


def check_setting_tokenizer(cfg: TrainConfig, tokenizer: Any) -> None:
    """A 2023 --setting needs the original's tokenizer (its size and whether lines start with BOS)."""
    wanted = KINDS[cfg.model].setting_tokenizer
    if not cfg.setting or wanted is None or cfg.override_setting:
        return
    what, size, bos = wanted.description, wanted.size, wanted.bos
    ids = tokenizer("a\n")["input_ids"]
    has_bos = bool(ids) and ids[0] == tokenizer.bos_token_id
    if len(tokenizer) != size or has_bos != bos:
        raise SetupError(
            f"--setting {cfg.setting} trains with {what} ({size} tokens, "
            f"{'a' if bos else 'no'} BOS per line); --tokenizer {cfg.tokenizer} has {len(tokenizer)} tokens "
            f"and {'a' if has_bos else 'no'} BOS; pass that tokenizer (a local save_pretrained copy, also to "
            "babylm-prep text), or --override-setting"
        )


def vision_encoder_path(cfg: TrainConfig, run_dir: Path, d: Dist) -> str:
    """The encoder to load; 'tiny-random' is built once by rank 0 under RUN_DIR/tiny_vit."""
    if cfg.vision_encoder != "tiny-random":
        return cfg.vision_encoder
    from babylm.train.models import make_tiny_vit

    path = run_dir / "tiny_vit"
    if d.rank == 0 and not (path / "config.json").exists():
        # Whole 224-pixel images (what prep stores), in 49 patches of 32 to stay cheap on a CPU.
        make_tiny_vit(path, image_size=224, patch_size=32)
    d.barrier()
    return str(path)


def build_model_for(cfg: TrainConfig, tokenizer: Any, vision: str | None) -> nn.Module:
    """The model of `cfg.model`, seeded; `noimg` is GIT's text decoder that never sees an image."""
    from babylm.train.models import build_model

    kind = KINDS[cfg.model]
    check_setting_tokenizer(cfg, tokenizer)
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    if kind.image_token and (image_id is None or image_id == tokenizer.unk_token_id):
        raise SetupError(f"{cfg.tokenizer}: {kind.name} needs an {kind.image_token} token in the tokenizer")
    overrides = {}
    if cfg.dropout is not None:
        overrides = dict.fromkeys(kind.dropout_fields, cfg.dropout)
    if kind.original_pad_row is not None and cfg.pad_row == "original":
        overrides["embedding_padding_idx"] = kind.original_pad_row
    torch.manual_seed(cfg.seed)
    model = build_model(
        kind.name,
        size=cfg.size,
        vocab_size=model_vocab_size(cfg, tokenizer),
        vision_encoder=vision,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        image_token_id=image_id if image_id is not None else 0,
        **overrides,
    )
    return model


def build_data(cfg: TrainConfig, tokenizer: Any, d: Dist, micro: int, image_size: int) -> TrainLoader:
    """The rank's loader (its `streams` name the batches); multimodal data is split by manifest
    kind into a paired loader."""
    from babylm.train.data import LoaderSpec, build_loader

    spec = LoaderSpec(
        batch_size=micro,
        workers=cfg.workers if cfg.multimodal else 0,
        seed=cfg.seed,
        seq_len=cfg.seq_len,
        chunking=cfg.chunking,
        max_caption_tokens=cfg.seq_len,
        image_prefix=KINDS[cfg.model].image_prefix,
        caption_loss=cfg.caption_loss,
        images=KINDS[cfg.model].images,
        image_size=image_size,
        pin_memory=d.device.type == "cuda",
        cache_dir=cfg.cache_dir,
        cache_bytes=int(cfg.cache_gb * 2**30),
        prefetch_batches=cfg.prefetch_batches,
    )
    topology = dict(world_size=d.world, rank=d.rank, tokenizer=tokenizer)
    if not cfg.multimodal:
        # Token chunks are cut in about a millisecond: a worker process would only add a copy.
        return build_loader(cfg.data, spec, kind="tokens", **topology)
    found = dataset_kinds(cfg)
    captions = [loc for loc, k in found.items() if k != "tokens"]
    texts = [loc for loc, k in found.items() if k == "tokens"]
    return build_loader(captions, spec, text_location=texts[0], **topology)


# A Hugging Face hub name: `name` or `org/name`, nothing that looks like a path.
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def _check_folder(value: str, option: str, what: str) -> None:
    """A local folder that must exist; hub names (`facebook/dino-vitb16`) pass through."""
    path = Path(value).expanduser()
    if path.is_dir() or (_HUB_NAME.fullmatch(value) and not path.exists()):
        return
    problem = "is a file, not a folder" if path.exists() else "no such folder"
    raise SetupError(f"{option} {value}: {problem}; pass {what}")


def dataset_kinds(cfg: TrainConfig) -> dict[str, str]:
    """Each --data location's dataset kind, checked against what `cfg.model` trains on."""
    from babylm.shards import ShardsError, open_dataset

    found = {}
    for loc in cfg.data:
        try:
            found[loc] = open_dataset(loc).kind
        except (FileNotFoundError, ShardsError) as e:
            raise SetupError(f"--data {loc}: {e}") from e
    got = ", ".join(f"{loc} ({k})" for loc, k in found.items())
    if cfg.multimodal:
        texts = [k for k in found.values() if k == "tokens"]
        if len(texts) != 1 or len(texts) == len(found):
            raise SetupError(
                f"{cfg.model} needs one or more image_text/features datasets and one tokens dataset "
                f"in --data; got {got}"
            )
    elif set(found.values()) != {"tokens"}:
        raise SetupError(f"{cfg.model} trains on tokens datasets (babylm-prep text) only; --data got {got}")
    return found


def check_inputs(cfg: TrainConfig) -> None:
    """Fail before any work when a path of `cfg` is missing or a dataset is of the wrong dataset kind."""
    _check_folder(cfg.tokenizer, "--tokenizer", "a tokenizer folder (babylm-prep tokenizer) or a hub name")
    if cfg.multimodal and cfg.vision_encoder != "tiny-random":
        _check_folder(cfg.vision_encoder, "--vision-encoder", "a ViT folder or a hub name")
    dataset_kinds(cfg)
