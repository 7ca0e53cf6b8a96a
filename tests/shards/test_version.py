"""The release that wrote a dataset is in its manifest."""

from __future__ import annotations

import json
from importlib.metadata import version

from babylm.shards import Manifest, RollingWriter, __version__, load_manifest, write_manifest
from babylm.shards.version import package_version


def test_the_version_is_the_installed_release():
    assert __version__ == package_version() == version("babylm-pipeline")


def test_write_manifest_records_the_version(tmp_path):
    with RollingWriter(tmp_path, "arrow", max_samples=4, vocab_size=100) as w:
        for i in range(3):
            w.write([i, i + 1], words=2)
    write_manifest(tmp_path, Manifest(kind="tokens", shards=w.entries, name="t"))
    assert json.loads((tmp_path / "manifest.json").read_text())["tool_version"] == version("babylm-pipeline")
    assert load_manifest(tmp_path).tool_version == version("babylm-pipeline")
