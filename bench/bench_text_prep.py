"""Benchmark: `babylm-prep text` against the original's text path, on the same corpus and cores.

The original: `datasets` "text" builder (lines with their newline), `dataset.map(tokenize,
batched=True)` with `PreTrainedTokenizerFast`, then the 1000-line grouping into 128-token chunks
(`Group_Texts.group_default`). Ours: the `babylm-prep text` command in a subprocess, timed from
start to exit (tokenizer loading and worker start-up included), with its peak resident memory.

Self-contained: generates a corpus of BENCH_WORDS words (default 6M) in the strict_10M layout,
trains a 32768-piece tokenizer on part of it, and removes everything at the end.
Run: `.venv/bin/python bench/bench_text_prep.py` (or `make bench`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from babylm.prep.text.corpus import CORPORA, scan_file
from babylm.prep.text.run import default_workers
from babylm.prep.text.tokenizer import corpus_batches, save_tokenizer, train_tokenizer
from babylm.shards import load_manifest

WORDS = int(os.environ.get("BENCH_WORDS", 6_000_000))
SEQ_LEN = 128


def make_vocabulary(rng: np.random.Generator, n: int) -> list[str]:
    """Pseudo-words from syllables: short ones common, as in natural text."""
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"]
    words: set[str] = set()
    while len(words) < n:
        counts = 1 + np.minimum(rng.geometric(0.45, size=n), 5)
        picks = rng.integers(0, len(syllables), size=int(counts.sum())).tolist()
        tails = rng.random(n) < 0.3
        start = 0
        for k, count in enumerate(counts.tolist()):
            w = "".join(syllables[p] for p in picks[start : start + count])
            words.add(w + "n" if tails[k] else w)
            start += count
    return sorted(words, key=len)[:n]


def generate_corpus(root: Path, words: int, seed: int = 0) -> int:
    """The strict_10M layout under `root` with about `words` words in 10 files; returns lines."""
    rng = np.random.default_rng(seed)
    vocab = make_vocabulary(rng, 20000)
    zipf = 1.0 / np.arange(1, len(vocab) + 1)
    zipf /= zipf.sum()
    folder = root / CORPORA["strict_10M"].train_dir
    folder.mkdir(parents=True)
    sources = CORPORA["strict_10M"].sources
    lines_total = 0
    for i, source in enumerate(sources):
        budget = words // len(sources)
        lengths = rng.choice([2, 4, 6, 9, 13, 20, 35], size=budget // 6 + 10)
        lengths = lengths[: int(np.searchsorted(np.cumsum(lengths), budget)) + 1]
        ids = rng.choice(len(vocab), size=int(lengths.sum()), p=zipf).tolist()
        ends = np.cumsum(lengths).tolist()
        punct = rng.choice([" .", " ?", " !", " ,", ""], size=len(lengths)).tolist()
        with open(folder / f"{source}.train", "w", encoding="utf-8") as f:
            start = 0
            for j, end in enumerate(ends):
                line = " ".join(map(vocab.__getitem__, ids[start:end])) + punct[j]
                start = end
                if j % 7 == 0:
                    line = line.capitalize()
                if source == "switchboard":
                    line = ("A:\t" if j % 2 else "B:\t") + line
                if j % 11 == 0:
                    line += f" {j % 997}"
                f.write(line + "\n")
                if j % 40 == 0:
                    f.write("\n")
                lines_total += 1 + (j % 40 == 0)
        if i == 0:
            # One CRLF file: the real corpora are not all LF.
            path = folder / f"{source}.train"
            path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    return lines_total


def build_tokenizer(root: Path, out: Path) -> None:
    """Train the recipe (32768 pieces) on the first 300k lines, as the real command would on all."""
    paths = sorted((root / CORPORA["strict_10M"].train_dir).iterdir())
    sources = [scan_file(p) for p in paths]

    def batches():
        seen = 0
        for batch in corpus_batches(sources, keep_newline=False):
            yield batch
            seen += len(batch)
            if seen >= 300_000:
                return

    save_tokenizer(train_tokenizer(batches(), None, 32768, show_progress=False), out)


def run_ours(root: Path, tok: Path, out: Path, workers: int) -> tuple[float, int, int, float]:
    """Wall time, tokens, lines and peak memory (MiB, PSS summed over the process tree) of
    `babylm-prep text`."""
    prep = Path(sys.executable).with_name("babylm-prep")
    cmd = [str(prep), "text", "--corpus", "strict_10M", "--root", str(root)]
    cmd += ["--tokenizer", str(tok), "--out", str(out), "--workers", str(workers)]
    peak = [0.0]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_rss, args=(proc.pid, peak, stop), daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"babylm-prep text failed:\n{output}")
    m = load_manifest(out)
    return elapsed, m.num_tokens, m.num_samples, peak[0]


def _sample_rss(pid: int, peak: list[float], stop: threading.Event) -> None:
    try:
        import psutil
    except ImportError:  # psutil is a dev extra; without it no memory figure
        return
    root = psutil.Process(pid)
    while not stop.is_set():
        try:
            procs = [root, *root.children(recursive=True)]
            # PSS: forked workers share the parent's pages; RSS would count them once per process.
            total = sum(getattr(p.memory_full_info(), "pss", 0) or p.memory_info().rss for p in procs)
            peak[0] = max(peak[0], total / 2**20)
        except psutil.Error:
            pass
        time.sleep(0.1)


def run_original(root: Path, tok: Path, cache: Path) -> tuple[float, int, int]:
    """The original's path; returns wall time, tokens tokenized and 128-token chunks."""
    import datasets
    from transformers import PreTrainedTokenizerFast

    datasets.disable_progress_bars()
    started = time.perf_counter()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tok))
    files = [str(p) for p in sorted((root / CORPORA["strict_10M"].train_dir).iterdir())]
    ds = datasets.load_dataset(
        "text", data_files={"train": files}, split="train", keep_linebreaks=True, cache_dir=str(cache)
    )
    tokenized = ds.map(lambda ex: tokenizer(ex["text"]), batched=True, remove_columns=["text"])

    def group_default(examples):  # Group_Texts.group_default of the original
        concatenated = {k: sum(examples[k], []) for k in examples.keys()}
        total = len(concatenated["input_ids"])
        use = (total // SEQ_LEN) * SEQ_LEN
        result = {k: [t[i : i + SEQ_LEN] for i in range(0, use, SEQ_LEN)] for k, t in concatenated.items()}
        result["labels"] = result["input_ids"].copy()
        return result

    grouped = tokenized.map(group_default, batched=True, batch_size=1000)
    elapsed = time.perf_counter() - started
    tokens = sum(len(chunk.values) for chunk in tokenized.data.column("input_ids").chunks)
    return elapsed, tokens, len(grouped)


def main() -> None:
    workers = default_workers()
    tmp = Path(tempfile.mkdtemp(prefix="bench_text_prep_"))
    try:
        t = time.perf_counter()
        lines = generate_corpus(tmp / "data", WORDS)
        print(
            f"corpus: {WORDS / 1e6:.1f}M words, {lines:,} lines ({time.perf_counter() - t:.0f}s)", flush=True
        )
        t = time.perf_counter()
        build_tokenizer(tmp / "data", tmp / "tok")
        print(f"tokenizer trained ({time.perf_counter() - t:.0f}s)", flush=True)
        ours_s, ours_tok, ours_lines, rss = run_ours(tmp / "data", tmp / "tok", tmp / "shards", workers)
        ours_rate = ours_tok / ours_s
        mem = f", peak memory {rss:.0f} MiB (PSS, main + workers)" if rss else ""
        print(
            f"babylm-prep text: {ours_lines:,} lines, {ours_tok:,} tokens in {ours_s:.1f}s{mem}", flush=True
        )
        orig_s, orig_tok, chunks = run_original(tmp / "data", tmp / "tok", tmp / "hf_cache")
        orig_rate = orig_tok / orig_s
        print(f"original: {orig_tok:,} tokens, {chunks:,} chunks of {SEQ_LEN} in {orig_s:.1f}s", flush=True)
        print(
            f"text prep: {ours_rate / 1e6:.2f}M tokens/s vs original {orig_rate / 1e6:.2f}M tokens/s "
            f"-> {ours_rate / orig_rate:.1f}x ({workers} cores)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
