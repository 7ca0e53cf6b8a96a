"""Checkpoints: atomic folders that hold everything needed to continue a run exactly.

Layout of `RUN_DIR/checkpoints/step-00001234/`:

- `model.pt`: the model's state dict (frozen encoder included, so export needs nothing else);
- `trainer.pt`: optimizer, scheduler, step, epoch, the resolved config, the model's build args;
- `rank-00000.pt`, ...: per rank, its RNG states and its loader state;
- `meta.json`, written last: step, epoch, world size, words seen (when the data counts them),
  tags ("periodic", "epoch-5", "chck_10M", "final", ...).

Every rank writes its own file into `.tmp-step-00001234/`, then rank 0 writes the rest and renames
the folder, so a folder under its final name is always complete. Content is limited to tensors,
dicts, lists, numbers and strings, so loading uses `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from babylm.shards import ShardsError, atomic_write_bytes
from babylm.train.errors import CheckpointError, MissingInput, TrainError

if TYPE_CHECKING:
    from babylm.train.data.contract import TrainLoader

CKPT_DIR = "checkpoints"
_NAME = re.compile(r"step-(\d{8})")
# Tags that make a checkpoint permanent; everything else is rotated by --keep.
PERMANENT = ("epoch", "final", "chck_")


def ckpt_name(step: int) -> str:
    return f"step-{step:08d}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _save(obj: Any, path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def load(path: str | Path) -> Any:
    """Load one checkpoint file safely (no pickled code) onto the CPU.

    A file holding anything but tensors, containers, numbers and strings (a tampered or foreign
    pickle) is refused, never run; the error says so rather than torch's advice to load it with
    `weights_only=False`, which would run its code.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: holds objects other than tensors, numbers and strings, so it was not loaded "
            "(it was not written by babylm-train, or was changed since); use a checkpoint of a babylm-train run"
        ) from None
    except (RuntimeError, EOFError, ValueError) as e:
        raise CheckpointError(
            f"{path}: damaged checkpoint file ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "resume from another checkpoint of the run"
        ) from None


# ---- RNG states as plain tensors ------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """This process's RNG states (torch CPU/CUDA, numpy, Python) as tensors and numbers."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    state["numpy"] = {
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "gauss": float(gauss),
    }
    version, internal, gauss_next = random.getstate()
    state["python"] = {"version": version, "state": torch.tensor(internal, dtype=torch.int64)}
    if gauss_next is not None:
        state["python"]["gauss_next"] = float(gauss_next)
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["state"].tolist()), p.get("gauss_next")))


# ---- saving ---------------------------------------------------------------------------------------
class CheckpointWriter:
    """Writes checkpoints under `run_dir/checkpoints`; every rank calls `save` together."""

    def __init__(self, run_dir: str | Path, rank: int, world_size: int, keep: int, barrier):
        self.dir = Path(run_dir) / CKPT_DIR
        self.rank = rank
        self.world_size = world_size
        self.keep = keep
        self.barrier = barrier
        self.last_step: int | None = None
        if rank == 0:
            self.dir.mkdir(parents=True, exist_ok=True)
            # Leftovers of a save that was killed half-way: never complete, never read.
            for p in self.dir.glob(".tmp-*"):
                shutil.rmtree(p, ignore_errors=True)
        barrier()

    def save(
        self,
        step: int,
        epoch: int,
        tags: list[str],
        trainer_state: dict[str, Any] | None,
        model_state: dict[str, Any] | None,
        rank_state: dict[str, Any],
        words: int | None = None,
    ) -> Path:
        """Write a checkpoint for `step` (rank 0 passes trainer/model state, others may pass None).

        A second save at the same step (an epoch end that is also the final step) only adds tags.
        """
        final = self.dir / ckpt_name(step)
        if self.last_step == step and (final / "meta.json").exists():
            if self.rank == 0:
                meta = read_meta(final)
                meta["tags"] = sorted(set(meta["tags"]) | set(tags))
                atomic_write_bytes(final / "meta.json", json.dumps(meta, indent=2).encode())
            self.barrier()
            return final
        tmp = self.dir / f".tmp-{ckpt_name(step)}"
        if self.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        self.barrier()
        _save(rank_state, tmp / f"rank-{self.rank:05d}.pt")
        self.barrier()
        if self.rank == 0:
            assert trainer_state is not None and model_state is not None
            _save(model_state, tmp / "model.pt")
            _save(trainer_state, tmp / "trainer.pt")
            meta = {"step": step, "epoch": epoch, "world_size": self.world_size, "tags": sorted(tags)}
            if words is not None:
                meta["words"] = words
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
            _fsync_dir(tmp)
            if final.exists():  # a stale folder of an earlier attempt at this step
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync_dir(self.dir)
            self._rotate()
        self.last_step = step
        self.barrier()
        return final

    def _rotate(self) -> None:
        """Delete periodic checkpoints beyond the newest `keep` (epoch and final ones stay)."""
        periodic = [
            c
            for c in list_checkpoints(self.dir.parent)
            if not any(t.startswith(PERMANENT) for t in c[1]["tags"])
        ]
        for path, _ in periodic[: max(0, len(periodic) - self.keep)]:
            shutil.rmtree(path, ignore_errors=True)


# ---- the save policy ----------------------------------------------------------------------------
def checkpoint_tags(cfg: Any, step: int, steps_per_epoch: int, total: int, stop: bool) -> list[str]:
    """The save policy: why a checkpoint is due after `step` (none: no checkpoint), from the
    config's `save_every`, `save_epochs`, the last step and a stop signal (word milestones:
    `babylm.train.words.reached`)."""
    tags = []
    if cfg.save_every and step % cfg.save_every == 0:
        tags.append("periodic")
    if step % steps_per_epoch == 0 and step // steps_per_epoch in cfg.save_epochs:
        tags.append(f"epoch-{step // steps_per_epoch}")
    if step == total:
        tags.append("final")
    if stop:
        tags.append("preempt")
    return tags


# ---- finding and reading --------------------------------------------------------------------------
def list_checkpoints(run_dir: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """Complete checkpoints of a run, oldest first, with their (checked) meta."""
    base = Path(run_dir) / CKPT_DIR
    found = []
    if base.is_dir():
        for p in base.iterdir():
            if _NAME.fullmatch(p.name) and (p / "meta.json").exists():
                found.append((p, read_meta(p)))
    return sorted(found, key=lambda c: c[1]["step"])


def resolve_checkpoint(path: str | Path, run_dir: str | Path | None = None) -> Path | None:
    """A checkpoint folder from a checkpoint path, a run folder (its newest) or 'auto'.

    'auto' looks in `run_dir` and returns None when there is none yet (a fresh start).
    """
    if str(path) == "auto":
        found = list_checkpoints(run_dir) if run_dir else []
        return found[-1][0] if found else None
    p = Path(path)
    if (p / "meta.json").exists():
        read_meta(p)  # checked now, before anything is built
        return p
    if (p / CKPT_DIR).is_dir() or p.is_dir():
        found = list_checkpoints(p)
        if found:
            return found[-1][0]
    raise MissingInput(
        f"{path}: neither a checkpoint folder nor a run folder with complete checkpoints; "
        "pass RUN_DIR or RUN_DIR/checkpoints/step-N of a babylm-train run"
    )


# meta.json's keys: (check, what it must be).
_META_FIELDS: dict[str, tuple[Any, str]] = {
    "step": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "epoch": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "world_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "tags": (lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v), "a list of strings"),
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def read_meta(ckpt: str | Path) -> dict[str, Any]:
    """The checkpoint's meta.json, checked (types, ranges, the step its folder is named by), so
    a tampered file stops a resume before training rather than a save after it."""
    path = Path(ckpt) / "meta.json"
    fix = "delete that checkpoint folder (or restore the file) and resume from another"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({type(e).__name__}); {fix}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: not a checkpoint meta.json (a JSON object); {fix}")
    for key, (ok, what) in _META_FIELDS.items():
        if key not in meta:
            raise CheckpointError(f"{path}: the key {key!r} is missing; {fix}")
        if not ok(meta[key]):
            raise CheckpointError(f"{path}: {key} must be {what}, got {meta[key]!r}; {fix}")
    named = _NAME.fullmatch(Path(ckpt).name)
    if named and int(named.group(1)) != meta["step"]:
        raise CheckpointError(f"{path}: step {meta['step']} but the folder is {Path(ckpt).name}; {fix}")
    return meta


def load_rank_state(ckpt: str | Path, rank: int) -> dict[str, Any] | None:
    """The per-rank file of `rank`, or None if that rank did not exist in the saved run."""
    p = Path(ckpt) / f"rank-{rank:05d}.pt"
    return load(p) if p.exists() else None


# ---- the trainer's view: what goes in, what comes back ---------------------------------------------
def save_training(
    writer: CheckpointWriter,
    step: int,
    epoch: int,
    tags: list[str],
    model: torch.nn.Module,
    objects: dict[str, Any],
    loader: TrainLoader,
    words: int | None = None,
) -> Path:
    """Checkpoint a run at an optimizer-step boundary; every rank calls it.

    `objects` holds the "optimizer", "scheduler" and "config" (a TrainConfig). The model's HF
    config and build args are stored as JSON strings, so `load_model` can rebuild it offline.
    """
    trainer_state = model_state = None
    if writer.rank == 0:
        trainer_state = {
            "step": step,
            "optimizer": objects["optimizer"].state_dict(),
            "scheduler": objects["scheduler"].state_dict(),
            "config": json.dumps(dataclasses.asdict(objects["config"])),
            "kind": objects["config"].model,
            "build_args": json.dumps(getattr(model, "babylm_build_args", {})),
            "model_config": model.config.to_json_string(),
        }
        if words is not None:
            trainer_state["words"] = words
        model_state = model.state_dict()
    rank_state = {"rng": rng_state(), "loader": loader.state_dict()}
    return writer.save(step, epoch, tags, trainer_state, model_state, rank_state, words)


def restore_training(
    path: Path,
    model: torch.nn.Module,
    optimizer: Any,
    scheduler: Any,
    loader: TrainLoader,
    rank: int,
    world: int,
) -> int:
    """Load a checkpoint into freshly built objects; returns the step to continue from.

    A checkpoint that does not fit (another model size, a tampered file) is a `CheckpointError`
    naming it, raised before the first step."""
    meta = read_meta(path)
    try:
        return _restore(path, meta, model, optimizer, scheduler, loader, rank, world)
    except (TrainError, ShardsError):  # a shard error names the shard, not the checkpoint
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(
            f"{path}: does not fit this run ({type(e).__name__}: {first}); resume with the options of "
            "the run that wrote it (--config RUN_DIR/config.toml) or from another checkpoint"
        ) from None


def _restore(
    path: Path, meta: dict[str, Any], model: torch.nn.Module, optimizer: Any, scheduler: Any, loader: TrainLoader,
    rank: int, world: int,
) -> int:  # fmt: skip
    model.load_state_dict(load(path / "model.pt"))
    state = load(path / "trainer.pt")
    if not isinstance(state, dict) or state.get("step") != meta["step"]:
        step = state.get("step") if isinstance(state, dict) else None
        raise CheckpointError(
            f"{path / 'trainer.pt'}: step {step!r}, but meta.json says {meta['step']}; the checkpoint "
            "was changed after it was written: resume from another checkpoint"
        )
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    mine = load_rank_state(path, rank)
    saved_world = meta["world_size"]
    if mine is not None and saved_world == world:
        set_rng_state(mine["rng"])
    else:
        # Another topology: the loader position is global (any rank's state holds it); the RNG
        # streams (dropout) cannot carry over, so the run continues validly but not bitwise.
        mine = mine or load_rank_state(path, 0)
        if rank == 0:
            warnings.warn(
                f"resuming a {saved_world}-rank checkpoint on {world} ranks: RNG states start fresh",
                stacklevel=2,
            )
    loader.load_state_dict(mine["loader"])
    return int(state["step"])


def load_model(path: str | Path) -> tuple[torch.nn.Module, str, dict[str, Any]]:
    """(model with the checkpoint's weights, run kind, run config dict) from a checkpoint folder.

    The model is rebuilt from its saved Hugging Face config, so neither network nor the original
    vision-encoder folder is needed (the encoder's weights are in model.pt).
    """
    from babylm.train.models import model_class

    path = Path(path)
    state = load(path / "trainer.pt")
    kind = state["kind"]
    cls = model_class(kind)
    model = cls(cls.config_class.from_dict(json.loads(state["model_config"])))
    model.load_state_dict(load(path / "model.pt"))
    model.babylm_build_args = json.loads(state["build_args"])
    model.eval()
    return model, kind, json.loads(state["config"])
