"""The one vocabulary of model kinds: the `babylm-train` commands, the checkpoints' `kind`, the
builder's and the exporter's argument. Kept free of torch so the CLI starts fast."""

from __future__ import annotations

MODEL_KINDS = ("flamingo", "git", "noimg", "opt", "roberta")
# Built with a frozen vision encoder. `noimg` is the multimodal track's text-only control: GIT's
# architecture, trained on the captions without ever seeing an image.
MULTIMODAL_KINDS = ("flamingo", "git", "noimg")
TEXT_KINDS = ("opt", "roberta")
_ARCHITECTURES = {"noimg": "git"}


def check_kind(kind: str) -> None:
    """Raise ValueError unless `kind` is one of MODEL_KINDS."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"kind must be one of {MODEL_KINDS}, got {kind!r}")


def architecture(kind: str) -> str:
    """The architecture a model kind is built with: the kind itself, or "git" for `noimg`."""
    check_kind(kind)
    return _ARCHITECTURES.get(kind, kind)
