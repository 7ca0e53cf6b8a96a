"""The vision encoder: loading by path, the tiny random ViT, on-device normalisation."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from transformers import ViTModel

from babylm.train.models import load_vision_encoder, make_tiny_vit, normalize_images
from tests.train.models.helpers import uint8_images


def test_tiny_vit_loads_like_a_hub_vit(tiny_vit_dir):
    encoder, processor = load_vision_encoder(tiny_vit_dir)
    assert isinstance(encoder, ViTModel) and encoder.pooler is None
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    # facebook/dino-vitb16's processor: mean and std 0.5 (not ImageNet's), bilinear resize to 224.
    assert list(processor.image_mean) == [0.5, 0.5, 0.5]
    assert list(processor.image_std) == [0.5, 0.5, 0.5]
    assert int(processor.resample) == 2 and processor.size["height"] == 224
    with torch.no_grad():
        tokens = encoder(pixel_values=torch.zeros(2, 3, 224, 224)).last_hidden_state
    assert tokens.shape == (2, 197, 64)


def test_tiny_vit_is_deterministic_and_sized(tmp_path):
    a = make_tiny_vit(tmp_path / "a", image_size=32, patch_size=16)
    b = make_tiny_vit(tmp_path / "b", image_size=32, patch_size=16)
    ea, eb = load_vision_encoder(a)[0], load_vision_encoder(b)[0]
    assert all(
        torch.equal(x, y) for x, y in zip(ea.state_dict().values(), eb.state_dict().values(), strict=True)
    )
    assert ea.config.image_size == 32 and ea.config.hidden_size == 64


def test_normalize_matches_the_image_processor(tiny_vit_dir):
    _, processor = load_vision_encoder(tiny_vit_dir)
    pixels = uint8_images(3, seed=0)
    pil = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in pixels]
    expected = processor(pil, return_tensors="pt")["pixel_values"]
    got = normalize_images(pixels, processor)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # (B, T, 3, H, W) keeps its shape; bf16 output on request.
    five = normalize_images(pixels[None], processor, dtype=torch.bfloat16)
    assert five.shape == (1, 3, 3, 224, 224) and five.dtype == torch.bfloat16


def test_normalize_resizes_other_sizes_like_the_processor(tiny_vit_dir):
    _, processor = load_vision_encoder(tiny_vit_dir)
    rng = np.random.default_rng(0)
    # Smooth image: bilinear implementations differ in rounding only.
    base = rng.integers(0, 256, (3, 10, 10)).astype(np.float32)
    big = torch.nn.functional.interpolate(torch.from_numpy(base)[None], size=(448, 448), mode="bilinear")[0]
    pixels = big.round().clamp(0, 255).to(torch.uint8)
    expected = processor(Image.fromarray(pixels.permute(1, 2, 0).numpy()), return_tensors="pt")[
        "pixel_values"
    ]
    got = normalize_images(pixels[None], processor)
    assert got.shape == expected.shape == (1, 3, 224, 224)
    assert float((got - expected).abs().mean()) < 0.02
