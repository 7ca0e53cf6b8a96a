"""Fixtures shared by the whole suite. Everything is built in the test, nothing downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

SPECIALS = ["<pad>", "</s>", "<unk>", "<mask>"]
CORPUS = [
    "a small red circle above a blue square .",
    "a large green triangle left of a yellow circle .",
    "the child said hello to the dog and the cat .",
    "an angler fishes river on a snowy day .",
    "A:\tyeah i think so , uh-huh .",
    "people walk along the beach at sunset 12 34 .",
    "she reads a book about 3 little pigs !",
    "what is that ? it is a photo of a man riding a horse ;",
]


def build_tiny_tokenizer(out_dir: Path, vocab_size: int = 200) -> Path:
    """A small tokenizer with the original recipe's shape (Unigram, NFKC+lowercase, Metaspace,
    specials pad=0 </s>=1 <unk>=2 <mask>=3, </s> appended, <image>/<PERSON> added after the
    learned vocabulary), saved as a folder AutoTokenizer loads."""
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence(
        [normalizers.Nmt(), normalizers.NFKC(), normalizers.Replace(r"\s+", " "), normalizers.Lowercase()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.Punctuation(behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(CORPUS * 20, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
        additional_special_tokens=["<image>"],
    )
    fast.add_tokens(["<PERSON>"])
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    """Path of a saved tiny tokenizer folder (AutoTokenizer.from_pretrained works on it)."""
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture
def http_root(tmp_path):
    """(folder, base_url): a local http.server on 127.0.0.1 serving `folder`, with Range support."""
    import functools
    import http.server
    import threading

    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(_RangeHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _RangeHandler:
    """SimpleHTTPRequestHandler plus single-range `Range: bytes=a-b` requests (fsspec seeks)."""

    def __new__(cls, *args, **kwargs):
        import http.server

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *a):  # keep test output clean
                pass

            def send_head(self):
                rng = self.headers.get("Range")
                path = self.translate_path(self.path)
                if not rng or not rng.startswith("bytes=") or not os.path.isfile(path):
                    return super().send_head()
                size = os.path.getsize(path)
                start_s, _, end_s = rng[6:].partition("-")
                start = int(start_s) if start_s else max(0, size - int(end_s))
                end = min(int(end_s), size - 1) if (end_s and start_s) else size - 1
                f = open(path, "rb")
                f.seek(start)
                self.send_response(206)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.send_header("Content-Length", str(end - start + 1))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                return _Limited(f, end - start + 1)

        return Handler(*args, **kwargs)


class _Limited:
    def __init__(self, f, n):
        self.f, self.n = f, n

    def read(self, size=-1):
        if self.n <= 0:
            return b""
        size = self.n if size < 0 else min(size, self.n)
        data = self.f.read(size)
        self.n -= len(data)
        return data

    def close(self):
        self.f.close()


@pytest.fixture
def s3_bucket(monkeypatch):
    """(bucket, storage_options): an S3-compatible moto server on 127.0.0.1 with one bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(k, v)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="babylm")
    yield "babylm", {"client_kwargs": {"endpoint_url": endpoint}, "key": "testing", "secret": "testing"}
    server.stop()


def upload_folder(folder: Path, bucket: str, prefix: str, storage_options: dict) -> str:
    """Copy a local dataset folder to s3://bucket/prefix and return its URL."""
    import s3fs

    fs = s3fs.S3FileSystem(**storage_options)
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            fs.put_file(str(p), f"{bucket}/{prefix}/{p.relative_to(folder).as_posix()}")
    return f"s3://{bucket}/{prefix}"


@pytest.fixture(autouse=True, scope="session")
def _private_index_cache(tmp_path_factory):
    """Tar indexes the loader caches go to a folder of this test session, not ~/.cache/babylm."""
    previous = os.environ.get("BABYLM_CACHE_DIR")
    os.environ["BABYLM_CACHE_DIR"] = str(tmp_path_factory.mktemp("babylm-cache"))
    yield
    if previous is None:
        os.environ.pop("BABYLM_CACHE_DIR", None)
    else:
        os.environ["BABYLM_CACHE_DIR"] = previous
