"""Refactors change no output: shards, manifests and token shards are byte-identical, and
fixed-seed training runs numerically equal, to what tests/golden/digests.json recorded (see
tests/golden/pipeline.py)."""

import json

import pytest

from tests.golden.pipeline import DIGESTS, run_pipeline, same


@pytest.mark.slow
def test_outputs_are_byte_identical_to_the_recorded_digests(tmp_path):
    expected = json.loads(DIGESTS.read_text())
    actual = run_pipeline(tmp_path)
    changed = sorted(k for k in expected.keys() | actual.keys() if not same(expected.get(k), actual.get(k)))
    assert not changed, (
        f"{len(changed)} outputs differ from {DIGESTS.name}: {changed[:12]}. If the change is meant to "
        "alter outputs, run `python -m tests.golden.pipeline --write` and say why in the commit."
    )
