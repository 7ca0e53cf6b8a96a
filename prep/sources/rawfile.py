"""Reading the files a raw row names: confined to the raw tree, regular files only, bounded.

A report's `file` column or an annotation's `image_id` is data, not a trusted path. `RawTree`
reads such a file only if its path, resolved (`..`, absolute paths, symlinks), lies under one of
the tree's folders (`outside_root` otherwise), only if it is a regular file (`not_a_file`: a FIFO
would block forever, `/dev/zero` never ends, a device may act on open), and only up to a size
limit checked before reading (`too_large`). Each refusal is a `RowSkip` whose detail names the
path as the row gave it, never the file's content.

The folders of a tree are resolved once: a layout folder that is itself a symlink (`training/`
on another disk) is part of the tree; a file or `..` that leads elsewhere is not.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from babylm.prep.errors import InputError, RowSkip

# Names whose characters cannot name a file; the OS would raise ValueError on open.
_NUL = "\x00"


class RawTree:
    """The folders raw rows may read from (each resolved once); picklable for the workers."""

    def __init__(self, folders: Iterable[str | os.PathLike]):
        resolved = [os.path.realpath(os.fspath(f)) for f in folders]
        self.bases = tuple(dict.fromkeys(resolved))
        if not self.bases:
            raise ValueError("a RawTree needs at least one folder")

    def contains(self, real: str) -> bool:
        """Whether the resolved path `real` lies under one of the tree's folders."""
        return any(real == b or real.startswith(b.rstrip(os.sep) + os.sep) for b in self.bases)

    def resolve(self, path: str | os.PathLike) -> str:
        """The resolved path of `path`, or RowSkip (`bad_path`, `outside_root`)."""
        text = os.fspath(path)
        if _NUL in text:
            raise RowSkip("bad_path", f"{text!r}: a file name cannot contain a NUL byte")
        try:
            real = os.path.realpath(text)
        except (OSError, ValueError) as e:
            raise RowSkip("bad_path", f"{text!r}: {type(e).__name__}") from None
        if not self.contains(real):
            raise RowSkip("outside_root", f"{text} resolves outside {self.bases[0]}")
        return real

    def read(self, path: str | os.PathLike, limit: int) -> bytes:
        """The bytes of the regular file `path` (inside the tree, at most `limit` bytes), or RowSkip."""
        text = os.fspath(path)
        real = self.resolve(path)
        try:
            st = os.stat(real)  # before any open: opening a device or FIFO can block or act
        except FileNotFoundError:
            raise RowSkip("missing_file", text) from None
        except OSError as e:
            raise RowSkip("read_error", f"{text}: {e.strerror or type(e).__name__}") from None
        _check_stat(st, text, limit)
        # O_NOFOLLOW and O_NONBLOCK: a symlink or FIFO swapped in after the checks is refused, not
        # followed or waited on; the descriptor's own stat decides what was opened.
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(real, flags)
        except FileNotFoundError:
            raise RowSkip("missing_file", text) from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise RowSkip("outside_root", f"{text} became a symlink while being read") from None
            raise RowSkip("read_error", f"{text}: {e.strerror or type(e).__name__}") from None
        with os.fdopen(fd, "rb") as f:
            _check_stat(os.fstat(fd), text, limit)
            try:
                data = f.read(limit + 1)
            except OSError as e:
                raise RowSkip("read_error", f"{text}: {e.strerror or type(e).__name__}") from None
        if len(data) > limit:
            raise RowSkip("too_large", f"{text}: more than {limit} bytes")
        return data


def _check_stat(st: os.stat_result, text: str, limit: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise RowSkip("not_a_file", f"{text} is a {_kind(st.st_mode)}, not a regular file")
    if st.st_size > limit:
        raise RowSkip("too_large", f"{text}: {st.st_size} bytes, more than {limit}")


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "special file"


def check_input_file(path: Path, what: str, tree: RawTree | None = None) -> None:
    """Refuse a whole input file (caption TSV, JSONL, tar) that is not a regular file, or that
    leaves `tree`: reading a FIFO would block, a device would not end (InputError, one line)."""
    try:
        st = path.stat()
    except OSError as e:
        raise InputError(f"{path} ({what}): {e.strerror or e}; pass an existing file") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path} ({what}): a {_kind(st.st_mode)}, not a regular file; pass a regular file")
    if tree is not None and not tree.contains(os.path.realpath(path)):
        raise InputError(
            f"{path} ({what}): resolves outside {tree.bases[0]}; put the file itself in that folder"
        )
