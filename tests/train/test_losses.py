"""losses.py owns what is scored: the shift rule, the target count the trainer normalises by, the
masked-LM decision and the caption-label rule."""

from __future__ import annotations

import pytest
import torch

from babylm.train.losses import (
    IGNORE_INDEX,
    caption_inputs,
    count_targets,
    is_masked_lm,
    scored_labels,
    scores_padding,
    token_loss_sum,
)
from tests.train.models.helpers import tiny_model


def test_causal_labels_are_shifted_once_and_masked_lm_labels_not():
    labels = torch.tensor([[5, 6, IGNORE_INDEX, 8], [IGNORE_INDEX, 10, 11, IGNORE_INDEX]])
    assert scored_labels(labels, masked_lm=False).tolist() == [[6, -100, 8], [10, 11, -100]]
    assert torch.equal(scored_labels(labels, masked_lm=True), labels)
    # The first label of a causal batch is never a target: 4 of the 5 real labels count.
    assert count_targets(labels, masked_lm=False) == 4
    assert count_targets(labels, masked_lm=True) == 5


@pytest.mark.parametrize("kind", ["opt", "roberta"])
def test_count_targets_is_the_count_token_loss_sum_scores(kind):
    model = tiny_model(kind, None, image_token_id=89)
    ids = torch.tensor([[5, 6, 7, 8, 1, 0], [9, 10, 11, 12, 13, 1]])
    # Ignored labels at both ends, where a shift that differed would change the count.
    labels = ids.masked_fill((ids == 0) | (ids == 5) | (ids == 13), IGNORE_INDEX)
    masked_lm = is_masked_lm(model)
    assert masked_lm == (kind == "roberta")
    with torch.no_grad():
        loss_sum, n = token_loss_sum(model, {"input_ids": ids, "labels": labels}, masked_lm)
        again, _ = token_loss_sum(model, {"input_ids": ids, "labels": labels})  # decided from the model
    assert int(n) == count_targets(labels, masked_lm) == (9 if masked_lm else 8)
    torch.testing.assert_close(loss_sum, again)


def test_caption_label_rule_scores_padding_only_for_the_original_setting():
    ids = torch.tensor([[4, 5, 6], [7, 8, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    assert scores_padding("original") and not scores_padding("masked")
    masked = caption_inputs(ids, mask, score_padding=False)
    assert masked["labels"].tolist() == [[4, 5, 6], [7, 8, IGNORE_INDEX]]
    assert torch.equal(masked["attention_mask"], mask) and torch.equal(masked["input_ids"], ids)
    original = caption_inputs(ids, mask, score_padding=True)
    assert set(original) == {"input_ids", "labels"}  # the model gets no attention mask
    assert torch.equal(original["labels"], ids) and original["labels"] is not ids
