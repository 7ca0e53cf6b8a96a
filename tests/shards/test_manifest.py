import json

import pytest

from babylm.shards import FORMAT_VERSION, Manifest, ManifestError, ShardEntry, load_manifest, write_manifest
from babylm.shards.manifest import check_relative_path, parse_manifest

SHA = "0" * 64


def _manifest_dict(**changes):
    d = {
        "format_version": FORMAT_VERSION,
        "kind": "image_text",
        "shards": [{"path": "shard-000000.tar", "samples": 3, "bytes": 10, "sha256": SHA}],
        "skipped": {"decode_error": 1},
        "params": {"image_size": 224},
    }
    d.update(changes)
    return d


def test_round_trip_through_json(tmp_path):
    m = Manifest(
        kind="tokens",
        name="text",
        shards=[ShardEntry("a.arrow", 2, 100, SHA, tokens=7, meta={"rows": 2})],
        skipped={"bad_utf8": 3},
        params={"vocab_size": 32778},
    )
    write_manifest(tmp_path, m)
    back = load_manifest(tmp_path)
    assert back.to_dict() == m.to_dict()
    assert back.totals() == {"shards": 1, "samples": 2, "bytes": 100, "tokens": 7, "skipped": 3}
    assert back.shards[0].meta == {"rows": 2}


def test_manifest_bytes_are_reproducible(tmp_path):
    m = Manifest(kind="image_text", shards=[ShardEntry("s.tar", 1, 2, SHA)])
    write_manifest(tmp_path / "a", m)
    write_manifest(tmp_path / "b", Manifest(kind="image_text", shards=[ShardEntry("s.tar", 1, 2, SHA)]))
    assert (tmp_path / "a/manifest.json").read_bytes() == (tmp_path / "b/manifest.json").read_bytes()


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"kind": "video"}, "kind"),
        ({"format_version": "1"}, "format_version"),
        ({"shards": [{"path": "s.tar", "samples": "3", "bytes": 1, "sha256": SHA}]}, "shards[0].samples"),
        ({"shards": [{"path": "s.tar", "samples": 3, "bytes": 1}]}, "shards[0].sha256"),
        ({"shards": [{"path": "s.tar", "samples": 3, "bytes": 1, "sha256": "xyz"}]}, "shards[0].sha256"),
        ({"skipped": {"x": "many"}}, "skipped"),
        ({"params": []}, "params"),
    ],
)
def test_malformed_field_is_named(changes, field):
    with pytest.raises(ManifestError) as e:
        Manifest.from_dict(_manifest_dict(**changes), "somewhere/manifest.json")
    assert field in str(e.value)
    assert "somewhere/manifest.json" in str(e.value)


def test_missing_field_is_named():
    d = _manifest_dict()
    del d["kind"]
    with pytest.raises(ManifestError, match="missing field 'kind'"):
        Manifest.from_dict(d)


def test_newer_format_version_is_refused():
    with pytest.raises(ManifestError, match="newer than this babylm-pipeline understands"):
        Manifest.from_dict(_manifest_dict(format_version=FORMAT_VERSION + 1))


def test_invalid_json_names_line():
    with pytest.raises(ManifestError, match="line 2"):
        parse_manifest('{\n "kind": ,\n}', "m.json")


@pytest.mark.parametrize(
    "bad", ["/etc/passwd", "../other/shard.tar", "a/../../x.tar", "s3://b/x.tar", "C:/x.tar"]
)
def test_path_traversal_is_rejected(bad):
    with pytest.raises(ManifestError):
        check_relative_path(bad)
    with pytest.raises(ManifestError):
        Manifest.from_dict(_manifest_dict(shards=[{"path": bad, "samples": 1, "bytes": 1, "sha256": SHA}]))


def test_nested_relative_paths_are_fine():
    assert check_relative_path("part-0/shard-000001.tar") == "part-0/shard-000001.tar"
    assert check_relative_path("a/../b.tar") == "a/../b.tar"


def test_write_manifest_refuses_escaping_paths(tmp_path):
    with pytest.raises(ManifestError):
        write_manifest(tmp_path, Manifest(kind="tokens", shards=[ShardEntry("../x.arrow", 1, 1, SHA)]))
    assert not (tmp_path / "manifest.json").exists()


def test_summary_lists_skips_and_params():
    m = Manifest.from_dict(_manifest_dict())
    text = m.summary()
    assert "decode_error" in text and "image_size" in text and "samples 3" in text
    assert json.loads(m.to_json())["totals"]["skipped"] == 1


def test_word_counts_round_trip_and_are_validated():
    sha = SHA
    m = Manifest(kind="tokens", shards=[ShardEntry("a.arrow", 2, 10, sha, 5, words=7)])
    back = parse_manifest(m.to_json())
    assert back.shards[0].words == 7 and back.totals()["words"] == back.num_words == 7
    old = Manifest(
        kind="tokens",
        shards=[ShardEntry("a.arrow", 2, 10, sha, 5), ShardEntry("b.arrow", 1, 4, sha, 2, words=3)],
    )
    assert old.num_words is None and "words" not in old.totals()
    assert "not counted" in old.summary()
    bad = json.loads(m.to_json())
    bad["shards"][0]["words"] = -1
    with pytest.raises(ManifestError, match="words"):
        parse_manifest(json.dumps(bad))
