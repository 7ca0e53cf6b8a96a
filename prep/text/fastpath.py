"""An exact shortcut through the recipe tokenizer for plain-ASCII lines.

The Rust pipeline spends most of its time on bookkeeping (alignments, offsets, a string per
token), not on the Unigram search. For the recipe's pipeline and a line of printable ASCII, tabs
and newlines only, every step has a simple closed form:

- NMT maps tab and newline to a space; NFKC leaves ASCII alone; `" {2,}"` -> `" "`; lowercase;
- Metaspace (prefix always, split) gives one `▁`-prefixed piece per whitespace-separated word,
  plus a lone `▁` when the line ends in whitespace (a leading space is absorbed by the prefix);
- Digits(individual) and Punctuation(isolated) cut every digit and ASCII punctuation mark out;
- each piece goes through the same `model.tokenize`; the post-processor appends `</s>`.

So a line's ids are the concatenation of per-word ids, which are cached. Lines with anything else
(non-ASCII, control characters, the first character of an added token such as `<`) go through
the Rust tokenizer. The shortcut is used only when the tokenizer's normalizer, pre-tokenizer and
post-processor serialize exactly like the recipe's, only after it agrees with the Rust tokenizer on
a probe set at start-up, and it keeps checking a sample of lines while it runs.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import string
import sys
from typing import Any

from babylm.prep.text.tokenizer import recipe

_PUNCT = re.escape(string.punctuation)
# Pieces of "▁" + word: "▁" with the letters after it, a run of letters, or one digit/mark.
_PIECES = re.compile(rf"▁[^▁0-9{_PUNCT}]*|[^▁0-9{_PUNCT}]+|[0-9{_PUNCT}]")
CACHE_WORDS = 100_000  # per worker (~25 MB); a full cache is cleared: bounded memory, Zipf keeps it useful
CHECK_EVERY = 101  # lines between comparisons with the Rust tokenizer

PROBES = [
    "",
    "\n",
    " ",
    "\t\n",
    "hello world\n",
    "  leading spaces",
    "trailing  \t\n",
    "Mixed CASE Words\n",
    "a1b2c3 1234567890",
    "$5.00! (yes) [no] {maybe}",
    "don't uh-huh e.g. U.S.A. ...",
    "A:\tyeah i think so , uh-huh .\n",
    '@#%^&*_+=|~`\\/"quoted" a;b:c?',
    "x     y\tz\n",
    "the end.",
]


def _pipeline_json(tok: Any) -> list[Any]:
    data = json.loads(tok.to_str())
    return [data.get("normalizer"), data.get("pre_tokenizer"), data.get("post_processor")]


class FastPath:
    """Per-worker shortcut; `encode_batch` returns row lengths, flat ids and the rows it left to
    the Rust tokenizer (length 0 placeholders)."""

    def __init__(self, tok: Any):
        self.tok = tok
        self.model = tok.model
        self.eos = 1  # the recipe's post-processor appends </s> = 1 (checked in `for_tokenizer`)
        added = [t.content for t in tok.get_added_tokens_decoder().values()]
        first = {c for t in added if t for c in (t[0], t[0].lower(), t[0].upper())}
        allowed = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in first)
        self._plain = re.compile(f"[\\t\\n{re.escape(allowed)}]*")
        self._cache: dict[str, tuple[int, ...]] = {}
        self._seen = 0

    @classmethod
    def for_tokenizer(cls, tok: Any) -> FastPath | None:
        """A shortcut for `tok` if its pipeline is the recipe's and it passes the probes."""
        if _pipeline_json(tok) != _pipeline_json(recipe()):
            return None
        fast = cls(tok)
        rng = random.Random(0)
        alphabet = string.ascii_letters + string.digits + string.punctuation + "  \t"
        probes = PROBES + ["".join(rng.choices(alphabet, k=rng.randint(1, 40))) + "\n" for _ in range(200)]
        for text in probes:
            if fast._plain.fullmatch(text) and fast.encode_one(text) != tok.encode(text).ids:
                # The recipe's steps behave differently in this `tokenizers` version: stay exact.
                print(
                    f"note: ASCII fast path off, it disagrees with the tokenizer on {text!r}", file=sys.stderr
                )
                return None
        return fast

    def _word(self, word: str) -> tuple[int, ...]:
        ids = self._cache.get(word)
        if ids is None:
            if len(self._cache) >= CACHE_WORDS:
                self._cache.clear()
            ids = tuple(t.id for piece in _PIECES.findall("▁" + word) for t in self.model.tokenize(piece))
            self._cache[word] = ids
        return ids

    def encode_one(self, text: str) -> list[int]:
        """The ids of one plain line (the caller checked it is plain)."""
        return self._encode(text, text.lower().split())

    def _encode(self, text: str, words: list[str]) -> list[int]:
        if not text:
            return [self.eos]
        ids = list(itertools.chain.from_iterable(map(self._word, words)))
        if text[-1] in " \t\n":
            ids += self._word("")
        ids.append(self.eos)
        return ids

    def encode_batch(self, texts: list[str]) -> tuple[list[int], list[int], list[int], list[int]]:
        """(row lengths, flat ids, rows left to Rust, words per row: `len(text.split())`, which
        the encoding splits anyway; -1 for the rows left to Rust)."""
        lengths: list[int] = []
        values: list[int] = []
        fallback: list[int] = []
        counts: list[int] = []
        plain = self._plain.fullmatch
        extend = values.extend
        for i, text in enumerate(texts):
            if not text.isascii() or not plain(text):
                fallback.append(i)
                lengths.append(0)
                counts.append(-1)
                continue
            words = text.lower().split()  # plain ASCII: lowering moves no whitespace
            counts.append(len(words))
            ids = self._encode(text, words)
            self._seen += 1
            if self._seen % CHECK_EVERY == 0:
                expected = self.tok.encode(text).ids
                if ids != expected:
                    raise RuntimeError(
                        f"the ASCII fast path gives {ids} but the tokenizer gives {expected} for {text!r}; "
                        "rerun with --no-fast-path and please report this"
                    )
            extend(ids)
            lengths.append(len(ids))
        return lengths, values, fallback, counts
