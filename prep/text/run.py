"""BabyLM text corpora -> Arrow token shards, one row per line (`babylm-prep text`).

Every line is tokenized the way the original's dataset builder fed `PreTrainedTokenizerFast`
(see `text.corpus`), so the concatenated rows are, token for token, the original's stream; the
loader cuts it into 128-token chunks. Files are streamed, batches go to `--workers` tokenizer
processes, and results are written in input order, so the output never depends on `--workers`.

Resume: each shard closes at a fixed row count and carries in its `meta` where its last row came
from (file index, line number) and the per-file counts so far. A rerun keeps the complete shards,
restarts reading right after the last one, and so writes the same shards and manifest as an
uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from babylm.prep.errors import ConfigError, OutputError
from babylm.prep.sharding.claim import hold_alone
from babylm.prep.text.corpus import (
    BAD_UTF8_POLICIES,
    CORPORA,
    SPLITS,
    Block,
    SourceFile,
    corpus_files,
    read_blocks,
    scan_file,
)
from babylm.prep.text.pool import TokenizerPool
from babylm.prep.text.tokenizer import LoadedTokenizer, load_tokenizer
from babylm.shards import Manifest, RollingWriter, ShardEntry, write_manifest
from babylm.shards.progress import progress as progress_display
from babylm.shards.progress import write

SEQ_LEN_HINT = 128
DEFAULT_SHARD_ROWS = 32768
DEFAULT_BATCH_LINES = 4096
# Bad lines reported one by one per file; the rest only counted (and in the manifest).
MAX_BAD_REPORTS = 10
COUNT_FIELDS = ("rows", "tokens", "bad_utf8", "skipped_bad_utf8", "words")


@dataclass
class TextJob:
    """Everything that decides the output; `fingerprint` ties shards to it across reruns."""

    corpus: str
    split: str
    sources: list[SourceFile]
    tokenizer: LoadedTokenizer
    strip_newlines: bool
    on_bad_utf8: str
    shard_rows: int

    def fingerprint(self) -> str:
        key = {
            "corpus": self.corpus,
            "split": self.split,
            "files": [(s.name, s.sha256, s.lines) for s in self.sources],
            "tokenizer": self.tokenizer.sha256,
            "strip_newlines": self.strip_newlines,
            "on_bad_utf8": self.on_bad_utf8,
            "shard_rows": self.shard_rows,
            # Shards of a prep from before word counts have no `words` column: never resume them.
            "words": 1,
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _resume_point(
    completed: list[ShardEntry], run: str, n_files: int, out: Path
) -> tuple[int, int, list[list[int]]]:
    """(file index, line, per-file counts) right after the last complete shard."""
    counts = [[0] * len(COUNT_FIELDS) for _ in range(n_files)]
    if not completed:
        return 0, 0, counts
    for entry in completed:
        if entry.meta.get("run") != run:
            raise OutputError(
                f"{out}/{entry.path} was written by a different text prep (other corpus, split, files, "
                "tokenizer or options); remove the folder or choose another --out"
            )
    meta = completed[-1].meta
    for i, c in enumerate(meta["counts"]):
        counts[i] = list(c)
    return int(meta["file"]), int(meta["line"]), counts


class _Run:
    """One pass of the pipeline: read blocks, tokenize in workers, write in order, count."""

    def __init__(
        self, job: TextJob, out: Path, workers: int, batch_lines: int, progress: bool, fast_path: bool
    ):
        self.job = job
        self.out = out
        self.workers = workers
        self.batch_lines = batch_lines
        self.fast_path = fast_path
        self.run_id = job.fingerprint()
        self.writer = RollingWriter(
            out, "arrow", max_samples=job.shard_rows, vocab_size=job.tokenizer.vocab_size
        )
        self.start_file, self.start_line, self.counts = _resume_point(
            self.writer.completed, self.run_id, len(job.sources), out
        )
        self.todo = sum(s.lines for s in job.sources[self.start_file :]) - self.start_line
        self.progress = progress
        self.bar: Any = None
        self.tokens_done = 0
        self.started = time.monotonic()
        self.reported: dict[str, int] = {}

    def _report_bad(self, path: Path, line: int, err: UnicodeDecodeError) -> None:
        n = self.reported.get(path.name, 0) + 1
        self.reported[path.name] = n
        if n <= MAX_BAD_REPORTS:
            action = {"replace": "replaced with U+FFFD", "skip": "line skipped"}[self.job.on_bad_utf8]
            byte = err.object[err.start : err.start + 1].hex()
            write(
                f"warning: {path}:{line}: bytes that are not UTF-8 (0x{byte} at column {err.start + 1}); {action}"
            )
        elif n == MAX_BAD_REPORTS + 1:
            write(f"warning: {path}: more lines with bad UTF-8; counted in the manifest")

    def _meta(self, file_index: int, line: int, current: list[int] | None) -> dict[str, Any]:
        counts = [list(c) for c in self.counts[:file_index]]
        if current is not None:
            counts.append(current)
        return {"run": self.run_id, "file": file_index, "line": line, "counts": counts}

    def _consume(self, tag: tuple[int, Block], result: tuple[np.ndarray, ...]) -> None:
        file_index, block = tag
        lengths, values, words = result  # words: len(line.split()) of each line (pool.py)
        base = list(self.counts[file_index])
        ends = np.cumsum(lengths)
        word_ends = np.cumsum(words)

        def meta_at(row: int) -> dict[str, Any]:
            line = block.row_line(row)
            current = [
                base[0] + row + 1,
                base[1] + int(ends[row]),
                base[2] + sum(1 for b in block.bad if b <= line),
                base[3] + sum(1 for s in block.skipped if s <= line),
                base[4] + int(word_ends[row]),
            ]
            return self._meta(file_index, line, current)

        self.writer.write_rows(lengths, values, words, meta_at)
        c = self.counts[file_index]
        c[0] += len(lengths)
        c[1] += int(values.size)
        c[2] += len(block.bad)
        c[3] += len(block.skipped)
        c[4] += int(word_ends[-1]) if len(words) else 0
        self.tokens_done += int(values.size)
        elapsed = max(time.monotonic() - self.started, 1e-9)
        self.bar.set_postfix_str(f"{self.tokens_done / elapsed / 1e6:.2f}M tok/s", refresh=False)
        self.bar.update(block.end - block.start)

    def run(self) -> list[ShardEntry]:
        job = self.job
        try:
            with TokenizerPool(
                job.tokenizer.backend_json,
                self.workers,
                job.tokenizer.fast.split_special_tokens,
                self.fast_path,
            ) as pool:
                # Only now: a tqdm bar starts a monitor thread, and the workers are forked without it.
                self.bar = progress_display(
                    max(self.todo, 0),
                    f"text {job.corpus} {job.split}",
                    "line",
                    enabled=self.progress,
                    unit_scale=True,
                )
                for fi in range(self.start_file, len(job.sources)):
                    blocks = read_blocks(
                        job.sources[fi],
                        keep_newline=not job.strip_newlines,
                        on_bad_utf8=job.on_bad_utf8,
                        start_line=self.start_line if fi == self.start_file else 0,
                        block_lines=self.batch_lines,
                        report=self._report_bad,
                    )
                    for block in blocks:
                        for tag, result in pool.submit(block.texts, (fi, block)):
                            self._consume(tag, result)
                for tag, result in pool.drain():
                    self._consume(tag, result)
            self.writer.meta = self._meta(len(job.sources), 0, None)
            return self.writer.close()
        except BaseException:
            self.writer.abort()
            raise
        finally:
            if self.bar is not None:
                self.bar.close()


def build_manifest(job: TextJob, entries: list[ShardEntry], counts: list[list[int]]) -> Manifest:
    """The manifest of a finished run; it depends only on the input and options, never on time."""
    files = []
    for source, c in zip(job.sources, counts, strict=True):
        files.append({**source.describe(), **dict(zip(COUNT_FIELDS, c, strict=True))})
    tok = job.tokenizer.describe()
    skipped = sum(f["skipped_bad_utf8"] for f in files)
    params = {
        "corpus": job.corpus,
        "split": job.split,
        "source_folder": CORPORA[job.corpus].folder(job.split),
        "files": files,
        "strip_newlines": job.strip_newlines,
        "on_bad_utf8": job.on_bad_utf8,
        "bad_utf8_lines": sum(f["bad_utf8"] for f in files),
        "words": "len(line.split()) of each line, stored per row in the shards' words column",
        "tokenizer": tok,
        "vocab_size": tok["vocab_size"],
        "seq_len": SEQ_LEN_HINT,
        "shard_rows": job.shard_rows,
    }
    return Manifest(
        kind="tokens",
        shards=entries,
        skipped={"bad_utf8": skipped} if skipped else {},
        params=params,
        name=f"text_{job.corpus}_{job.split}",
    )


def prepare_text(
    job: TextJob,
    out: Path,
    workers: int = 1,
    batch_lines: int = DEFAULT_BATCH_LINES,
    progress: bool = True,
    fast_path: bool = True,
) -> Manifest:
    """Tokenize `job` into token shards under `out` (resuming from complete shards there) and
    write the manifest last. `workers`, `batch_lines` and `fast_path` change speed, not output."""
    with hold_alone(out):  # another prep in `out` would lose its temporary files to this one
        run = _Run(job, out, workers, batch_lines, progress, fast_path)
        entries = run.run()
        manifest = build_manifest(job, entries, run.counts)
        write_manifest(out, manifest)
    return manifest


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class TextConfig:
    """One `babylm-prep text` run: tokenize `split` of `corpus` under `root` into `out`.
    `tokenizer`: a tokenizer folder, a tokenizer.json or a Hugging Face name. `workers`,
    `batch_lines` and `fast_path` change speed, not output (`workers` None: all usable cores)."""

    corpus: str
    root: Path
    tokenizer: str
    out: Path
    split: str = "train"
    strip_newlines: bool = False
    workers: int | None = None
    on_bad_utf8: str = "replace"
    shard_rows: int = DEFAULT_SHARD_ROWS
    batch_lines: int = DEFAULT_BATCH_LINES
    fast_path: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "out", Path(self.out))
        if self.corpus not in CORPORA:
            raise ConfigError(f"--corpus {self.corpus}: choose one of {', '.join(sorted(CORPORA))}")
        if self.split not in SPLITS:
            raise ConfigError(f"--split {self.split}: choose one of {', '.join(SPLITS)}")
        if self.on_bad_utf8 not in BAD_UTF8_POLICIES:
            raise ConfigError(
                f"--on-bad-utf8 {self.on_bad_utf8}: choose one of {', '.join(BAD_UTF8_POLICIES)}"
            )
        for name in ("workers", "shard_rows", "batch_lines"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def run_text(cfg: TextConfig) -> Manifest:
    """Tokenize the corpus of `cfg` into token shards (resuming from complete shards in `cfg.out`)."""
    paths = corpus_files(cfg.root, cfg.corpus, cfg.split)
    tokenizer = load_tokenizer(cfg.tokenizer)
    sources = [scan_file(p, CORPORA[cfg.corpus].halve) for p in paths]
    job = TextJob(
        cfg.corpus, cfg.split, sources, tokenizer, cfg.strip_newlines, cfg.on_bad_utf8, cfg.shard_rows
    )
    return prepare_text(
        job,
        cfg.out,
        workers=cfg.workers or default_workers(),
        batch_lines=cfg.batch_lines,
        progress=cfg.progress,
        fast_path=cfg.fast_path,
    )
