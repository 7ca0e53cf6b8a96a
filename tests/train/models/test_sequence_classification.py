"""Flamingo and GIT as sequence classifiers (GLUE fine-tuning): the causal LM's weights, the last
non-pad token's hidden state through a new head, and transformers' losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from babylm.train.models import normalize_images
from babylm.train.models.modeling_babylm_flamingo import BabyLMFlamingoForSequenceClassification
from babylm.train.models.modeling_babylm_git import BabyLMGitForSequenceClassification
from tests.train.models.helpers import open_gates, tiny_model, uint8_images

CLASSES = {"flamingo": BabyLMFlamingoForSequenceClassification, "git": BabyLMGitForSequenceClassification}
# Row 0 is right-padded (pad id 0): its last real token is at index 2.
IDS = torch.tensor([[10, 11, 12, 0, 0], [20, 21, 22, 23, 24]])
MASK = (IDS != 0).long()


@pytest.fixture(params=["flamingo", "git"])
def saved(request, tiny_vit_dir, image_id, tmp_path):
    """(kind, causal LM, folder it was saved to)."""
    kind = request.param
    model = tiny_model(kind, tiny_vit_dir, image_id, seed=4)
    if kind == "flamingo":
        open_gates(model, 0.7)
    model.save_pretrained(tmp_path / kind)
    return kind, model, tmp_path / kind


def _classifier(kind: str, folder, **config):
    torch.manual_seed(0)
    return CLASSES[kind].from_pretrained(folder, **config).eval()


def test_loads_the_causal_lm_and_pools_the_last_non_pad_token(saved):
    kind, lm, folder = saved
    clf = _classifier(kind, folder, num_labels=3)
    base = "model.decoder." if kind == "flamingo" else "git."
    lm_state, clf_state = lm.state_dict(), clf.state_dict()
    shared = [k for k in clf_state if k.startswith(base)]
    assert shared and all(torch.equal(clf_state[k], lm_state[k]) for k in shared)
    assert not any(p.requires_grad for p in clf.vision_encoder.parameters())
    with torch.no_grad():
        logits = clf(IDS, attention_mask=MASK).logits
        alone = clf(IDS[:1, :3]).logits  # the padded row without its padding
    assert logits.shape == (2, 3)
    torch.testing.assert_close(logits[:1], alone, rtol=1e-5, atol=1e-5)


def test_image_is_optional_and_used(saved):
    kind, _, folder = saved
    clf = _classifier(kind, folder, num_labels=2)
    pixels = normalize_images(uint8_images(2, seed=3), clf)
    with torch.no_grad():
        text = clf(IDS, attention_mask=MASK).logits
        image = clf(IDS, attention_mask=MASK, pixel_values=pixels).logits
    assert (image - text).abs().max() > 1e-4


def test_losses_are_transformers(saved):
    kind, _, folder = saved
    clf = _classifier(kind, folder, num_labels=2)
    labels = torch.tensor([1, 0])
    out = clf(IDS, attention_mask=MASK, labels=labels)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))
    assert clf.config.problem_type == "single_label_classification"
    out.loss.backward()  # trainable head and decoder; the frozen encoder gets nothing
    assert clf.score.weight.grad is not None
    assert all(p.grad is None for p in clf.vision_encoder.parameters())

    multi = _classifier(kind, folder, num_labels=2)
    targets = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    out = multi(IDS, attention_mask=MASK, labels=targets)
    torch.testing.assert_close(out.loss, F.binary_cross_entropy_with_logits(out.logits, targets))

    regression = _classifier(kind, folder, num_labels=1)
    scores = torch.tensor([0.5, -1.0])
    out = regression(IDS, attention_mask=MASK, labels=scores)
    assert regression.config.problem_type == "regression"
    torch.testing.assert_close(out.loss, F.mse_loss(out.logits.squeeze(-1), scores))
