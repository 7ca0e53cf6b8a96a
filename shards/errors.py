"""The errors of `babylm.shards`: a dataset file that cannot be read or trusted.

Every message names the file or URL. The CLIs print them as one `Error:` line (exit 2).
"""

from __future__ import annotations

import re


class ShardsError(Exception):
    """A dataset file (manifest, shard, index) that cannot be read as it must be."""


class NotRegularFile(ShardsError, OSError):
    """A path that is a FIFO, a device, a socket or a folder where a file belongs: never read
    (a FIFO blocks forever, /dev/zero never ends)."""


class FileTooLarge(ShardsError, OSError):
    """A file longer than what describes it (a manifest's byte count, a sane maximum)."""


class RemoteError(ShardsError, OSError):
    """A remote read that failed: an HTTP status, a deadline passed, a body of the wrong length.

    `retry`: whether another try may succeed (5xx, timeouts, short bodies; not 403)."""

    def __init__(self, message: str, *, status: int | None = None, retry: bool = True):
        super().__init__(message)
        self.status = status
        self.retry = retry


class ShardError(ShardsError, RuntimeError):
    """A shard that cannot be used at all (missing, wrong size, unreadable tar structure, a
    damaged or forged index, a remote read that keeps failing).

    Raised in a DataLoader worker, torch re-raises it in the main process as
    `ShardError("Caught ShardError in DataLoader worker process 0. Original Traceback ...")`: the
    message keeps only what the worker's error said, so the CLI's one line is that."""

    def __init__(self, message: str = ""):
        super().__init__(_worker_message(message, type(self).__name__))


def _worker_message(message: str, name: str) -> str:
    if not message.startswith(f"Caught {name} in DataLoader worker") or "Traceback" not in message:
        return message
    # The traceback's last line is `module.path.ShardError: <the message>`.
    found = list(re.finditer(rf"\n(?:[\w.]+\.)?{name}: ", message))
    return f"{message[found[-1].end() :].strip()} (in a DataLoader worker)" if found else message


class CorruptSample(ValueError):
    """One sample that cannot be decoded (a failed checksum, a damaged header, a bad member):
    skipped and counted, never fatal."""
