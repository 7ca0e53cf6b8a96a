import io
import os

from click.testing import CliRunner
from PIL import Image

from babylm.prep.cli import main as prep_main
from babylm.shards import Manifest, RollingWriter, open_dataset, verify_dataset, write_manifest
from tests.shards.sample_fixtures import image_samples


def _problems(path, deep=False):
    return verify_dataset(open_dataset(path), deep=deep)


def test_clean_datasets_verify(image_dataset, token_dataset):
    assert _problems(image_dataset, deep=True) == []
    assert _problems(token_dataset, deep=True) == []


def test_flipped_byte_is_caught(image_dataset):
    p = image_dataset / "shard-000001.tar"
    data = bytearray(p.read_bytes())
    data[700] ^= 0xFF
    p.write_bytes(bytes(data))
    problems = _problems(image_dataset)
    assert [q.path for q in problems] == ["shard-000001.tar"]
    assert "checksum mismatch" in problems[0].problem


def test_truncated_shard_is_caught(image_dataset, token_dataset):
    for folder, name in ((image_dataset, "shard-000002.tar"), (token_dataset, "shard-000001.arrow")):
        p = folder / name
        p.write_bytes(p.read_bytes()[:-100])
        problems = _problems(folder)
        assert [q.path for q in problems] == [name]
        assert "wrong size" in problems[0].problem


def test_missing_shard_is_caught(image_dataset):
    os.remove(image_dataset / "shard-000000.tar")
    problems = _problems(image_dataset)
    assert [q.path for q in problems] == ["shard-000000.tar"]
    assert "missing" in problems[0].problem


def test_deep_finds_undecodable_member(tmp_path):
    samples = image_samples(3)
    samples[1]["jpg"] = b"\xff\xd8\xff\xe0 this is not really a jpeg"
    with RollingWriter(tmp_path, "tar", max_samples=10) as w:
        for s in samples:
            w.write(s)
    write_manifest(tmp_path, Manifest(kind="image_text", shards=w.entries))
    assert _problems(tmp_path) == []  # checksums match what was written
    deep = _problems(tmp_path, deep=True)
    assert len(deep) == 1 and "s00001.jpg" in deep[0].problem


def test_deep_finds_token_ids_beyond_vocab(tmp_path):
    with RollingWriter(tmp_path, "arrow", vocab_size=100) as w:
        w.write([1, 2, 99], words=2)
    write_manifest(tmp_path, Manifest(kind="tokens", shards=w.entries, params={"vocab_size": 50}))
    deep = _problems(tmp_path, deep=True)
    assert len(deep) == 1 and "99" in deep[0].problem


def test_verify_cli_exit_codes_and_messages(image_dataset):
    runner = CliRunner()
    ok = runner.invoke(prep_main, ["verify", str(image_dataset)])
    assert ok.exit_code == 0, ok.output
    assert "OK: 3 shards verified" in ok.output
    (image_dataset / "shard-000001.tar").write_bytes(b"garbage")
    bad = runner.invoke(prep_main, ["verify", str(image_dataset)])
    assert bad.exit_code == 1
    assert "shard-000001.tar: wrong size" in bad.output


def test_verify_cli_on_missing_manifest(tmp_path):
    result = CliRunner().invoke(prep_main, ["verify", str(tmp_path)])
    assert result.exit_code != 0
    assert "no manifest" in result.output


def test_inspect_prints_summary_and_contact_sheet(image_dataset, tmp_path):
    sheet = tmp_path / "sheet.png"
    result = CliRunner().invoke(
        prep_main, ["inspect", str(image_dataset), "--sheet", str(sheet), "--count", "6"]
    )
    assert result.exit_code == 0, result.output
    assert "samples 10" in result.output and "decode_error" in result.output
    img = Image.open(io.BytesIO(sheet.read_bytes()))
    assert img.width > 4 * 224
    # The first cell shows the first sample, a red square.
    r, g, b = img.convert("RGB").getpixel((8 + 112, 8 + 112))
    assert r > 200 and g < 60 and b < 60
