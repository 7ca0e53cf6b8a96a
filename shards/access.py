"""Bounded reads of dataset files, local and remote: nothing here can hang or read without end.

- Local: only regular files are opened (a FIFO would block forever, `/dev/zero` never ends, a
  folder is not a file): `open_regular` checks the opened descriptor, so a path swapped for a
  FIFO between a check and the open is refused too; `read_local` reads at most `limit` bytes.
- Remote: one request (connect, headers and the whole body) finishes within `timeout` seconds or
  fails; a body longer than asked is cut and is an error, as is a short one. `read_url` retries
  with backoff what can pass (5xx, timeouts, cut connections), not what cannot (403, 404), and
  then fails naming the URL and the HTTP status.

Plain `http(s)://` goes through the standard library (`http_get`, which can enforce the deadline
byte by byte); other URLs through fsspec, whose HTTP sessions get an aiohttp total timeout (it
covers the whole request, body included).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import threading
import time
from typing import Any, BinaryIO

from babylm.shards.errors import FileTooLarge, NotRegularFile, RemoteError, ShardError

log = logging.getLogger("babylm.shards.access")

# The loader's `fetch_timeout` / `fetch_retries` defaults (train/data/spec.py declares them for
# training); what the prep-side commands (verify, inspect) use.
DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRIES = 4
# Backoff before retry k is BACKOFF_S * 2**k.
BACKOFF_S = 0.1
# A manifest lists ~300 bytes per shard: this is millions of shards, not an endless answer.
MAX_MANIFEST_BYTES = 1 << 30
_CHUNK = 1 << 20


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open a local file for reading; NotRegularFile if it is anything but a regular file."""
    # O_NONBLOCK: opening a FIFO without a writer would otherwise wait for one forever.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(f"{path}: is {_kind(mode)}, not a regular file; dataset files must be files")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def regular_size(path: str | os.PathLike) -> int | None:
    """Size of a local regular file; None if absent, NotRegularFile if it is not a file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(
            f"{path}: is {_kind(st.st_mode)}, not a regular file; dataset files must be files"
        )
    return st.st_size


def read_local(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of a local regular file of at most `limit` bytes (FileTooLarge beyond)."""
    with open_regular(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(f"{path}: longer than the {limit} bytes it may have")
    return data


def is_plain_http(url: str, storage_options: dict[str, Any] | None) -> bool:
    return url.startswith(("http://", "https://")) and not storage_options


def fsspec_options(url: str, storage_options: dict[str, Any] | None, timeout: float) -> dict[str, Any]:
    """fsspec options for `url` with a deadline per HTTP request (aiohttp's own is 5 minutes)."""
    options = dict(storage_options or {})
    if url.startswith(("http://", "https://")):
        import aiohttp

        client = dict(options.get("client_kwargs") or {})
        client.setdefault("timeout", aiohttp.ClientTimeout(total=timeout))
        options["client_kwargs"] = client
    return options


class _Watchdog:
    """Shuts a request's socket down at its deadline, whatever the request is waiting for then
    (the connection, the headers, the body): a server that trickles cannot stretch it."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.fired = False
        self._timer: threading.Timer | None = None

    def arm(self, sock: socket.socket) -> None:
        self.cancel()  # a redirect opens another connection: watch that one

        def fire() -> None:
            self.fired = True
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

        self._timer = threading.Timer(max(0.0, self.deadline - time.monotonic()), fire)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _watched(handler: type, watchdog: _Watchdog) -> Any:
    """An instance of urllib handler class `handler` whose connections `watchdog` watches
    (redirects, proxies and TLS settings stay urllib's)."""

    class Watched(handler):  # type: ignore[misc, valid-type]
        def do_open(self, http_class: Any, req: Any, **kw: Any) -> Any:
            def connection(host: str, **args: Any) -> Any:
                conn = http_class(host, **args)
                connect = conn.connect

                def connect_and_watch() -> None:
                    connect()
                    watchdog.arm(conn.sock)

                conn.connect = connect_and_watch
                return conn

            return super().do_open(connection, req, **kw)

    return Watched()


def _arm(response: Any, deadline: float, timeout: float) -> None:
    """Give the next socket read only the time left before the request's deadline."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise RemoteError(_late(timeout))
    sock = getattr(getattr(response.fp, "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(left)


def _late(timeout: float) -> str:
    return f"no complete answer within the {timeout:g} s deadline (fetch_timeout)"


def http_get(
    url: str, start: int = 0, end: int | None = None, *, timeout: float, limit: int | None = None
) -> bytes:
    """Bytes [start, end) of `url` (end None: to its end, at most `limit` bytes) in one GET that
    ends within `timeout` seconds, connection, headers and body. FileNotFoundError on 404;
    RemoteError (no URL in the message: callers add it) for any other failure."""
    import urllib.request

    watchdog = _Watchdog(time.monotonic() + timeout)
    opener = urllib.request.build_opener(
        _watched(urllib.request.HTTPHandler, watchdog), _watched(urllib.request.HTTPSHandler, watchdog)
    )
    try:
        data = _get(opener, url, start, end, timeout, limit, watchdog.deadline)
    except RemoteError as e:
        if watchdog.fired:
            raise RemoteError(_late(timeout)) from e
        raise
    finally:
        watchdog.cancel()
    if watchdog.fired:  # the socket was shut down mid-body: what arrived is not the answer
        raise RemoteError(_late(timeout))
    return data


def _get(
    opener: Any, url: str, start: int, end: int | None, timeout: float, limit: int | None, deadline: float
) -> bytes:
    import http.client
    import urllib.error
    import urllib.request

    want = None if end is None else end - start
    cap = want if want is not None else limit
    headers = {"Range": f"bytes={start}-{'' if end is None else end - 1}"} if start or end is not None else {}
    chunks: list[bytes] = []
    got = 0
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
            if headers and r.status != 206:
                raise RemoteError(
                    f"answered {r.status} to a range request (does the server support HTTP range requests?)"
                )
            announced = r.headers.get("Content-Length")
            if cap is not None and announced and announced.isdigit() and int(announced) > cap:
                raise RemoteError(f"the server announces {announced} bytes where {cap} were asked")
            while True:
                _arm(r, deadline, timeout)
                block = r.read1(_CHUNK if cap is None else min(_CHUNK, cap + 1 - got))
                if not block:
                    break
                chunks.append(block)
                got += len(block)
                if cap is not None and got > cap:
                    raise RemoteError(f"the body is longer than the {cap} bytes asked (cut there)")
    except urllib.error.HTTPError as e:
        if e.code == 404:
            raise FileNotFoundError(url) from e
        retry = e.code >= 500 or e.code in (408, 429)
        raise RemoteError(f"HTTP {e.code} {e.reason}", status=e.code, retry=retry) from e
    except TimeoutError as e:
        raise RemoteError(_late(timeout)) from e
    except (OSError, http.client.HTTPException) as e:
        if isinstance(e, RemoteError):
            raise
        raise RemoteError(f"{type(e).__name__}: {e}") from e
    if want is not None and got != want:
        raise RemoteError(f"got {got} of the {want} bytes asked (connection cut?)")
    return b"".join(chunks)


def remote_size(
    url: str, storage_options: dict[str, Any] | None = None, timeout: float = DEFAULT_TIMEOUT
) -> int | None:
    """Size of a remote file; None if absent (404), RemoteError with the status otherwise (fsspec
    turns every failed HEAD into "not found", which hid a 403)."""
    if not is_plain_http(url, storage_options):
        return _fsspec_size(url, storage_options, timeout)
    import urllib.error
    import urllib.request

    watchdog = _Watchdog(time.monotonic() + timeout)
    opener = urllib.request.build_opener(
        _watched(urllib.request.HTTPHandler, watchdog), _watched(urllib.request.HTTPSHandler, watchdog)
    )
    try:
        with opener.open(urllib.request.Request(url, method="HEAD"), timeout=timeout) as r:
            length = r.headers.get("Content-Length")
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise RemoteError(f"{url}: HTTP {e.code} {e.reason}", status=e.code, retry=False) from e
    except OSError as e:
        raise RemoteError(f"{url}: {_late(timeout) if watchdog.fired else f'{type(e).__name__}: {e}'}") from e
    finally:
        watchdog.cancel()
    if length is None or not length.isdigit():  # a HEAD without a length: fsspec tries harder
        return _fsspec_size(url, storage_options, timeout)
    return int(length)


def _fsspec_size(url: str, storage_options: dict[str, Any] | None, timeout: float) -> int | None:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **fsspec_options(url, storage_options, timeout))
    try:
        return int(fs.size(path))
    except FileNotFoundError:
        return None


def _fsspec_get(url: str, start: int, end: int | None, options: dict[str, Any], limit: int | None) -> bytes:
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
        data = fs.cat_file(path, start=start or None, end=end)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - any client failure becomes one typed error
        status = getattr(e, "status", None)
        retry = not (isinstance(status, int) and 400 <= status < 500 and status not in (408, 429))
        raise RemoteError(f"{type(e).__name__}: {e}", status=status, retry=retry) from e
    cap = (end - start) if end is not None else limit
    if cap is not None and len(data) > cap:
        raise RemoteError(f"the body is longer than the {cap} bytes asked")
    if end is not None and len(data) != end - start:
        raise RemoteError(f"got {len(data)} of the {end - start} bytes asked")
    return data


def read_url(
    url: str,
    start: int = 0,
    end: int | None = None,
    *,
    storage_options: dict[str, Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    limit: int | None = None,
) -> bytes:
    """Bytes [start, end) of a remote file (end None: all of it, at most `limit` bytes), each try
    within `timeout` seconds, retried with backoff; FileNotFoundError if absent, else RemoteError
    naming `url`, the bytes and the last problem (an HTTP status among them)."""
    problem = ""
    for attempt in range(retries + 1):
        try:
            if is_plain_http(url, storage_options):
                return http_get(url, start, end, timeout=timeout, limit=limit)
            return _fsspec_get(url, start, end, fsspec_options(url, storage_options, timeout), limit)
        except RemoteError as e:
            problem = str(e)
            if not e.retry:
                raise RemoteError(f"{url}: {problem}", status=e.status, retry=False) from e
        if attempt < retries:
            log.warning("%s: %s; retrying", url, problem)
            time.sleep(BACKOFF_S * 2**attempt)
    raise RemoteError(f"{url}: failed after {retries + 1} attempts: {problem}", retry=False)


def fetch_range(fs: Any, path: str, start: int, end: int | None, url: str, retries: int) -> bytes:
    """Bytes [start, end) of a remote file (end None: to its end), retried with backoff; then a
    ShardError naming `url`.

    A missing file is not retried (FileNotFoundError: it will not come back), nor an answer that
    will not change (403 and other 4xx: the status is in the error); a short or long answer is
    (a server cut the connection), as are 5xx answers, resets and timeouts.
    """
    problem = ""
    for attempt in range(retries + 1):
        try:
            data = fs.cat_file(path, start=start, end=end)
            if end is None or len(data) == end - start:
                return data
            problem = f"got {len(data)} bytes of {end - start} (does the server support HTTP range requests?)"
        except FileNotFoundError:
            raise
        except RemoteError as e:
            problem = str(e)
            if not e.retry:
                raise ShardError(f"{url}: reading bytes [{start}, {end}) failed: {problem}") from e
        except Exception as e:  # noqa: BLE001 - 5xx, resets, timeouts: all worth another try
            problem = f"{type(e).__name__}: {e}"
        if attempt < retries:
            log.warning("%s: bytes [%d, %s): %s; retrying", url, start, end, problem)
            time.sleep(BACKOFF_S * 2**attempt)
    raise ShardError(f"{url}: reading bytes [{start}, {end}) failed after {retries + 1} attempts: {problem}")


class PlainHttp:
    """Ranged GETs with the standard library, for `http(s)://` shards without storage options.

    fsspec's HTTP filesystem (aiohttp) spent ~3.5 ms of CPU per MiB received here against ~1 ms
    for `http.client`; with a block a request that per-byte cost is what remains of remote
    reading, and it is CPU the decoding workers do not have. The interface is the one
    `fetch_range` uses of an fsspec filesystem: `cat_file(url, start, end)`. Each request ends
    within `timeout` seconds, connection and whole body (`babylm.shards.access.http_get`).
    """

    def __init__(self, timeout: float):
        self.timeout = timeout

    def cat_file(self, url: str, start: int = 0, end: int | None = None) -> bytes:
        return http_get(url, start, end, timeout=self.timeout)


def flock(f: Any) -> None:
    """Wait for an exclusive advisory lock on open file `f` (released when it is closed)."""
    try:
        import fcntl

        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    except (ImportError, OSError):
        pass  # no advisory locks here: concurrent downloads or scans are wasteful, not wrong
