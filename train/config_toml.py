"""`RUN_DIR/config.toml` and `--config FILE.toml`: a `TrainConfig`'s values as flat TOML keys (the
field names), written by hand (the standard library reads TOML but does not write it) and read back
with every value checked against its field before a config is made of it."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None  # type: ignore[assignment]

from babylm.train.bounds import value_problem


def write_toml(values: dict[str, Any]) -> str:
    """`values` as the lines of a config file; an unset (None) value is a comment."""
    lines = ["# babylm-train resolved configuration; rerun with --config this-file.toml"]
    for name, value in values.items():
        if value is None:
            lines.append(f"# {name} = (unset)")
        else:
            lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isinf(v) or math.isnan(v):
            return {math.inf: "inf", -math.inf: "-inf"}.get(v, "nan")
        return repr(v)
    if isinstance(v, str):
        escaped = v.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def load_toml(path: str | Path, fields: Iterable[dataclasses.Field]) -> dict[str, Any]:
    """Read a config file and check its keys and values against `fields`."""
    if tomllib is None:
        try:
            import tomli as toml_reader
        except ImportError as e:
            raise RuntimeError("--config needs Python 3.11+ (tomllib) or the 'tomli' package") from e
    else:
        toml_reader = tomllib
    try:
        data = toml_reader.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, toml_reader.TOMLDecodeError) as e:
        raise ValueError(
            f"{path}: not a TOML file ({e}); fix it or write one with the option names"
        ) from None
    by_name = {f.name: f for f in fields}
    unknown = sorted(set(data) - set(by_name))
    if unknown:
        raise ValueError(f"{path}: unknown keys {', '.join(unknown)}")
    for key, value in data.items():
        problem = value_problem(by_name[key], value)
        if problem:
            raise ValueError(f"{path}: {key} = {value!r}: {problem}")
    return data
