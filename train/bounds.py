"""What a setting accepts: `Range` (the bounds a numeric field declares in its metadata) and
`value_problem`, the check of a value against a field's annotated type, range and choices (the
values of its `Literal` type, declared in its metadata). The CLI options
(`train_cli.py`), `TrainConfig.validate` and `--config` files all use these, so a bound is written
once, on the field.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Range:
    """The values a numeric setting accepts (bounds inclusive: ge/le, exclusive: gt/lt); floats
    must also be finite. Declared once on the field: the CLI option and `validate` both use it."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def problem(self, value: float) -> str | None:
        """None if `value` is allowed, else what is wrong with it."""
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {value}"
        low = (self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
        high = (self.le is None or value <= self.le) and (self.lt is None or value < self.lt)
        return None if low and high else f"must be {self.describe()}, got {value}"

    def describe(self) -> str:
        bounds = ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
        return " and ".join(f"{op} {_num(b)}" for op, b in bounds if b is not None)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def option_name(name: str) -> str:
    """`global_batch_size` -> `--global-batch-size`."""
    return "--" + name.replace("_", "-")


_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}
_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}


def value_problem(f: dataclasses.Field, value: Any) -> str | None:
    """What is wrong with `value` for field `f` (its annotated type, then its declared range), or
    None. A TOML file can hold any type, so nothing is assumed."""
    type_name = str(f.type).replace(" ", "")
    if value is None:
        return None if type_name.endswith("|None") else "is required"
    choices = f.metadata.get("cli", {}).get("choices")
    if choices is not None:
        return None if value in choices else f"must be one of {', '.join(choices)}, got {value!r}"
    base = type_name.removesuffix("|None")
    items, word = [value], ""
    if base.startswith("list["):
        if not isinstance(value, (list, tuple)):
            return f"must be a list, got {value!r}"
        items, base, word = list(value), base[5:-1], "items "
    allowed = _TYPES.get(base, (object,))
    rng: Range | None = f.metadata.get("range")
    for item in items:
        if (isinstance(item, bool) and base != "bool") or not isinstance(item, allowed):
            return f"{word}must be {_TYPE_WORDS.get(base, base)}, got {item!r}"
        problem = rng.problem(item) if rng is not None else None
        if problem:
            return f"{word}{problem}"
    return None
