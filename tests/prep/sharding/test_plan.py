"""The plan of a run is computed once per output folder: `--plan-only` (or the first part) writes
it with its row order, the parts read both, and the result is the single run's, byte for byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from babylm.prep.images.process import ImagePolicy
from babylm.prep.sharding import plan as plan_module
from babylm.prep.sharding.config import ShardingConfig
from babylm.prep.sharding.records import load_order, order_path, read_plan
from babylm.prep.sources.cc3m import Cc3mConfig, run_cc3m
from tests.prep.cli_helpers import folder_bytes, run_prep
from tests.prep.raw_fixtures import Cc3mRow, good_cc3m_rows, write_cc3m_downloader


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> tuple[Path, Path]:
    """Raw CC-3M rows (with skips) and the single uninterrupted run of them."""
    root = tmp_path_factory.mktemp("raw")
    rows = good_cc3m_rows(10) + [Cc3mRow("failed", f"http://example.com/{i}.jpg", None) for i in range(2)]
    write_cc3m_downloader(root, rows)
    single = tmp_path_factory.mktemp("single") / "out"
    run_prep(*args(root, single))
    return root, single


def args(root: Path, out: Path) -> list[str]:
    return ["cc3m", "--root", str(root), "--out", str(out), "--samples-per-shard", "3", "--image-size", "48"]


def test_plan_only_then_parts_in_one_folder_give_the_single_run(raw, tmp_path):
    root, single = raw
    out = tmp_path / "out"
    result = run_prep(*args(root, out), "--plan-only")
    assert "4 work units" in result.output and "--part I/N" in result.output
    plan = read_plan(out)
    assert plan is not None and plan["units"] == 4 and not list(out.glob("shard-*.tar"))
    assert load_order(out, plan["plan_sha256"], 12) is not None
    for i in range(3):
        run_prep(*args(root, out), "--part", f"{i}/3")
    assert folder_bytes(out) == folder_bytes(single)


def test_parts_read_the_saved_order_instead_of_shuffling(raw, tmp_path, monkeypatch):
    root, single = raw
    src = root / "Conceptual-3M"

    def config(**kw) -> Cc3mConfig:
        sharding = ShardingConfig(out=tmp_path / "out", samples_per_shard=3, progress=False, **kw)
        return Cc3mConfig(src=src, sharding=sharding, image=ImagePolicy(size=48))

    run_cc3m(config(plan_only=True))

    def no_shuffle(count: int, seed: int) -> np.ndarray:
        raise AssertionError("a part shuffled the rows again")

    monkeypatch.setattr(plan_module, "shuffled_order", no_shuffle)
    for i in range(2):
        run_cc3m(config(part=(i, 2)))
    assert folder_bytes(tmp_path / "out") == folder_bytes(single)


def test_the_order_belongs_to_its_plan(raw, tmp_path):
    root, _ = raw
    out = tmp_path / "out"
    run_prep(*args(root, out), "--plan-only")
    first = read_plan(out)["plan_sha256"]
    assert load_order(out, first, 11) is None  # another row count: not this plan's order
    run_prep(*args(root, out), "--plan-only", "--seed", "1", "--overwrite")
    second = read_plan(out)["plan_sha256"]
    assert second != first and not order_path(out, first).exists()
    assert sorted(p.name for p in out.glob(".plan.order-*")) == [order_path(out, second).name]
    # A killed write can leave a broken order file: it is shuffled again, not trusted.
    order_path(out, second).write_bytes(b"not numpy")
    assert load_order(out, second, 12) is None
    run_prep(*args(root, out), "--seed", "1")
    assert load_order(out, second, 12) is not None
