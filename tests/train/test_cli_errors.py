"""Every mistake a user can make on a `babylm-train` command line is one line, exit status 2, and
no traceback: a missing path, a folder of the wrong dataset kind, a malformed manifest."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from babylm.train.cli import main
from tests.train.data.loader_fixtures import write_image_text, write_tokens

MODELS = ("flamingo", "git", "noimg", "opt", "roberta")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    (root / "bad").mkdir()
    (root / "bad" / "manifest.json").write_text('{"format_version": 1, "kind": ')
    (root / "tok").mkdir()  # an existing folder: the tokenizer check passes, the data check runs
    (root / "run").mkdir()
    (root / "run" / "metrics.jsonl").write_text("not json\n")
    return {
        "images": str(write_image_text(root / "images", [4])),
        "tokens": str(write_tokens(root / "tokens", [40])),
        "bad": str(root / "bad"),
        "missing": str(root / "missing"),
        "tok": str(root / "tok"),
        "run": str(root / "run"),
        "out": str(root / "out"),
    }


def _train(model: str, *data: str, **extra: str) -> list[str]:
    args = [model, "--tokenizer", "{tok}", "--out", "{out}", "--vision-encoder", "tiny-random"]
    for d in data:
        args += ["--data", d]
    for k, v in extra.items():
        args += [f"--{k.replace('_', '-')}", v]
    return args


CASES = {
    **{f"{m}-missing-data": _train(m, "{missing}") for m in MODELS},
    **{f"{m}-malformed-manifest": _train(m, "{bad}", "{tokens}") for m in MODELS},
    **{f"{m}-wrong-kind": _train(m, "{tokens}") for m in ("flamingo", "git", "noimg")},
    **{f"{m}-wrong-kind": _train(m, "{images}") for m in ("opt", "roberta")},
    "flamingo-missing-tokenizer": _train("flamingo", "{images}", "{tokens}", tokenizer="{missing}"),
    "flamingo-missing-vision-encoder": _train(
        "flamingo", "{images}", "{tokens}", vision_encoder="{missing}/vit"
    ),
    "flamingo-missing-config": ["flamingo", "--config", "{missing}/config.toml"],
    "samples-missing": ["samples", "{missing}"],
    "samples-wrong-kind": ["samples", "{images}", "{tokens}"],
    "samples-malformed-manifest": ["samples", "{bad}"],
    "evaluate-missing-checkpoint": ["evaluate", "{missing}", "--data", "{images}", "--out", "{out}"],
    "evaluate-missing-data": ["evaluate", "{run}", "--data", "{missing}", "--out", "{out}"],
    "evaluate-wrong-kind": ["evaluate", "{run}", "--data", "{tokens}", "--out", "{out}"],
    "evaluate-malformed-manifest": ["evaluate", "{run}", "--data", "{bad}", "--out", "{out}"],
    "evaluate-not-a-run": ["evaluate", "{images}", "--data", "{images}", "--out", "{out}"],
    "export-missing": ["export", "{missing}", "{out}"],
    "export-not-a-run": ["export", "{images}", "{out}"],
    "plot-missing": ["plot", "{missing}"],
    "plot-not-a-run": ["plot", "{images}"],
    "plot-malformed-metrics": ["plot", "{run}"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_user_error_is_one_line_exit_2_no_traceback(name, inputs):
    args = [a.format(**inputs) for a in CASES[name]]
    result = CliRunner().invoke(main, args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.output, result.exc_info)
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    # The line names the input it is about.
    named = [v for v in inputs.values() if v in lines[0]]
    assert named or "--config" in lines[0], lines[0]
