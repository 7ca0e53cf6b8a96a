"""Lay out exported folders as revisions of one model in the Hugging Face hub-cache layout.

The BabyLM 2025 evaluation loads checkpoints by name and revision
(`from_pretrained("ORG/NAME", revision="chck_1M")`); transformers ignores `revision` for a local
folder, but honours it for a repository in the hub cache. So each exported folder becomes a
snapshot of `models--ORG--NAME` under `out_dir`, as huggingface_hub writes it:

    models--ORG--NAME/blobs/<sha256>             file contents, stored once
    models--ORG--NAME/snapshots/<commit>/<file>  relative symlinks into blobs/
    models--ORG--NAME/refs/<revision>            the revision's 40-hex commit id

and `HF_HUB_CACHE=out_dir HF_HUB_OFFLINE=1` loads every revision offline, remote code included.
The commit id is the sha1 of the snapshot's file names and content digests, so the same export
gets the same id on every machine and a rewrite changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from babylm.shards.atomic import atomic_folder, atomic_write, atomic_write_bytes

from .export import ExportError

# Hub repository names: letters, digits, `-`, `_`, `.`; no `--` or `..` (the cache's separator).
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
# Branch names we write: one path component, so a ref is one file under refs/.
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_CHUNK = 1 << 20
log = logging.getLogger(__name__)


class RevisionError(ExportError):
    """Revisions that cannot be laid out as asked (a bad repo id or revision name, a missing export)."""


def write_revisions(revisions: Mapping[str, str | Path], out_dir: str | Path, repo_id: str) -> Path:
    """Write each `revisions[name]` (an exported model folder) as revision `name` of `repo_id`
    ("ORG/NAME") in the hub-cache layout under `out_dir`; returns the `models--ORG--NAME` folder.

    An existing cache is added to: a revision already there is pointed at the new snapshot.
    Raises RevisionError for an invalid `repo_id` or revision name, or a folder that is not an
    export (no config.json).
    """
    repo = Path(out_dir) / _repo_folder(repo_id)
    folders = {_check_revision(name): _check_export(name, Path(path)) for name, path in revisions.items()}
    if not folders:
        raise RevisionError(f"{repo_id}: no revisions to write")
    if "." in repo_id and any(_has_remote_code(f) for f in folders.values()):
        log.warning(
            "%s: transformers 4.x cannot import remote code from a repository whose id has a '.' "
            "(ModuleNotFoundError under transformers_modules), and the BabyLM fine-tuning needs 4.x; "
            "use %s",
            repo_id,
            repo_id.replace(".", "_"),
        )
    for folder in ("blobs", "snapshots", "refs"):
        (repo / folder).mkdir(parents=True, exist_ok=True)
    for name, folder in folders.items():
        commit = _write_snapshot(repo, folder)
        _write_ref(repo / "refs" / name, commit)
    return repo


def _repo_folder(repo_id: str) -> str:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(_NAME.fullmatch(p) and "--" not in p and ".." not in p for p in parts):
        raise RevisionError(
            f"repo id {repo_id!r}: expected ORG/NAME (letters, digits, '-', '_', '.'; "
            "no '--' or '..'), e.g. my-lab/babylm-flamingo"
        )
    return "models--" + "--".join(parts)


def _check_revision(name: str) -> str:
    if not isinstance(name, str) or not _REVISION.fullmatch(name) or name.endswith(".lock") or ".." in name:
        raise RevisionError(
            f"revision {name!r}: expected a branch name of letters, digits, '-', '_', '.' (e.g. chck_1M, main)"
        )
    if _COMMIT.fullmatch(name):
        raise RevisionError(f"revision {name!r}: looks like a commit id; name a branch instead")
    return name


def _check_export(name: str, folder: Path) -> Path:
    if not (folder / "config.json").is_file():
        raise RevisionError(f"revision {name}: {folder} is not an exported model folder (no config.json)")
    return folder


def _has_remote_code(folder: Path) -> bool:
    return "auto_map" in json.loads((folder / "config.json").read_text())


def _files(folder: Path) -> list[Path]:
    """The export's files, relative to it, sorted (hidden files and folders left out)."""
    files = (p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
    return sorted(p for p in files if not any(part.startswith(".") for part in p.parts))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_snapshot(repo: Path, folder: Path) -> str:
    """Store `folder`'s files as blobs and a snapshot; returns its commit id."""
    digests = {rel: _sha256(folder / rel) for rel in _files(folder)}
    commit = hashlib.sha1(
        "".join(f"{rel.as_posix()}\0{d}\n" for rel, d in digests.items()).encode()
    ).hexdigest()
    snapshot = repo / "snapshots" / commit
    if snapshot.is_dir():
        return commit  # the same id is the same files: written before
    for rel, digest in digests.items():
        blob = repo / "blobs" / digest
        if not blob.exists():
            with atomic_write(blob) as f, open(folder / rel, "rb") as source:
                shutil.copyfileobj(source, f)
    # The folder gets the umask's mode (mkdtemp makes 0700; colleagues must read the cache).
    with atomic_folder(snapshot, prefix=f".{commit}.", suffix=".partial") as staging:
        for rel, digest in digests.items():
            link = staging / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            target = os.path.relpath(repo / "blobs" / digest, (snapshot / rel).parent)
            link.symlink_to(target)
    return commit


def _write_ref(path: Path, commit: str) -> None:
    atomic_write_bytes(path, commit.encode())  # no newline, as huggingface_hub writes refs
