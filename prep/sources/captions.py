"""Caption cleaning rules of the original pipeline, one function per source."""

from __future__ import annotations

# CC-3M captions are tokenized text ("a photo of a dog , running ."); the original glued these
# punctuation marks back onto the preceding word and did nothing else.
CC3M_PUNCTUATION = (".", ":", "!", ",", "?", ";")


def clean_cc3m_caption(caption: str) -> str:
    """The original CC-3M rule: strip, then remove the space before `. : ! , ? ;`.

    Replacements run in the original's order, one pass each, so `a , , b` becomes `a,, b`
    exactly as it did there.
    """
    caption = caption.strip()
    for punc in CC3M_PUNCTUATION:
        caption = caption.replace(f" {punc}", punc)
    return caption


def clean_ln_caption(caption: str) -> str:
    """The original Localized Narratives rule: U+00A0 becomes a space, whitespace is collapsed."""
    return " ".join(caption.replace("\u00a0", " ").split())


def clean_none(caption: str) -> str:
    """No rule; only surrounding whitespace is dropped."""
    return caption.strip()


CLEANERS = {"cc3m": clean_cc3m_caption, "ln": clean_ln_caption, "none": clean_none}
