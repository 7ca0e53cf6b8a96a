"""Export a tiny Flamingo, a tiny GIT and a tiny OPT and RoBERTa (main environment, babylm
installed) into OUT, with the inputs and the logits the check script compares against in the
clean environments: `python -m tests.export_compat.make_exports OUT`.

OUT/hub is a hub cache (`write_revisions`) with two revisions of each multimodal model,
`babylm-test/{kind}` at `chck_1M` (other weights) and `main` (the OUT/{kind} export)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoTokenizer

from babylm.train.export import export_model
from babylm.train.models import make_tiny_vit, normalize_images
from babylm.train.revisions import write_revisions
from tests.conftest import build_tiny_tokenizer
from tests.train.models.helpers import open_gates, tiny_model, uint8_images

KINDS = ("flamingo", "git", "opt", "roberta")
TEXTS = ["<image> a red circle above a blue square.", "<image> two green triangles"]
IDS = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 13, 14]])


def main(out: Path) -> None:
    """Write OUT/{kind}/ exports and OUT/reference.pt (inputs plus each model's logits)."""
    out.mkdir(parents=True, exist_ok=True)
    tokenizer_dir = build_tiny_tokenizer(out / "_tokenizer")
    vit = make_tiny_vit(out / "_vit")
    image_id = AutoTokenizer.from_pretrained(tokenizer_dir).convert_tokens_to_ids("<image>")
    images = uint8_images(2, seed=9)
    reference = {"input_ids": IDS, "images": images, "texts": TEXTS}
    for kind in KINDS:
        model = tiny_model(kind, vit, image_token_id=image_id, seed=len(kind))
        if kind == "flamingo":
            open_gates(model, 0.7)  # so that the image visibly reaches the text
        export_model(model, kind, out / kind, tokenizer_dir)
        with torch.no_grad():
            ref = {"text_logits": model(IDS).logits}
            if kind in ("flamingo", "git"):
                pixels = normalize_images(images, model)
                ref["pixel_values"] = pixels
                ref["image_logits"] = model(IDS, pixel_values=pixels).logits
        if kind in ("flamingo", "git"):
            ref["revisions"] = _revisions(kind, out, vit, image_id, tokenizer_dir, ref["text_logits"])
        reference[kind] = ref
    torch.save(reference, out / "reference.pt")
    print(json.dumps({"exports": [str(out / k) for k in KINDS]}))


def _revisions(kind: str, out: Path, vit: Path, image_id: int, tokenizer_dir: Path, main_logits) -> dict:
    """Write revisions chck_1M (a model with other weights) and main (OUT/kind) of babylm-test/kind
    into the hub cache OUT/hub; returns each revision's text logits."""
    early = tiny_model(kind, vit, image_token_id=image_id, seed=100 + len(kind))
    export_model(early, kind, out / "revisions" / f"{kind}-chck_1M", tokenizer_dir)
    write_revisions(
        {"chck_1M": out / "revisions" / f"{kind}-chck_1M", "main": out / kind},
        out / "hub",
        f"babylm-test/{kind}",
    )
    with torch.no_grad():
        return {"chck_1M": early(IDS).logits, "main": main_logits}


if __name__ == "__main__":
    transformers.utils.logging.disable_progress_bar()
    main(Path(sys.argv[1]))
