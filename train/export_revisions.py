"""`babylm-train export RUN_DIR OUT --revisions --repo-id ORG/NAME`: a run's word-milestone
checkpoints (tagged chck_1M, ...) and its final one (`main`) as revisions of one model.

Each checkpoint is exported as `export_checkpoint` does, into a staging folder under OUT, and
`write_revisions` lays the exports out in the Hugging Face hub-cache layout, so that
`HF_HUB_CACHE=OUT HF_HUB_OFFLINE=1` and `from_pretrained("ORG/NAME", revision="chck_1M")` load
that checkpoint (as the BabyLM 2025 evaluation asks for them).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from .checkpoint import list_checkpoints
from .export import ExportError, export_checkpoint
from .revisions import _repo_folder, write_revisions
from .words import is_milestone_tag

MAIN = "main"


def revision_checkpoints(run_dir: str | Path) -> dict[str, Path]:
    """Revision name -> checkpoint folder: every milestone tag of the run's checkpoints, and
    `main` for its final checkpoint. Raises ExportError when the run has no final checkpoint."""
    found = list_checkpoints(run_dir)
    if not found:
        raise ExportError(
            f"{run_dir}: no complete checkpoints; --revisions takes the RUN_DIR of a babylm-train run"
        )
    revisions: dict[str, Path] = {}
    for path, meta in found:
        for tag in meta["tags"]:
            if is_milestone_tag(tag):
                revisions[tag] = path
    finals = [path for path, meta in found if "final" in meta["tags"]]
    if not finals:
        raise ExportError(
            f"{run_dir}: no final checkpoint (the run has not finished); finish it with --resume auto "
            "before exporting its revisions"
        )
    revisions[MAIN] = finals[-1]
    return revisions


def export_revisions(run_dir: str | Path, out_dir: str | Path, repo_id: str, tokenizer: Any = None) -> Path:
    """Export the revisions of `run_dir` (see `revision_checkpoints`) as `repo_id` in the hub-cache
    layout under `out_dir`; returns the `models--ORG--NAME` folder. A checkpoint that carries
    several revisions (a step that reached several milestones, or the final one) is exported once."""
    _repo_folder(repo_id)  # a bad repo id fails before any export
    revisions = revision_checkpoints(run_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out))
    try:
        exported: dict[Path, Path] = {}
        for checkpoint in revisions.values():
            if checkpoint not in exported:
                exported[checkpoint] = export_checkpoint(checkpoint, staging / checkpoint.name, tokenizer)
        return write_revisions({name: exported[c] for name, c in revisions.items()}, out, repo_id)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
