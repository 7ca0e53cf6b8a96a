import shutil

import pytest

from babylm.shards import ManifestError, open_dataset, verify_dataset
from babylm.shards.reader import join_location
from tests.conftest import upload_folder


def test_local_folder_file_url_and_manifest_path_resolve_alike(image_dataset):
    a = open_dataset(image_dataset)
    b = open_dataset(f"file://{image_dataset}")
    c = open_dataset(image_dataset / "manifest.json")
    assert a.manifest.to_dict() == b.manifest.to_dict() == c.manifest.to_dict()
    assert a.shard_urls[0] == str(image_dataset / "shard-000000.tar")
    assert verify_dataset(b) == []


def test_join_location_for_urls():
    assert join_location("s3://b/p/", "x.tar") == "s3://b/p/x.tar"
    assert join_location("http://h:1/d", "x.tar") == "http://h:1/d/x.tar"


def test_http_location(image_dataset, http_root):
    folder, base = http_root
    shutil.copytree(image_dataset, folder / "ds")
    ds = open_dataset(f"{base}/ds")
    assert ds.shard_urls[1] == f"{base}/ds/shard-000001.tar"
    assert ds.manifest.num_samples == 10
    assert verify_dataset(ds, deep=True) == []


def test_http_verify_catches_corruption(image_dataset, http_root):
    folder, base = http_root
    shutil.copytree(image_dataset, folder / "ds")
    (folder / "ds/shard-000002.tar").unlink()
    problems = verify_dataset(open_dataset(f"{base}/ds"))
    assert [p.path for p in problems] == ["shard-000002.tar"]


def test_s3_location(image_dataset, s3_bucket):
    bucket, opts = s3_bucket
    url = upload_folder(image_dataset, bucket, "shards/cc3m", opts)
    ds = open_dataset(url, storage_options=opts)
    assert ds.shard_urls[0] == f"{url}/shard-000000.tar"
    assert verify_dataset(ds, deep=True) == []


def test_missing_remote_manifest_is_clear(http_root):
    _, base = http_root
    with pytest.raises((FileNotFoundError, ManifestError), match="manifest"):
        open_dataset(f"{base}/nothing-here")
