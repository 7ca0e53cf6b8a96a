"""Remote shards: the same batches over HTTP (range requests) and S3 (moto) as from the local copy."""

from __future__ import annotations

import functools
import http.server
import io
import os
import re
import threading
from pathlib import Path

import pytest
import torch

from babylm.train.data.contract import LoaderBatch
from babylm.train.data.loader import build_loader
from tests.train.data.loader_fixtures import write_image_text, write_tokens


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """A static file server with HTTP range requests (nginx, S3 and CDNs have them; the stdlib
    handler does not)."""

    def send_head(self):  # type: ignore[override]
        spec = self.headers.get("Range")
        if not spec:
            return super().send_head()
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return None
        size = os.path.getsize(path)
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", spec.strip())
        if not m:
            self.send_error(416)
            return None
        if m[1]:
            start, end = int(m[1]), min(int(m[2]) if m[2] else size - 1, size - 1)
        else:
            start, end = max(0, size - int(m[2])), size - 1
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(end - start + 1)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        return io.BytesIO(data)

    def log_message(self, *args):  # noqa: D102 - keep the test output quiet
        pass


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("remote")
    write_image_text(root / "it", [23, 9, 31])
    write_tokens(root / "tok", [300, 120])
    return root


@pytest.fixture(scope="module")
def http_root(datasets):
    handler = functools.partial(RangeHandler, directory=str(datasets))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _epoch(location, tmp_path, **kw):
    loader = build_loader(location, cache_dir=tmp_path / "cache", **kw)
    return list(loader.batches())


def _same(remote: list[LoaderBatch], local: list[LoaderBatch]) -> None:
    assert len(remote) == len(local) > 0
    for r, lo in zip(remote, local, strict=True):
        assert r.keys == lo.keys
        for name in ("pixel_values", "input_ids"):
            if name in lo.inputs:
                assert torch.equal(r.inputs[name], lo.inputs[name])


def test_http_image_text_same_batches_as_local(datasets, http_root, tmp_path):
    kw = dict(batch_size=4, world_size=2, rank=1, workers=2, image_size=32, seed=3)
    local = _epoch(datasets / "it", tmp_path / "a", **kw)
    remote = _epoch(f"{http_root}/it", tmp_path / "b", **kw)
    _same(remote, local)
    # The shards' .idx files are cached by the shard's sha256 (one download per machine), and the
    # samples came in blocks through the block cache.
    assert len(list((tmp_path / "b" / "cache" / "tar-index").glob("*.idx"))) == 3
    assert list((tmp_path / "b" / "cache" / "blocks").glob("*.blk"))


def test_http_tokens_same_batches_as_local(datasets, http_root, tmp_path):
    kw = dict(batch_size=3, seq_len=16, workers=1, seed=5)
    _same(_epoch(f"{http_root}/tok", tmp_path, **kw), _epoch(datasets / "tok", tmp_path, **kw))


def test_http_server_without_range_support_fails_loudly(datasets, tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(datasets))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(Exception, match="range requests"):
            _epoch(f"http://127.0.0.1:{server.server_address[1]}/it", tmp_path, batch_size=4, image_size=32)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def s3_endpoint(datasets):
    pytest.importorskip("s3fs")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="babylm")
    for path in datasets.rglob("*"):
        if path.is_file() and ".entries" not in path.parts:
            s3.upload_file(str(path), "babylm", f"data/{path.relative_to(datasets).as_posix()}")
    yield endpoint
    server.stop()


def test_s3_image_text_same_batches_as_local(datasets, s3_endpoint, tmp_path):
    options = {"endpoint_url": s3_endpoint, "key": "test", "secret": "test"}
    kw = dict(batch_size=5, world_size=2, rank=0, workers=2, image_size=32, seed=1)
    local = _epoch(datasets / "it", tmp_path / "a", **kw)
    remote = _epoch("s3://babylm/data/it", tmp_path / "b", storage_options=options, **kw)
    _same(remote, local)


def test_s3_credentials_from_environment(datasets, s3_endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    kw = dict(batch_size=3, seq_len=16, seed=2)
    remote = _epoch("s3://babylm/data/tok", tmp_path, storage_options={"endpoint_url": s3_endpoint}, **kw)
    _same(remote, _epoch(datasets / "tok", tmp_path, **kw))
