"""What the loss scores, in one place: the label value that scores nothing (`IGNORE_INDEX`), which
label each position is scored on (`scored_labels`: causal models shift once, the masked LM does
not), the target count the trainer normalises by (`count_targets`), summed token losses
(`token_loss_sum`, so the trainer can divide by the global number of target tokens across ranks and
accumulation steps), the caption-label rule (`caption_inputs`: whether caption padding is scored,
the `--caption-loss` setting; the loader's collate applies it in the workers) and RoBERTa's
80/10/10 masking.

The exported model files (`modeling_babylm_common.py`) keep their own -100: they ship without
this package."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # a label that scores nothing: padding, unmasked RoBERTa positions


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DDP (`.module`) and torch.compile (`._orig_mod`) wrappers."""
    for attr in ("module", "_orig_mod"):
        inner = getattr(model, attr, None)
        if isinstance(inner, torch.nn.Module):
            return unwrap_model(inner)
    return model


def is_masked_lm(model: torch.nn.Module) -> bool:
    """True for the masked LM (roberta): its labels are not shifted, and the trainer masks its
    inputs. The one place this is decided."""
    from transformers import RobertaForMaskedLM

    return isinstance(unwrap_model(model), RobertaForMaskedLM)


def scored_labels(labels: torch.Tensor, masked_lm: bool) -> torch.Tensor:
    """The labels the logits are scored on, position by position: causal models score position t
    on labels[t + 1] (so the first label is never a target), the masked LM on labels[t]."""
    return labels if masked_lm else labels[:, 1:]


def count_targets(labels: torch.Tensor, masked_lm: bool) -> int:
    """Target tokens of a batch: the ones `token_loss_sum` scores (and counts)."""
    return int((scored_labels(labels, masked_lm) != IGNORE_INDEX).sum())


def token_loss_sum(
    model: torch.nn.Module, batch: dict, masked_lm: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of per-token cross-entropies and the number of target tokens for one batch.

    `batch` holds `input_ids`, `labels` (-100 = no loss) and optionally `attention_mask`,
    `pixel_values` or `image_embeds`; `model` may be DDP-wrapped; `masked_lm` None: decided by
    `is_masked_lm(model)`. Positions are scored as `scored_labels` says (GIT's leading image
    positions are dropped, as logits of text come last). Divide the sum by the all-reduced count
    to get the global mean.
    """
    masked_lm = is_masked_lm(model) if masked_lm is None else masked_lm
    labels = batch["labels"]
    inputs = {k: v for k, v in batch.items() if k != "labels" and v is not None}
    logits = model(**inputs).logits
    logits = logits[:, -labels.shape[1] :]  # text positions (GIT prepends image tokens)
    labels = scored_labels(labels.to(logits.device), masked_lm)
    logits = logits[:, : labels.shape[1]]  # logit t is scored on the scored label t
    loss_sum = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return loss_sum, (labels != IGNORE_INDEX).sum()


def scores_padding(caption_loss: str) -> bool:
    """Whether the `--caption-loss` setting scores caption padding: "original" does (as the
    original's `tk_pad_collate_fn`), "masked" does not."""
    return caption_loss == "original"


def caption_inputs(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, score_padding: bool
) -> dict[str, torch.Tensor]:
    """The caption-label rule: model inputs of a tokenized, padded caption batch.

    Not scoring padding: labels = input_ids with -100 on the padding, and the attention mask.
    Scoring padding (`--caption-loss original`): labels = input_ids, padding included, and no
    attention mask, as the original (its loss then averages over pad positions too)."""
    if score_padding:
        return {"input_ids": input_ids, "labels": input_ids.clone()}
    labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


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
