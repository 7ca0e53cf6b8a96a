"""What parsing one raw row may raise on bad data, and how that becomes a counted skip.

Parsing a row (a JSON annotation, a report line's fields, an id turned into a file name) runs
on data anyone could have written. The errors such data provokes are a fixed set: malformed or
non-UTF-8 text and values of the wrong kind (`ValueError`, `UnicodeDecodeError`, `TypeError`),
numbers that do not fit (`OverflowError`: `int(float("inf"))`), and nesting deeper than the
parser's stack (`RecursionError`). The readers catch exactly `DATA_ERRORS` where they parse, and
turn them into a `RowSkip` with the reason the caller names; anything else is a bug and stops
the run with the row's key.
"""

from __future__ import annotations

import json
from typing import Any

from babylm.prep.errors import RowSkip

DATA_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError, OverflowError, RecursionError)


def describe(e: BaseException) -> str:
    """An error's message for a skip detail, cut short (it may quote the row; never a file)."""
    if isinstance(e, RecursionError):
        return "nested too deeply"
    text = f"{type(e).__name__}: {e}" if not isinstance(e, ValueError) else str(e)
    return text if len(text) <= 200 else text[:197] + "..."


def is_utf8_text(text: str) -> bool:
    """Whether `text` can be written as UTF-8: JSON's `\\ud800` escapes decode to lone
    surrogates, which no output file can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_name(name: str) -> str:
    """A file name as text: bytes that were not UTF-8 (kept by Python as surrogates) become U+FFFD."""
    return name.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def parse_json(raw: bytes | str, where: str) -> Any:
    """The JSON value of one annotation or line, or RowSkip(`malformed_json`). Bytes are decoded
    as JSON's own detection does (UTF-8, or UTF-16/32 with their byte order)."""
    try:
        return json.loads(raw)
    except DATA_ERRORS as e:
        raise RowSkip("malformed_json", f"{where}: {describe(e)}") from None
