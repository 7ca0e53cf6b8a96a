"""The frozen vision encoder: loading one by name or path, a tiny random one for tests and demos,
and on-device normalisation of the uint8 images the loaders emit."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoImageProcessor, AutoModel, ViTConfig, ViTModel
from transformers.image_utils import PILImageResampling

from ..losses import unwrap_model
from .modeling_babylm_common import DINO_MEAN, DINO_STD

try:  # transformers 5 splits the PIL and torchvision backends; the PIL one needs no torchvision.
    from transformers import ViTImageProcessorPil as _ViTImageProcessor
except ImportError:  # pragma: no cover - transformers 4
    from transformers import ViTImageProcessor as _ViTImageProcessor


def load_vision_encoder(name_or_path: str | Path) -> tuple[nn.Module, object]:
    """Load a Hugging Face vision backbone and its image processor from the same place.

    Returns the encoder frozen (no gradients) and in eval mode. A ViT is loaded without its pooler,
    which neither model reads (facebook/dino-vitb16 ships none).
    """
    name = str(name_or_path)
    config = AutoConfig.from_pretrained(name)
    if config.model_type == "vit":
        encoder = ViTModel.from_pretrained(name, add_pooling_layer=False)
    else:
        encoder = AutoModel.from_pretrained(name)
    encoder.requires_grad_(False)
    encoder.eval()
    return encoder, AutoImageProcessor.from_pretrained(name)


def make_tiny_vit(
    out_dir: str | Path,
    image_size: int = 224,
    patch_size: int = 16,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
) -> str:
    """Save a small random `ViTModel` and a DINO-like image processor (facebook/dino-vitb16's mean/std 0.5, bilinear
    resize to `image_size`) to `out_dir`, loadable like facebook/dino-vitb16; returns the path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = ViTConfig(
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=hidden_size * 2,
        image_size=image_size,
        patch_size=patch_size,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ViTModel(config, add_pooling_layer=False).save_pretrained(out)
    processor = _ViTImageProcessor(
        do_resize=True,
        size={"height": image_size, "width": image_size},
        resample=PILImageResampling.BILINEAR,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(DINO_MEAN),
        image_std=list(DINO_STD),
    )
    processor.save_pretrained(out)
    return str(out)


def image_spec(source: object) -> tuple[list[float], list[float], int, float]:
    """(mean, std, size, rescale factor) from an image processor or a BabyLM multimodal model."""
    source = unwrap_model(source) if isinstance(source, nn.Module) else source
    mean, std = getattr(source, "image_mean", None), getattr(source, "image_std", None)
    if mean is None or std is None:
        raise TypeError(f"{type(source).__name__} says nothing about image mean/std")
    size = getattr(source, "image_size", None)
    if size is None:  # image processors keep a size dict: {"height", "width"} or {"shortest_edge"}
        size_dict = source.size
        size = size_dict.get("height") or size_dict.get("shortest_edge")
    return list(mean), list(std), int(size), float(getattr(source, "rescale_factor", 1 / 255))


def normalize_images(
    pixels: torch.Tensor, image_processor_or_model: object, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Turn uint8 images (B, 3, H, W) or (B, T, 3, H, W) into the encoder's normalised input.

    Runs on the tensor's device: scale by 1/255, subtract the mean, divide by the std. Images not
    already at the encoder's size are resized (bilinear, antialiased, like the PIL processor).
    """
    mean, std, size, scale = image_spec(image_processor_or_model)
    lead = pixels.shape[:-3]
    x = pixels.reshape(-1, *pixels.shape[-3:]).to(torch.float32)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean_t = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    x = (x * scale - mean_t) / std_t
    return x.reshape(*lead, *x.shape[-3:]).to(dtype)
