"""A real HTTP file server on 127.0.0.1 for remote-shard tests and benchmarks.

Range requests (as nginx, S3 and CDNs answer them), a per-request delay (an object store in
another cluster), a log of every request and the bytes sent, and faults injected on chosen
requests: a 5xx answer, any status (403, 500), a short body (the connection closes mid-answer),
a stall, a trickle (one byte at a time, of the body or of the headers), an endless body, a body
longer than the range asked.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Fault:
    """Break the next `times` requests whose path ends with `suffix`: `kind` is
    - "5xx": a 503 answer; "status": a `status` answer (403, 500, ...);
    - "short": half the body, then the connection closes;
    - "stall": `stall_s` before answering;
    - "trickle": the right headers, then the body one byte every `stall_s` seconds;
    - "trickle_head": the status line, then header bytes one every `stall_s` seconds;
    - "endless": no Content-Length, the body and then zeros until the client hangs up;
    - "long": a Content-Length and body 4096 bytes longer than the range asked."""

    suffix: str
    kind: str
    times: int = 1
    stall_s: float = 5.0
    status: int = 503


@dataclass
class ServerState:
    delay_s: float = 0.0
    faults: list[Fault] = field(default_factory=list)
    log: list[tuple[str, str, str, int]] = field(default_factory=list)  # method, path, range, bytes
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.times > 0 and path.endswith(f.suffix):
                    f.times -= 1
                    return f
        return None

    def record(self, method: str, path: str, rng: str, nbytes: int) -> None:
        with self.lock:
            self.log.append((method, path, rng, nbytes))

    @property
    def requests(self) -> int:
        return len(self.log)

    @property
    def bytes_sent(self) -> int:
        return sum(entry[3] for entry in self.log)


class _Handler(http.server.SimpleHTTPRequestHandler):
    state: ServerState

    def log_message(self, *args) -> None:  # keep test and benchmark output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        state = self.state
        if state.delay_s:
            time.sleep(state.delay_s)
        path = self.translate_path(self.path)
        fault = state.take_fault(self.path)
        if fault is not None and fault.kind == "stall":
            time.sleep(fault.stall_s)
        if fault is not None and fault.kind in ("5xx", "status"):
            state.record(self.command, self.path, "", 0)
            self.send_error(fault.status if fault.kind == "status" else 503, "injected fault")
            return
        if not os.path.isfile(path):
            state.record(self.command, self.path, "", 0)
            self.send_error(404)
            return
        size = os.path.getsize(path)
        spec = self.headers.get("Range", "")
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", spec.strip())
        start, end = 0, size - 1
        if m and m[1]:
            start, end = int(m[1]), min(int(m[2]) if m[2] else size - 1, size - 1)
        elif m and m[2]:
            start = max(0, size - int(m[2]))
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(end - start + 1) if body else b""
        kind = fault.kind if fault is not None else ""
        if kind == "trickle_head":
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._send(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000, "trickle", fault.stall_s)
            self.close_connection = True
            return
        extra = 4096 if kind == "long" else 0
        self.send_response(206 if m else 200)
        self.send_header("Content-Type", "application/octet-stream")
        if m:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        if kind != "endless":
            self.send_header("Content-Length", str(end - start + 1 + extra))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if kind == "short":
            data = data[: len(data) // 2]
            self.close_connection = True
        try:
            sent = self._send(data + bytes(extra), kind, fault.stall_s if fault is not None else 0.0)
        except (BrokenPipeError, ConnectionResetError):
            sent = -1  # the client hung up (what a client with a deadline does)
        state.record(self.command, self.path, spec, max(sent, 0))

    def _send(self, data: bytes, kind: str, interval: float) -> int:
        if kind == "trickle":
            for i in range(len(data)):
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                time.sleep(interval)
            return len(data)
        self.wfile.write(data)
        if kind != "endless":
            return len(data)
        self.close_connection = True
        sent = len(data)
        while True:  # until the client hangs up
            self.wfile.write(bytes(1 << 16))
            sent += 1 << 16


class LoopbackServer:
    """`with LoopbackServer(folder, delay_s=0.02) as srv:` serves `folder` at `srv.url`."""

    def __init__(self, folder: str | os.PathLike, delay_s: float = 0.0):
        self.state = ServerState(delay_s=delay_s)
        handler = type("Handler", (_Handler,), {"state": self.state})
        # A listen backlog for many concurrent range requests (the stdlib's 5 drops connections).
        server_class = type("Server", (http.server.ThreadingHTTPServer,), {"request_queue_size": 256})
        self.server = server_class(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
