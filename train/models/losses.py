"""Loss helpers for the trainer: summed token losses (so it can normalise by the global number of
target tokens across ranks and accumulation steps) and RoBERTa's 80/10/10 masking."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from transformers import RobertaForMaskedLM

IGNORE_INDEX = -100


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DDP (`.module`) and torch.compile (`._orig_mod`) wrappers."""
    for attr in ("module", "_orig_mod"):
        inner = getattr(model, attr, None)
        if isinstance(inner, torch.nn.Module):
            return unwrap_model(inner)
    return model


def is_masked_lm(model: torch.nn.Module) -> bool:
    """True for the masked LM (roberta): its labels are not shifted."""
    return isinstance(unwrap_model(model), RobertaForMaskedLM)


def token_loss_sum(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of per-token cross-entropies and the number of target tokens for one batch.

    `batch` holds `input_ids`, `labels` (-100 = no loss) and optionally `attention_mask`,
    `pixel_values` or `image_embeds`; `model` may be DDP-wrapped. Causal models score position t
    on labels[t + 1] (the one shift happens here; GIT's leading image positions are dropped, as
    logits of text come last); the masked LM scores each position on its own label.
    Divide the sum by the all-reduced count to get the global mean.
    """
    labels = batch["labels"]
    inputs = {k: v for k, v in batch.items() if k != "labels" and v is not None}
    logits = model(**inputs).logits
    logits = logits[:, -labels.shape[1] :]  # text positions (GIT prepends image tokens)
    labels = labels.to(logits.device)
    if not is_masked_lm(model):
        logits, labels = logits[:, :-1], labels[:, 1:]
    loss_sum = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return loss_sum, (labels != IGNORE_INDEX).sum()


def mask_tokens(
    input_ids: torch.Tensor,
    mask_token_id: int,
    vocab_size: int,
    special_ids: Iterable[int],
    prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT/RoBERTa masking: pick `prob` of the non-special tokens as targets; of those, 80% become
    `<mask>`, 10% a random token, 10% stay. Returns (masked input_ids, labels with -100 elsewhere);
    the input is not modified."""
    input_ids = input_ids.clone()
    labels = input_ids.clone()
    special = torch.isin(
        input_ids, torch.tensor(sorted(set(special_ids)), dtype=input_ids.dtype, device=input_ids.device)
    )
    probs = torch.full(input_ids.shape, prob, device=input_ids.device).masked_fill(special, 0.0)
    targets = torch.bernoulli(probs, generator=generator).bool()
    labels[~targets] = IGNORE_INDEX
    to_mask = torch.bernoulli(
        torch.full(input_ids.shape, 0.8, device=input_ids.device), generator=generator
    ).bool()
    to_mask &= targets
    input_ids[to_mask] = mask_token_id
    # Half of the remaining 20%: a random token; the other half keeps the original.
    to_random = torch.bernoulli(
        torch.full(input_ids.shape, 0.5, device=input_ids.device), generator=generator
    ).bool()
    to_random &= targets & ~to_mask
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator, device=input_ids.device)
    input_ids[to_random] = random_ids[to_random].to(input_ids.dtype)
    return input_ids, labels
