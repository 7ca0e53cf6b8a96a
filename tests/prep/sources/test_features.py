"""`babylm-prep features`: precomputed (N, D) features + captions round-trip through shards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from babylm.prep.sharding.plan import ArrayRowLoc
from babylm.prep.sources.features import list_feature_rows
from babylm.shards import open_dataset, read_npy, verify_dataset
from tests.prep.cli_helpers import read_samples, run_prep, skipped_lines
from tests.prep.raw_fixtures import REAL_CC3M_ROWS, write_features


def test_features_round_trip(tmp_path):
    captions = [c for c, _ in REAL_CC3M_ROWS] * 3 + ["   ", {"caption": "a dict caption ."}, 17]
    cap_path, states, feats = write_features(tmp_path / "raw", captions, dim=32, splits=2)
    feats_with_nan = np.load(states[1])
    feats_with_nan[0, 3] = np.nan
    np.save(states[1], feats_with_nan)
    out = tmp_path / "out"
    args = ["features", "--captions", str(cap_path), "--out", str(out), "--samples-per-shard", "5"]
    run_prep(*args, "--states", str(states[0]), "--states", str(states[1]), "--workers", "2")
    m = open_dataset(out).manifest
    assert m.kind == "features" and m.name == "features-cc_3M_captions"
    assert m.skipped == {"empty_caption": 1, "malformed_row": 1, "non_finite": 1}
    assert m.num_samples + m.num_skipped == len(captions)
    assert m.params["feature_dim"] == 32 and m.params["feature_dtype"] == "float32"
    assert m.params["caption_cleaning"].startswith("cc3m")
    samples = read_samples(out)
    assert len(samples) == m.num_samples
    first_of_second = len(np.load(states[0]))
    for key, s in samples.items():
        row = int(key.rsplit("-", 1)[1])
        vec = read_npy(s["npy"])
        assert vec.shape == (32,) and vec.dtype == np.float32
        np.testing.assert_array_equal(vec, feats[row])
        meta = json.loads(s["json"])
        assert meta["row"] == row and meta["states"] == states[row >= first_of_second].name
    assert (
        samples["cc_3M_captions-00000000"]["txt"].decode() == "author: a life in photography -- in pictures"
    )
    assert samples["cc_3M_captions-00000025"]["txt"].decode() == "a dict caption."
    nan = next(s for s in skipped_lines(out) if s["reason"] == "non_finite")
    assert nan["row"] == first_of_second and nan["states_row"] == 0
    assert not verify_dataset(open_dataset(out), deep=True)
    # the order of the --states files is the row order: swapping them changes the pairing
    assert list_feature_rows(cap_path, [states[1], states[0]], "none")[0][0].loc == ArrayRowLoc(
        file=0, index=0
    )


def test_count_mismatch_is_a_clear_error(tmp_path):
    cap_path, states, _ = write_features(tmp_path / "raw", ["a", "b", "c", "d", "e"], dim=8, splits=2)
    result = run_prep(
        "features",
        "--captions",
        str(cap_path),
        "--states",
        str(states[0]),
        "--out",
        str(tmp_path / "o"),
        ok=False,
    )
    assert "cc_3M_captions.json has 5 captions" in result.output
    assert f"have 2 rows ({states[0].name}: 2)" in result.output
    assert not (tmp_path / "o").exists()


def test_bad_arrays_are_clear_errors(tmp_path):
    cap_path, states, _ = write_features(tmp_path / "raw", ["a", "b"], dim=8, splits=1)
    np.save(states[0], np.zeros((2, 8, 1), np.float32))
    result = run_prep(
        "features",
        "--captions",
        str(cap_path),
        "--states",
        str(states[0]),
        "--out",
        str(tmp_path / "o"),
        ok=False,
    )
    assert "expected a 2-D" in result.output
    cap_path.write_text('{"not": "a list"}')
    result = run_prep(
        "features",
        "--captions",
        str(cap_path),
        "--states",
        str(states[0]),
        "--out",
        str(tmp_path / "o"),
        ok=False,
    )
    assert "expected a JSON list" in result.output


def test_arrays_are_memory_mapped(tmp_path, monkeypatch):
    cap_path, states, _ = write_features(tmp_path / "raw", ["a", "b", "c"], dim=8, splits=1)
    calls = []
    real_load = np.load

    def spy(file, *args, **kwargs):
        if not Path(file).name.startswith(".plan.order"):  # the feature arrays, not the saved row order
            calls.append(kwargs.get("mmap_mode"))
        return real_load(file, *args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    run_prep(
        "features", "--captions", str(cap_path), "--states", str(states[0]), "--out", str(tmp_path / "o")
    )
    assert calls and all(mode == "r" for mode in calls)
