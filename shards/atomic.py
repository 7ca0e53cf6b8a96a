"""Atomic file writing: readers see the old file or the new one, never a part of it.

Everything the project writes that another process may read (manifests, shard entries, plans,
unit records, skip lists, cached tar indexes, checkpoint meta, `done.json`, a run's `config.toml`,
`run.json`, `wandb.json` and `metrics.jsonl` rewrite, `eval.json`) goes through
`atomic_write`; folders that must appear whole (cached listings, exported models, hub-cache
snapshots) through `atomic_folder`. Both give the umask's mode.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on a clean exit flush, fsync and rename it to `path`.

    On an exception the temporary file is removed and `path` is untouched. The file gets the
    umask's mode (mkstemp's 0600 would hide a shared dataset or cache folder from a team).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (see `atomic_write`)."""
    with atomic_write(path) as f:
        f.write(data)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, prefix: str | None = None, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary folder beside `path` to fill (named `prefix`...`suffix`, by default
    `.NAME.*.tmp`); on a clean exit it becomes `path` in one rename. A folder already at `path`
    is moved aside first and removed after. On an exception the temporary folder is removed and
    `path` is untouched. The folder gets the umask's mode (mkdtemp's 0700 hides it from a team).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix or f".{path.name}.", suffix=suffix))
    try:
        tmp.chmod(0o777 & ~_umask())
        yield tmp
        old = path.with_name(f".{path.name}.old")
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
