"""Weights & Biases tracking (`--wandb`): the metrics.jsonl records and the resolved config, from
rank 0, into one W&B run per run folder.

The run's id lives in `RUN_DIR/wandb.json` with the last step sent, so a resumed run continues the
same W&B run and does not send again the steps past its checkpoint that the interrupted attempt
already sent (a resume recomputes them; W&B would keep the first copy anyway, or reject a step
lower than its last). wandb reads the usual WANDB_* variables itself (WANDB_MODE=offline,
WANDB_ENTITY, WANDB_API_KEY, ...); WANDB_DIR, if set, is where its files go, else RUN_DIR.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from pathlib import Path
from typing import Any

from babylm.shards import atomic_write_bytes
from babylm.train.config import TrainConfig
from babylm.train.errors import SetupError

STATE_NAME = "wandb.json"
DEFAULT_PROJECT = "babylm"


def require_wandb() -> Any:
    """The wandb module, or a one-line SetupError when the package is missing."""
    try:
        import wandb
    except ImportError as e:
        raise SetupError(
            "--wandb needs the 'wandb' package, which is not installed; install it "
            "(pip install 'babylm-pipeline[wandb]' or pip install wandb) or drop --wandb"
        ) from e
    return wandb


class WandbTracker:
    """One W&B run for one run folder: `log` each metrics record, `close` at the end."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, resume_step: int | None):
        wandb = require_wandb()
        self.state_path = Path(run_dir) / STATE_NAME
        state = _read_state(self.state_path) if resume_step is not None else None
        if state is None:  # a fresh start (or a resume of a run that did not track): a new W&B run
            state = {"id": secrets.token_hex(6), "last_step": 0}
        self.state = state
        self._save()
        config = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("resume", "config")}
        self.run = wandb.init(
            project=cfg.wandb_project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
            name=cfg.wandb_run_name,
            id=state["id"],
            resume="allow",
            dir=os.environ.get("WANDB_DIR") or str(run_dir),
            config=config,
        )

    def log(self, record: dict[str, Any]) -> None:
        """Send `record` (a metrics.jsonl record) at its step, unless that step was sent before."""
        step = int(record["step"])
        if step <= self.state["last_step"]:
            return
        self.run.log({k: v for k, v in record.items() if k != "step"}, step=step)
        self.state["last_step"] = step
        self._save()

    def close(self) -> None:
        """Finish the W&B run and stop wandb's service process, which writes the run file: only
        then is everything logged on disk (finish alone can return before the file is written)."""
        self.run.finish()
        require_wandb().teardown()

    def _save(self) -> None:
        atomic_write_bytes(self.state_path, (json.dumps(self.state) + "\n").encode())


def _read_state(path: Path) -> dict[str, Any] | None:
    """The stored id and last step, or None when the run folder has none (or a torn one)."""
    try:
        state = json.loads(path.read_text())
        return {"id": str(state["id"]), "last_step": int(state["last_step"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None
