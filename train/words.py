"""Words seen: BabyLM's budget unit, and the checkpoint milestones named as its evaluation expects.

A word is a whitespace-separated word of the raw text (`len(line.split())`), counted by prep per
text line and per caption. The loader hands each batch's word count beside the batch, and the
trainer sums them over micro-batches and ranks at every optimizer step.

The BabyLM 2025 evaluation loads checkpoints as revisions named by words seen: `chck_1M` ...
`chck_9M`, `chck_10M` ... `chck_100M` every 10M, then `chck_200M` ... `chck_1000M` every 100M
(1B is spelled `chck_1000M`). The first optimizer step at which the words seen reach a milestone
saves a checkpoint tagged with its name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from babylm.train.errors import SetupError

if TYPE_CHECKING:
    from babylm.train.data.contract import TrainLoader

M = 1_000_000
PRESETS: dict[str, tuple[int, ...]] = {
    "babylm-2025": (
        *(n * M for n in range(1, 10)),
        *(n * 10 * M for n in range(1, 11)),
        *(n * 100 * M for n in range(2, 11)),
    ),
    "babylm-2025-small": (*(n * M for n in range(1, 10)), *(n * 10 * M for n in range(1, 11))),
}
TAG_PREFIX = "chck_"
_SUFFIX = {"": 1, "K": 1000, "M": M, "B": 1000 * M}
_COUNT = re.compile(r"(\d+(?:\.\d+)?)([KMB]?)")


class WordsError(ValueError):
    """A word count or milestone list that cannot be read; the message says what is accepted."""


def parse_words(text: str, option: str = "--max-words") -> int:
    """`1M` -> 1_000_000; suffixes K, M, B (case-insensitive); a plain integer is words."""
    m = _COUNT.fullmatch(str(text).strip().upper().replace("_", ""))
    value = float(m.group(1)) * _SUFFIX[m.group(2)] if m else -1.0
    if not m or value < 1 or value != int(value):
        raise WordsError(f"{option} {text!r}: expected a positive whole number of words like 500K, 10M or 1B")
    return int(value)


def parse_milestones(spec: str | Sequence[str | int]) -> list[int]:
    """A preset name (babylm-2025, babylm-2025-small) or a comma-separated list (`1M,2M,500K`;
    a TOML list too), as sorted distinct word counts."""
    if not isinstance(spec, str):
        spec = ",".join(str(x) for x in spec)
    if spec.strip() in PRESETS:
        return list(PRESETS[spec.strip()])
    parts = [p for p in spec.split(",") if p.strip()]
    if not parts:
        raise WordsError(
            f"--checkpoint-words {spec!r}: give a preset ({', '.join(PRESETS)}) or counts like 1M,2M,10M"
        )
    return sorted({parse_words(p, "--checkpoint-words") for p in parts})


def milestone_name(words: int) -> str:
    """The revision name of a milestone: `chck_{N}M` from 1M (1B is `chck_1000M`), `chck_{N}K`
    for whole thousands below, else `chck_{N}`."""
    if words >= M and words % M == 0:
        return f"{TAG_PREFIX}{words // M}M"
    if words % 1000 == 0:
        return f"{TAG_PREFIX}{words // 1000}K"
    return f"{TAG_PREFIX}{words}"


def reached(milestones: Sequence[int], before: int, after: int) -> list[str]:
    """Names of the milestones a step that took the count from `before` to `after` reached
    (all of them when it crossed several)."""
    return [milestone_name(m) for m in milestones if before < m <= after]


def is_milestone_tag(tag: str) -> bool:
    return tag.startswith(TAG_PREFIX)


def datasets_without_words(locations: Sequence[str]) -> list[str]:
    """The dataset locations whose manifests have no word counts (prepared before prep counted)."""
    from babylm.shards import open_dataset

    return [loc for loc in locations if open_dataset(loc).manifest.num_words is None]


def missing_words_message(locations: Sequence[str], why: str) -> str:
    """The one-line error for datasets without word counts: what needs them and how to add them."""
    return (
        f"{why} needs word counts, but --data {', '.join(locations)} was prepared before babylm-prep "
        "counted words; re-run the babylm-prep command that wrote it into a new --out (babylm-prep text "
        "for a tokens dataset), or add them to a caption dataset with babylm-prep add-words DATASET --out NEW"
    )


def words_at_start(cfg: Any, loader: TrainLoader, resume_from: Path | None, rank: int) -> int | None:
    """Words seen before the first step of this process: 0, or the resumed checkpoint's count;
    None when the data has no word counts (an error when --checkpoint-words/--max-words need them)."""
    need = [
        name
        for name, v in (("--checkpoint-words", cfg.checkpoint_words), ("--max-words", cfg.max_words))
        if v
    ]
    if not loader.has_words:
        missing = datasets_without_words(cfg.data)
        if need:
            raise SetupError(missing_words_message(missing, " and ".join(need)))
        if rank == 0:
            print(f"note: {missing_words_message(missing, 'counting words seen')}", flush=True)
        return None
    if resume_from is None:
        return 0
    from babylm.train.checkpoint import read_meta  # torch: not for the CLI's option parsing

    words = read_meta(resume_from).get("words")
    if words is None and need:
        raise SetupError(
            f"{resume_from}: this checkpoint does not record words seen (saved before babylm-train "
            f"counted them), which {' and '.join(need)} need; resume without them or start a new run"
        )
    return words
