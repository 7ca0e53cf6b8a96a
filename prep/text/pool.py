"""Tokenizer worker processes for `babylm-prep text`.

Kept to numpy and tokenizers, so a spawned worker (where fork is not used) starts fast. Each worker
holds its own Rust tokenizer with its internal thread pool off: `--workers N` means N busy cores,
and the ids become arrays inside the workers, work the Rust pool would leave to one Python thread.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import sys
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from babylm.prep.errors import WorkerError

_TOKENIZER: Any = None
_FAST: Any = None


def _init(tokenizer_json: str, split_special_tokens: bool, fast_path: bool) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer

    from babylm.prep.text.fastpath import FastPath

    global _TOKENIZER, _FAST
    tok = Tokenizer.from_str(tokenizer_json)
    # What PreTrainedTokenizerFast.__call__ sets before encoding with its default arguments.
    tok.no_truncation()
    tok.no_padding()
    tok.encode_special_tokens = split_special_tokens
    _TOKENIZER = tok
    _FAST = FastPath.for_tokenizer(tok) if fast_path else None


def _rust(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encodings = _TOKENIZER.encode_batch_fast(texts, add_special_tokens=True)
    ids = [e.ids for e in encodings]
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    values = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.uint32, count=int(lengths.sum()))
    return lengths, values


def _words(texts: list[str]) -> np.ndarray:
    return np.fromiter(map(len, map(str.split, texts)), dtype=np.int64, count=len(texts))


def tokenize(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids of each text, with the post-processor's special tokens, and its words
    (`len(text.split())`, BabyLM's budget unit, counted here in the worker: in the writing process
    it would cap the throughput of many workers): (lengths, ids, words)."""
    if _FAST is None:
        return (*_rust(texts), _words(texts))
    lengths_list, values_list, fallback, words_list = _FAST.encode_batch(texts)
    lengths = np.asarray(lengths_list, dtype=np.int64)
    values = np.asarray(values_list, dtype=np.uint32)
    words = np.asarray(words_list, dtype=np.int64)
    if not fallback:
        return lengths, values, words
    # Splice the rows left to the Rust tokenizer into their places (their length is 0 so far).
    rest = [texts[i] for i in fallback]
    rust_lengths, rust_values = _rust(rest)
    words[fallback] = _words(rest)
    starts = np.concatenate([[0], np.cumsum(lengths)])[fallback]
    rust_starts = np.concatenate([[0], np.cumsum(rust_lengths)])
    parts, prev = [], 0
    for k, pos in enumerate(starts.tolist()):
        parts += [values[prev:pos], rust_values[rust_starts[k] : rust_starts[k + 1]]]
        prev = pos
    parts.append(values[prev:])
    lengths[fallback] = rust_lengths
    return lengths, np.concatenate(parts), words


class TokenizerPool:
    """`workers` processes tokenizing batches; results come back in submission order and at most
    `depth` batches are in flight, so memory does not grow with the corpus. A worker that dies
    (killed, out of memory) fails the run with a message instead of hanging it."""

    def __init__(
        self, tokenizer_json: str, workers: int, split_special_tokens: bool = False, fast_path: bool = True
    ):
        # fork where it is safe (Linux): a spawned worker would re-import the `babylm-prep` entry
        # point with every command in it, seconds per worker. Each worker builds its own tokenizer
        # from JSON after the fork, so no Rust state is shared.
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        self._executor = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context(method),
            initializer=_init,
            initargs=(tokenizer_json, split_special_tokens, fast_path),
        )
        # The first task forks every worker now, before the caller starts threads (tqdm's monitor).
        self._executor.submit(int).result()
        self.depth = 2 * workers + 2
        self._inflight: deque[tuple[Any, Future]] = deque()

    def submit(self, texts: list[str], tag: Any) -> list[tuple[Any, tuple[np.ndarray, ...]]]:
        """Queue a batch; return the (tag, (lengths, ids, words)) pairs collected to make room."""
        self._inflight.append((tag, self._executor.submit(tokenize, texts)))
        done = []
        while len(self._inflight) > self.depth:
            done.append(self._pop())
        return done

    def drain(self) -> list[tuple[Any, tuple[np.ndarray, ...]]]:
        """Collect every batch still in flight, in order."""
        return [self._pop() for _ in range(len(self._inflight))]

    def _pop(self) -> tuple[Any, tuple[np.ndarray, ...]]:
        tag, future = self._inflight.popleft()
        try:
            return tag, future.result()
        except BrokenProcessPool as e:
            raise WorkerError(
                "a tokenizer worker died (killed, or out of memory?); complete shards are kept, "
                "rerun the same command to go on"
            ) from e

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> TokenizerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
