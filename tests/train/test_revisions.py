"""write_revisions: exported folders as revisions of one model in the hub-cache layout, each of
which `from_pretrained("ORG/NAME", revision=...)` loads offline where babylm cannot be imported."""

from __future__ import annotations

import os

import pytest
import torch

from babylm.train.export import ExportError, export_model
from babylm.train.models import make_tiny_vit
from babylm.train.revisions import RevisionError, write_revisions
from tests.train.models.helpers import last_json_line, run_isolated, tiny_model

IDS = [[5, 6, 7, 8, 9]]

# Runs in the isolated interpreter; the cache variables must be set before huggingface_hub loads.
LOAD_SCRIPT = r"""
import json, os
os.environ["HF_HUB_CACHE"] = sys.argv[1]
os.environ["HF_HUB_OFFLINE"] = "1"
import torch
from transformers import AutoModelForCausalLM, AutoProcessor, AutoTokenizer
out = {}
for kind in ("git", "opt"):
    for revision in ("chck_1M", "main"):
        repo = f"babylm-test/tiny-{kind}"
        model = AutoModelForCausalLM.from_pretrained(repo, revision=revision, trust_remote_code=True).eval()
        tok = AutoTokenizer.from_pretrained(repo, revision=revision, trust_remote_code=True)
        r = out[f"{kind}/{revision}"] = {"class": type(model).__name__, "vocab": len(tok)}
        if kind == "git":
            r["processor"] = type(AutoProcessor.from_pretrained(repo, revision=revision, trust_remote_code=True)).__name__
        with torch.no_grad():
            r["logits"] = model(torch.tensor(IDS)).logits[0, -1, :8].tolist()
print(json.dumps(out))
""".replace("IDS", repr(IDS))


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tiny_tokenizer_dir):
    """Two exports (different weights) of a tiny GIT and a tiny OPT, with each one's logits."""
    work = tmp_path_factory.mktemp("revisions")
    vit = make_tiny_vit(work / "vit")
    folders, logits = {}, {}
    for kind in ("git", "opt"):
        for seed, revision in enumerate(("chck_1M", "main")):
            model = tiny_model(kind, vit, image_token_id=4, seed=seed)
            folder = export_model(model, kind, work / f"{kind}-{revision}", tiny_tokenizer_dir)
            folders[kind, revision] = folder
            with torch.no_grad():
                logits[f"{kind}/{revision}"] = model(torch.tensor(IDS)).logits[0, -1, :8]
    return {"work": work, "folders": folders, "logits": logits}


@pytest.mark.slow
def test_each_revision_loads_its_own_weights_offline(exports, tmp_path):
    cache = tmp_path / "hub"
    for kind in ("git", "opt"):
        revisions = {rev: exports["folders"][kind, rev] for rev in ("chck_1M", "main")}
        repo = write_revisions(revisions, cache, f"babylm-test/tiny-{kind}")
        assert repo == cache / f"models--babylm-test--tiny-{kind}"
    loaded = last_json_line(run_isolated(LOAD_SCRIPT, [str(cache)], tmp_path))
    for key, expected in exports["logits"].items():
        assert torch.allclose(torch.tensor(loaded[key]["logits"]), expected, atol=1e-5), key
    assert loaded["git/chck_1M"]["class"] == "BabyLMGitForCausalLM"
    assert loaded["git/main"]["processor"] == "BabyLMProcessor"
    assert loaded["opt/chck_1M"]["class"] == "OPTForCausalLM"
    # The two revisions really differ, so loading the right one is what made the logits match.
    assert not torch.allclose(exports["logits"]["git/chck_1M"], exports["logits"]["git/main"], atol=1e-3)


def test_layout_as_huggingface_hub_writes_it(exports, tmp_path):
    folder = exports["folders"]["opt", "main"]
    repo = write_revisions({"main": folder, "chck_2M": folder}, tmp_path, "org/name")
    commit = (repo / "refs" / "main").read_text()
    assert len(commit) == 40 and int(commit, 16) >= 0
    assert (repo / "refs" / "chck_2M").read_text() == commit  # the same files are the same commit
    snapshot = repo / "snapshots" / commit
    names = sorted(p.name for p in snapshot.iterdir())
    assert names == sorted(p.name for p in folder.iterdir())
    for path in snapshot.iterdir():
        assert path.is_symlink() and not os.path.isabs(os.readlink(path))
        assert path.read_bytes() == (folder / path.name).read_bytes()
        assert path.resolve().parent == (repo / "blobs").resolve()
    assert oct(snapshot.stat().st_mode & 0o777) == oct(0o777 & ~_umask())


def test_commit_ids_are_deterministic_and_follow_the_files(exports, tmp_path):
    git_main = exports["folders"]["git", "main"]
    first = write_revisions({"main": git_main}, tmp_path / "a", "org/name")
    second = write_revisions({"main": git_main}, tmp_path / "b", "org/name")
    assert (first / "refs" / "main").read_text() == (second / "refs" / "main").read_text()
    # Rewriting a ref in an existing cache points it at the other export's snapshot.
    write_revisions({"main": exports["folders"]["git", "chck_1M"]}, tmp_path / "a", "org/name")
    assert (first / "refs" / "main").read_text() != (second / "refs" / "main").read_text()
    assert len(list((first / "snapshots").iterdir())) == 2


@pytest.mark.parametrize(
    "repo_id", ["name-only", "a/b/c", "org/", "org/na--me", "org/na me", "-org/name", "org/..x"]
)
def test_bad_repo_ids_are_refused(exports, tmp_path, repo_id):
    with pytest.raises(RevisionError, match="ORG/NAME"):
        write_revisions({"main": exports["folders"]["opt", "main"]}, tmp_path, repo_id)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "revision", ["", "refs/main", "a b", "x.lock", "-x", "0123456789abcdef0123456789abcdef01234567"]
)
def test_bad_revision_names_are_refused(exports, tmp_path, revision):
    with pytest.raises(RevisionError, match=repr(revision)):
        write_revisions({revision: exports["folders"]["opt", "main"]}, tmp_path, "org/name")
    assert not any(tmp_path.iterdir())


def test_a_folder_that_is_not_an_export_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="empty.*no config.json"):
        write_revisions({"chck_1M": tmp_path / "empty"}, tmp_path / "hub", "org/name")
    with pytest.raises(RevisionError, match="no revisions"):
        write_revisions({}, tmp_path / "hub", "org/name")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
