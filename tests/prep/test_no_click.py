"""Every prep job runs from Python with click unimportable: the library never needs the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import sys
sys.modules["click"] = None  # any `import click` now raises ImportError
from pathlib import Path

from babylm.prep.images.process import ImagePolicy
from babylm.prep.sharding.config import ShardingConfig
from babylm.prep.sharding.merge import merge_parts
from babylm.prep.sources.cc3m import Cc3mConfig, run_cc3m
from babylm.prep.sources.demo import DemoDataConfig, run_demo_data
from babylm.prep.sources.features import FeaturesConfig, run_features
from babylm.prep.sources.localnarr import LocalNarrConfig, run_localnarr
from babylm.prep.text.run import TextConfig, run_text
from babylm.prep.text.tokenizer import TokenizerConfig, run_tokenizer
from tests.prep.raw_fixtures import (
    LnAnnotation, good_cc3m_rows, jpeg_bytes, write_cc3m_downloader, write_corpus, write_features,
    write_ln_anno,
)

tmp = Path(sys.argv[1])
image = ImagePolicy(size=32)


def sharding(name, **kw):
    return ShardingConfig(out=tmp / "out" / name, samples_per_shard=4, progress=False, **kw)


src = write_cc3m_downloader(tmp / "raw", good_cc3m_rows(6))
done = run_cc3m(Cc3mConfig(src=src, sharding=sharding("cc3m"), image=image))
assert done is not None and done.num_samples == 6, done
for i in range(2):
    part = run_cc3m(Cc3mConfig(src=src, sharding=sharding(f"part{i}", part=(i, 2)), image=image))
    assert part is None
merged = merge_parts([tmp / "out" / "part0", tmp / "out" / "part1"], tmp / "out" / "merged")
assert merged.to_json() == done.to_json()

anns = [LnAnnotation("mscoco", "00000001", "5", "A red ball", jpeg_bytes(1))]
write_ln_anno(tmp / "raw", anns)
ln = run_localnarr(
    LocalNarrConfig(src=tmp / "raw" / "LocalNarratives" / "LocalNarratives", sharding=sharding("ln"), image=image)
)
assert ln is not None and ln.num_samples == 1, ln

cap_path, states, _ = write_features(tmp / "feat", ["a cat", "a dog", "a cow"], dim=8, splits=2)
feats = run_features(FeaturesConfig(captions=cap_path, states=tuple(states), sharding=sharding("feat")))
assert feats is not None and feats.num_samples == 3, feats

demo = run_demo_data(DemoDataConfig(out=tmp / "demo", cc3m_rows=5, ln_images=2, text_lines=3, seed=1))
assert (demo / "Conceptual-3M").is_dir()

write_corpus(tmp / "text", "vis2024")
tok, learned = run_tokenizer(TokenizerConfig(corpus="vis2024", root=tmp / "text", out=tmp / "tok", vocab_size=64))
assert learned > 4
text = run_text(
    TextConfig(corpus="vis2024", root=tmp / "text", tokenizer=str(tmp / "tok"), out=tmp / "out" / "text",
               workers=1, progress=False)
)
assert text.num_samples > 0 and text.num_tokens > 0

loaded = sorted(m for m in sys.modules if m == "click" or m.startswith("click."))
assert loaded == ["click"] and sys.modules["click"] is None, loaded
assert not [m for m in sys.modules if m.startswith("babylm.prep.cli")]
print("OK")
"""


def test_every_prep_job_runs_without_click(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stderr[-4000:]


def test_only_prep_cli_imports_click():
    import ast

    offenders = []
    for path in sorted((ROOT / "prep").rglob("*.py")):
        if path.parent.name == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "click" or n.startswith("click.") for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders
