"""`babylm-train evaluate`: does the model use the picture?

On held-out image-caption shards it measures the caption loss with the right images and with the
images shuffled within each batch (same captions, same model). A model that looks at the image has a
clearly lower loss with the right ones. It also writes greedy captions beside their images (a
contact sheet PNG), the loss curves of the run, and `eval.json` with the figures.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from babylm.shards import CorruptSample, ShardsError, atomic_write_bytes, open_dataset, parse_sample
from babylm.shards.shard_reader import open_shard
from babylm.shards.sheet import render_contact_sheet
from babylm.train.checkpoint import load_model, resolve_checkpoint
from babylm.train.data import LoaderSpec, SampleCollate, load_tokenizer
from babylm.train.data.shard_files import read_options
from babylm.train.errors import MissingInput, TrainError
from babylm.train.kinds import KINDS, kind_of
from babylm.train.models import normalize_images, token_loss_sum

_READ_AT_ONCE = 64  # samples per read: one pass over the shard's index, not one call per sample


def _samples(location: str) -> Iterator[dict[str, Any]]:
    """The samples of a dataset in manifest order (held-out data needs no shuffling), read as the
    loader reads them (by the shard's index, each checked by its CRC-32C); a damaged one is left
    out, as in training."""
    ds = open_dataset(location)
    options = read_options(LoaderSpec())
    for entry in ds.manifest.shards:
        reader = open_shard(ds.shard_ref(entry), options)
        try:
            for first in range(0, entry.samples, _READ_AT_ONCE):
                numbers = list(range(first, min(first + _READ_AT_ONCE, entry.samples)))
                for data in reader.checked(numbers):
                    if isinstance(data, CorruptSample):
                        continue
                    try:
                        yield parse_sample(data, reader.ref.url)
                    except CorruptSample:
                        continue
        finally:
            reader.close()


def _raw_batches(location: str, batch_size: int, max_samples: int) -> Iterator[list[dict[str, Any]]]:
    """The first `max_samples` samples of a dataset, in batches."""
    batch: list[dict[str, Any]] = []
    for seen, sample in enumerate(_samples(location), 1):
        batch.append(sample)
        if len(batch) == batch_size:
            yield batch
            batch = []
        if seen >= max_samples:
            break
    if len(batch) > 1:  # shuffling needs two images
        yield batch


def _model_inputs(model: torch.nn.Module, batch: dict[str, Any], shuffle: bool) -> dict[str, Any]:
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
    if "pixel_values" in batch:
        pixels = normalize_images(batch["pixel_values"], model)
        inputs["pixel_values"] = pixels.roll(1, dims=0) if shuffle else pixels
    else:
        embeds = batch["image_embeds"]
        inputs["image_embeds"] = embeds.roll(1, dims=0) if shuffle else embeds
    return inputs


@torch.no_grad()
def caption_losses(
    model: torch.nn.Module, collate: SampleCollate, location: str, batch_size: int, max_samples: int
) -> dict[str, float]:
    """Mean per-token caption loss with matched and with shuffled images."""
    sums = {"matched": 0.0, "shuffled": 0.0}
    targets = 0
    samples = 0
    for raws in _raw_batches(location, batch_size, max_samples):
        batch, _bad = collate(raws)
        if len(batch.keys) < 2:
            continue
        for name in sums:
            loss_sum, n = token_loss_sum(
                model, _model_inputs(model, batch.inputs, shuffle=name == "shuffled")
            )
            sums[name] += float(loss_sum)
        targets += int(n)
        samples += len(batch.keys)
    if not targets:
        raise TrainError(
            f"{location}: no image-caption pairs to evaluate; pass an image_text or features dataset"
        )
    matched, shuffled = sums["matched"] / targets, sums["shuffled"] / targets
    return {
        "samples": samples,
        "target_tokens": targets,
        "matched_loss": matched,
        "shuffled_loss": shuffled,
        "image_gain": shuffled - matched,
        "matched_perplexity": math.exp(min(matched, 50)),
        "shuffled_perplexity": math.exp(min(shuffled, 50)),
    }


@torch.no_grad()
def greedy_captions(
    model: torch.nn.Module, kind: str, tokenizer: Any, collate: SampleCollate, location: str, count: int
) -> list[tuple[Image.Image, str]]:
    """(image, "true: ... / model: ...") for the first `count` held-out images."""
    raws = next(_raw_batches(location, count, count), [])
    batch, _ = collate(raws)
    prompt = kind_of(kind).image_token or tokenizer.eos_token
    prompt_ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    out = []
    for i, raw in enumerate(r for r in raws if r["__key__"] in batch.keys):
        extra = _model_inputs(model, {**batch.inputs, "labels": batch.inputs["input_ids"]}, shuffle=False)
        extra = {k: v[i : i + 1] for k, v in extra.items() if k in ("pixel_values", "image_embeds")}
        ids = model.generate(
            input_ids=prompt_ids,
            attention_mask=torch.ones_like(prompt_ids),
            max_new_tokens=24,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **extra,
        )
        text = tokenizer.decode(ids[0, prompt_ids.shape[1] :], skip_special_tokens=True).strip()
        image = Image.open(io.BytesIO(raw["jpg"])).convert("RGB") if "jpg" in raw else None
        out.append((image, f"true: {batch.captions[i]}\nmodel: {text}"))
    return out


def evaluate(
    checkpoint: str,
    data: str,
    out_dir: str | Path,
    tokenizer_path: str | None = None,
    batch_size: int = 32,
    max_samples: int = 1024,
    examples: int = 8,
) -> dict[str, Any]:
    """Write `out_dir/eval.json`, `captions.png` and (when the run has metrics) `loss.png`."""
    from babylm.train.metrics import plot

    ckpt = resolve_checkpoint(checkpoint, checkpoint)
    if ckpt is None:
        raise MissingInput(f"{checkpoint}: no complete checkpoint found")
    try:
        dataset_kind = open_dataset(data).kind
    except (FileNotFoundError, ShardsError) as e:
        raise MissingInput(f"--data {data}: {e}") from e
    if dataset_kind == "tokens":
        raise TrainError(
            f"--data {data} is a tokens dataset; pass image-caption shards (e.g. cc3m_validation)"
        )
    model, kind, config = load_model(ckpt)
    if not kind_of(kind).images:
        seeing = " or ".join(k.name for k in KINDS.values() if k.images)
        raise TrainError(f"{checkpoint}: evaluate needs a multimodal run ({seeing}), this one is {kind}")
    tokenizer = load_tokenizer(tokenizer_path or config["tokenizer"])
    spec = LoaderSpec(
        image_prefix=kind_of(kind).image_prefix,
        image_size=int(getattr(model, "image_size", 224)),
    )
    collate = SampleCollate(dataset_kind, tokenizer, spec)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = {"checkpoint": str(ckpt), "data": str(data), "model": kind}
    result.update(caption_losses(model, collate, data, batch_size, max_samples))
    items = greedy_captions(model, kind, tokenizer, collate, data, examples)
    render_contact_sheet(items, cols=4, text_lines=7).save(out / "captions.png")
    run_dir = ckpt.parent.parent
    if (run_dir / "metrics.jsonl").exists():
        plot(run_dir, out / "loss.png")
    atomic_write_bytes(out / "eval.json", (json.dumps(result, indent=2) + "\n").encode())
    return result
