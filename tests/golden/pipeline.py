"""The byte-identity check: a fixed pipeline run whose every output is digested.

`run_pipeline(work)` generates demo raw data, runs every prep command (tokenizer, text, CC-3M both
splits, Localized Narratives, features) and two fixed-seed single-process trainings (tiny Flamingo
on images + text, tiny OPT on text), and returns {name: sha256} for every prep output (compared
byte for byte) and, for the trainings, per-tensor statistics of the weights (`same_weights`: each
tensor at 1e-3 of its own magnitude; attention key biases, float noise by construction, are not
compared) and the logged metrics (1e-4 relative: float kernels differ in the last bits between CPU
models). `digests.json` beside this file
holds the digests of the code before a refactor; `tests/test_golden.py` compares. When a change is
meant to alter outputs, regenerate with `python -m tests.golden.pipeline --write` and say why in
the commit.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from babylm.prep.sources.listing import LISTING_DIR
from babylm.shards import __version__

HERE = Path(__file__).resolve().parent
DIGESTS = HERE / "digests.json"
BIN = Path(sys.executable).parent
# Metric fields that measure time, not behaviour.
TIMING = {
    "tokens_per_s",
    "samples_per_s",
    "steps_per_s",
    "elapsed",
    "time",
    "seconds",
    "step_time",
    "data_time",
}


def _run(*args: str, env: dict[str, str]) -> None:
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _digest_folder(folder: Path, work: Path, prefix: str, out: dict[str, str]) -> None:
    for p in sorted(folder.rglob("*")):
        if LISTING_DIR in p.relative_to(folder).parts:
            continue  # a cache keyed by the inputs' mtimes, not an output
        if p.is_file():
            data = p.read_bytes()
            if p.suffix in (".json", ".jsonl"):  # records name input paths: the one run-to-run difference
                data = data.replace(str(work).encode(), b"WORK")
                # Manifests record the release that wrote them; a version bump is not a change of output.
                data = data.replace(f'"tool_version": "{__version__}"'.encode(), b'"tool_version": "VERSION"')
            out[f"{prefix}/{p.relative_to(folder).as_posix()}"] = _sha(data)


def _tensor_stats(t: Any) -> list[float]:
    """Sum, sum of |x|, sum of x^2 and 8 evenly spaced values of a tensor, in float64."""
    x = t.detach().double().flatten()
    picks = x[:: max(1, x.numel() // 8)][:8]
    return [float(x.sum()), float(x.abs().sum()), float((x * x).sum()), *map(float, picks)]


def _digest_run(run: Path, prefix: str, out: dict[str, Any]) -> None:
    """The trained weights and the logged metrics as numbers, compared with a tolerance: float
    kernels differ between CPU models (the last bits of a 4-step training move, nothing more)."""
    import torch

    ckpts = sorted((run / "checkpoints").glob("step-*"))
    state = torch.load(ckpts[-1] / "model.pt", map_location="cpu", weights_only=True)
    out[f"{prefix}/model"] = {key: _tensor_stats(state[key]) for key in sorted(state)}
    records = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        records.append({k: v for k, v in rec.items() if k not in TIMING})
    out[f"{prefix}/metrics"] = records
    # The run folder's own path is the one thing that differs between two runs of the check.
    config = (run / "config.toml").read_text().replace(str(run.parent), "WORK")
    out[f"{prefix}/config.toml"] = _sha(config.encode())


def same(expected: Any, actual: Any, rel: float = 1e-4, abs_: float = 1e-6) -> bool:
    """Equal, floats up to `rel`/`abs_` (nested lists and dicts compared element by element)."""
    if isinstance(expected, float) or isinstance(actual, float):
        if not isinstance(expected, (int, float)) or not isinstance(actual, (int, float)):
            return False
        return math.isclose(expected, actual, rel_tol=rel, abs_tol=abs_)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(same(expected[k], actual[k]) for k in expected)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(same(e, a) for e, a in zip(expected, actual, strict=True))
    return expected == actual


# Tensors whose values are float noise by construction: the gradient of an attention key bias is
# zero in exact arithmetic (softmax ignores a shift shared by all keys), so what it holds after
# training is rounding noise that Adam scales up (1e-8 on one CPU, 1e-6 on another).
NOISE_TENSORS = re.compile(r"k_proj\.bias$")
# A weight statistic may move by this fraction of the tensor's own magnitude: far above what
# float kernel differences do to a 4-step training (1e-6), far below what one more optimizer step
# or a 10% different learning rate does (1e-2 and more).
WEIGHT_REL = 1e-3


def same_weights(
    expected: dict[str, list[float]], actual: dict[str, list[float]], rel: float = WEIGHT_REL
) -> bool:
    """The same tensors with the same statistics (`_tensor_stats`), each compared at `rel` of its
    own magnitude: the sums at `rel` of the sum of |x| (or of x^2), each picked value at `rel` of
    the larger of itself and the tensor's typical element (sum x^2 / sum |x|)."""
    if expected.keys() != actual.keys():
        return False
    return all(NOISE_TENSORS.search(k) or _same_tensor(expected[k], actual[k], rel) for k in expected)


def _same_tensor(expected: list[float], actual: list[float], rel: float) -> bool:
    if len(expected) != len(actual) or len(expected) < 3:
        return False
    _, abs_sum, square_sum = expected[:3]
    typical = square_sum / abs_sum if abs_sum else 0.0
    tolerances = [rel * abs_sum, rel * abs_sum, rel * square_sum]
    tolerances += [rel * max(abs(x), typical) for x in expected[3:]]
    # 1e-12: exact zeros (frozen biases) stay exact, yet a denormal difference is no failure.
    return all(abs(e - a) <= t + 1e-12 for e, a, t in zip(expected, actual, tolerances, strict=True))


def same_output(key: str, expected: Any, actual: Any) -> bool:
    """Whether output `key` of the pipeline matches what digests.json recorded."""
    if key.endswith("/model") and isinstance(expected, dict) and isinstance(actual, dict):
        return same_weights(expected, actual)
    return same(expected, actual)


def _write_features(raw: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    captions = [f"a photo of {i} red square ." if i % 7 else "" for i in range(90)]
    cap = raw / "cc_3M_captions.json"
    cap.write_text(json.dumps(captions))
    states = raw / "cc_3M_dino_v2_states_1of1.npy"
    np.save(states, rng.standard_normal((90, 768)).astype(np.float32))
    return cap, states


def _fixed_tokenizer(out: Path) -> Path:
    """A Unigram tokenizer of the project's recipe with a fixed vocabulary. The trained one is not
    usable here: the Unigram trainer's pieces vary between runs on the same corpus."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789.,!?;:'\"-()"))
    words = ["a", "the", "of", "and", "is", "red", "blue", "green", "circle", "square", "triangle"]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("<mask>", 0.0), ("\u2581", -2.0)]
    vocab += [(c, -5.0) for c in chars] + [("\u2581" + c, -4.0) for c in chars]
    vocab += [("\u2581" + w, -3.0) for w in words]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Nmt(), normalizers.NFKC(), normalizers.Replace(r"\s+", " "), normalizers.Lowercase()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(), pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.Punctuation(behavior="isolated")]
    )  # fmt: skip
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
        mask_token="<mask>", additional_special_tokens=["<image>"],
    )  # fmt: skip
    fast.add_tokens(["<PERSON>"])
    fast.save_pretrained(out)
    return out


def run_pipeline(work: Path) -> dict[str, Any]:
    """Run the fixed pipeline under `work` and return the digest of every output."""
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env["BABYLM_CACHE_DIR"] = str(work / "cache")
    env.pop("BABYLM_DATASET_ROOT_DIR", None)
    env.pop("BABYLM_ROOT_DIR", None)
    prep, train = str(BIN / "babylm-prep"), str(BIN / "babylm-train")
    raw, shards = work / "datasets", work / "shards"
    _run(prep, "demo-data", "--out", str(work), "--cc3m-rows", "160", "--ln-images", "30",
         "--text-lines", "150", env=env)  # fmt: skip
    tok = shards / "tokenizer"
    _run(prep, "tokenizer", "--corpus", "vis2024", "--root", str(raw), "--out", str(tok),
         "--vocab-size", "400", env=env)  # fmt: skip
    tok = _fixed_tokenizer(shards / "tokenizer_fixed")
    _run(prep, "text", "--corpus", "vis2024", "--root", str(raw), "--tokenizer", str(tok),
         "--out", str(shards / "text"), "--workers", "2", env=env)  # fmt: skip
    for split in ("training", "validation"):
        _run(prep, "cc3m", "--root", str(raw), "--split", split, "--out", str(shards / f"cc3m_{split}"),
             "--workers", "2", "--samples-per-shard", "50", env=env)  # fmt: skip
    _run(prep, "localnarr", "--root", str(raw), "--out", str(shards / "localnarr"), "--workers", "1",
         env=env)  # fmt: skip
    cap, states = _write_features(raw)
    _run(prep, "features", "--captions", str(cap), "--states", str(states), "--out", str(shards / "features"),
         "--samples-per-shard", "40", env=env)  # fmt: skip
    common = ["--size", "tiny", "--global-batch-size", "8", "--seq-len", "16", "--log-every", "1",
              "--warmup-steps", "2", "--lr", "1e-3", "--workers", "0", "--max-steps", "4",
              "--save-every", "2", "--seed", "3"]  # fmt: skip
    _run(train, "flamingo", "--data", str(shards / "cc3m_training"), "--data", str(shards / "text"),
         "--tokenizer", str(tok), "--vision-encoder", "tiny-random", "--mix", "1v1",
         "--out", str(work / "run_flamingo"), *common, env=env)  # fmt: skip
    _run(train, "opt", "--data", str(shards / "text"), "--tokenizer", str(tok),
         "--out", str(work / "run_opt"), *common, env=env)  # fmt: skip
    out: dict[str, Any] = {}
    for d in sorted(shards.iterdir()):
        _digest_folder(d, work, f"shards/{d.name}", out)
    del out["shards/tokenizer/tokenizer.json"]  # see _fixed_tokenizer
    for name in ("run_flamingo", "run_opt"):
        _digest_run(work / name, name, out)
    return out


def main() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        digests = run_pipeline(Path(tmp))
    if "--write" in sys.argv:
        DIGESTS.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
        print(f"wrote {len(digests)} digests to {DIGESTS}")
    else:
        print(json.dumps(digests, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
