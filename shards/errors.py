"""The errors of `babylm.shards`: a dataset file that cannot be read or trusted.

Every message names the file or URL. The CLIs print them as one `Error:` line (exit 2).
"""

from __future__ import annotations


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
