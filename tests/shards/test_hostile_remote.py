"""Misbehaving HTTP servers against manifest and file reads: every request ends by its deadline,
a body longer than asked is an error, and the HTTP status reaches the message."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from babylm.prep.cli import main as prep_main
from babylm.shards import DatasetNotFound, Manifest, RemoteError, RollingWriter, open_dataset, write_manifest
from babylm.shards.access import http_get, read_url
from tests.loopback_server import Fault, LoopbackServer
from tests.shards.sample_fixtures import image_samples


@pytest.fixture
def served(tmp_path):
    out = tmp_path / "ds"
    with RollingWriter(out, "tar", max_samples=4) as w:
        for s in image_samples(6):
            w.write(s)
    write_manifest(out, Manifest(kind="image_text", shards=w.entries))
    (out / "blob.bin").write_bytes(bytes(range(256)) * 64)
    with LoopbackServer(out) as srv:
        yield srv


def test_trickling_manifest_fails_by_the_deadline_then_retries_and_names_the_url(served):
    fault = Fault("manifest.json", "trickle", times=10, stall_s=0.3)
    served.state.faults.append(fault)
    t0 = time.monotonic()
    with pytest.raises(RemoteError) as e:
        open_dataset(served.url, timeout=0.8, retries=1)
    took = time.monotonic() - t0
    assert f"{served.url}/manifest.json" in str(e.value)
    assert "deadline" in str(e.value) and "2 attempts" in str(e.value)
    # Two tries of 0.8 s and the backoff; a per-read timeout would never end (each byte comes in 0.3 s).
    assert took < 6
    assert 10 - fault.times == 2  # requests made (the server logs a trickle only when it ends)


def test_trickled_headers_end_by_the_deadline_too(served):
    fault = Fault("blob.bin", "trickle_head", times=10, stall_s=0.2)
    served.state.faults.append(fault)
    t0 = time.monotonic()
    with pytest.raises(RemoteError, match="deadline"):
        read_url(f"{served.url}/blob.bin", timeout=0.8, retries=0)
    assert time.monotonic() - t0 < 3 and 10 - fault.times == 1


@pytest.mark.parametrize("status, tries", [(403, 1), (500, 3)])
def test_manifest_http_status_reaches_the_message(served, status, tries):
    served.state.faults.append(Fault("manifest.json", "status", times=10, status=status))
    with pytest.raises(RemoteError) as e:
        open_dataset(served.url, timeout=5, retries=2)
    assert f"HTTP {status}" in str(e.value) and "manifest.json" in str(e.value)
    assert "no manifest" not in str(e.value)
    # A 403 will not pass: not retried; a 500 may: retried.
    assert sum(1 for m, p, *_ in served.state.log if p.endswith("manifest.json")) == tries


def test_manifest_403_is_one_error_line_from_the_cli(served):
    served.state.faults.append(Fault("manifest.json", "status", times=10, status=403))
    result = CliRunner().invoke(prep_main, ["inspect", served.url])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "HTTP 403" in lines[0]


def test_missing_manifest_is_still_dataset_not_found(served):
    with pytest.raises(DatasetNotFound):
        open_dataset(served.url + "/nothing-here", timeout=5)


def test_endless_body_is_cut_at_the_limit(served):
    served.state.faults.append(Fault("blob.bin", "endless", times=10))
    t0 = time.monotonic()
    with pytest.raises(RemoteError) as e:
        read_url(f"{served.url}/blob.bin", timeout=5, retries=0, limit=100_000)
    assert "longer than" in str(e.value) and "blob.bin" in str(e.value)
    assert time.monotonic() - t0 < 5


def test_body_longer_than_the_range_asked_is_an_error(served):
    served.state.faults.append(Fault("blob.bin", "long"))
    with pytest.raises(RemoteError, match="4196 bytes where 100 were asked"):
        http_get(f"{served.url}/blob.bin", 0, 100, timeout=5)
    assert http_get(f"{served.url}/blob.bin", 0, 100, timeout=5) == bytes(range(100))


def test_endless_range_answer_is_cut_at_the_range(served):
    served.state.faults.append(Fault("blob.bin", "endless"))
    with pytest.raises(RemoteError, match="longer than the 100 bytes"):
        http_get(f"{served.url}/blob.bin", 0, 100, timeout=5)


def test_verify_names_the_status_of_a_shard_it_cannot_read(served):
    from babylm.shards import verify_dataset

    ds = open_dataset(served.url, timeout=5)
    served.state.faults.append(Fault("shard-000001.tar", "status", times=10, status=403))
    found = [str(p) for p in verify_dataset(ds)]
    assert len(found) == 1 and found[0].startswith("shard-000001.tar: unreadable") and "HTTP 403" in found[0]
