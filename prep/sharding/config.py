"""`ShardingConfig`: the settings every image/feature prep run shares, each with its one default.

The CLI options of `babylm-prep cc3m/localnarr/features` read their defaults from these fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from babylm.prep.errors import ConfigError


@dataclass(frozen=True)
class ShardingConfig:
    """Where the shards go and how the rows are cut into units and processed."""

    out: Path
    samples_per_shard: int = 1000  # input rows per work unit; each unit becomes one shard
    workers: int = 1
    seed: int = 0  # seed of the row shuffle before sharding
    part: tuple[int, int] | None = None  # process only units u with u % N == I
    overwrite: bool = False  # delete shards of a different earlier run in `out` first
    plan_only: bool = False  # list the input and write the plan, process nothing (before an array job)
    progress: bool | None = None  # False: none; else a bar on a terminal, lines in a log (shards.progress)

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if self.samples_per_shard < 1:
            raise ConfigError(f"--samples-per-shard must be at least 1, got {self.samples_per_shard}")
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")
        if self.part is not None:
            index, count = self.part
            if count < 1 or not 0 <= index < count:
                raise ConfigError(f"--part {index}/{count}: need 0 <= I < N")
