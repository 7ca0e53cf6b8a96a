"""Contact sheets: a grid of images with their captions, for looking at shards and models."""

from __future__ import annotations

import textwrap

from PIL import Image, ImageDraw, ImageFont


def render_contact_sheet(
    items: list[tuple[Image.Image | None, str]], cols: int = 4, cell: int = 224, text_lines: int = 5
) -> Image.Image:
    """A grid of images, each with its caption (several lines allowed) wrapped underneath."""
    font = ImageFont.load_default()
    text_h = 13 * text_lines + 4
    rows = max(1, (len(items) + cols - 1) // cols)
    sheet = Image.new("RGB", (cols * (cell + 8) + 8, rows * (cell + text_h + 8) + 8), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, caption) in enumerate(items):
        x = 8 + (i % cols) * (cell + 8)
        y = 8 + (i // cols) * (cell + text_h + 8)
        if image is not None:
            thumb = image.copy()
            thumb.thumbnail((cell, cell))
            sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
        else:
            draw.rectangle([x, y, x + cell, y + cell], outline="gray")
        lines: list[str] = []
        for part in caption.split("\n"):
            lines.extend(textwrap.wrap(part, width=cell // 6) or [""])
        draw.multiline_text((x, y + cell + 2), "\n".join(lines[:text_lines]), fill="black", font=font)
    return sheet
