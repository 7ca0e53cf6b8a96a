"""`babylm-train {flamingo,git,noimg,opt,roberta}`, `babylm-train export`, `plot` and `evaluate`.

The training options are generated from `TrainConfig`'s fields (name, type, help), so the CLI, the
TOML file and the dataclass cannot drift apart. Every option defaults to "not given" here; the
defaults live in the dataclass and are shown in the help.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from dataclasses import MISSING, Field
from pathlib import Path
from typing import Any

import click

from babylm.train.bounds import Range
from babylm.train.config import config_fields, resolve_config
from babylm.train.kinds import KINDS


class _Number(click.ParamType):
    """An int or a finite float within the field's declared `Range` (refused at parse time)."""

    def __init__(self, kind: type, allowed: Range | None):
        self.kind, self.allowed = kind, allowed
        self.name = "integer" if kind is int else "float"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, self.kind) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = self.kind(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not {'an integer' if self.kind is int else 'a number'}", param, ctx)
        problem = self.allowed.problem(number) if self.allowed else None
        if problem is None and self.kind is float and not math.isfinite(number):
            problem = f"must be a finite number, got {value}"
        if problem:
            self.fail(problem, param, ctx)
        return number


class _IntList(click.ParamType):
    name = "N,N,..."

    def __init__(self, allowed: Range | None = None):
        self.allowed = allowed

    def convert(self, value: Any, param: Any, ctx: Any) -> list[int]:
        if isinstance(value, list):
            return value
        try:
            items = [int(x) for x in str(value).split(",") if x.strip()]
        except ValueError:
            self.fail(f"expected comma-separated integers, got {value!r}", param, ctx)
        for item in items:
            problem = self.allowed.problem(item) if self.allowed else None
            if problem:
                self.fail(f"items {problem}", param, ctx)
        return items


def _default_text(f: Field) -> str:
    if f.default is not MISSING:
        value = f.default
    elif f.default_factory is not MISSING:
        value = f.default_factory()
    else:
        return ""
    if value is None or value == "" or value == []:
        return ""
    if isinstance(value, bool):
        return f" [default: {'on' if value else 'off'}]"
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    return f" [default: {value}]"


def _option_for(f: Field) -> Callable:
    """A click option for one config field (default None: 'not given on the command line')."""
    meta = f.metadata
    cli = meta.get("cli", {})
    flag = "--" + f.name.replace("_", "-")
    allowed = meta.get("range")
    help_text = meta["help"] + _default_text(f) + (f" [{allowed.describe()}]" if allowed else "")
    type_name = str(f.type)
    if cli.get("flag"):
        return click.option(f"{flag}/--no-{flag[2:]}", f.name, default=None, help=help_text)
    if cli.get("multiple"):
        return click.option(flag, f.name, multiple=True, metavar="LOCATION", help=help_text)
    if "choices" in cli:
        return click.option(flag, f.name, type=click.Choice(cli["choices"]), default=None, help=help_text)
    if type_name.startswith("list[int]"):
        param_type: Any = _IntList(allowed)
    elif type_name.startswith("int"):
        param_type = _Number(int, allowed)
    elif type_name.startswith("float"):
        param_type = _Number(float, allowed)
    elif cli.get("folder"):
        param_type = click.Path(file_okay=False)
    else:
        param_type = str
    return click.option(flag, f.name, type=param_type, default=None, help=help_text)


def training_options(func: Callable) -> Callable:
    """Decorate `func` with one option per config field plus --config."""
    for f in reversed(config_fields()):
        func = _option_for(f)(func)
    return click.option(
        "--config",
        "config_file",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        help="TOML file with any of these options (keys are the option names with underscores); "
        "options given on the command line win. RUN_DIR/config.toml of a run reproduces it.",
    )(func)


def _make_train_command(model: str) -> click.Command:
    @click.command(model, help=KINDS[model].help)
    @training_options
    def command(config_file: str | None, **options: Any) -> None:
        # Not given: None, or an empty tuple for a repeatable option (`--save-epochs ""` is []).
        cli = {k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items() if v not in (None, ())}
        try:
            cfg = resolve_config(model, _absolute_paths(cli), config_file)
            # torchrun's world size is known now: a global batch it cannot split is refused here.
            cfg.accumulation(int(os.environ.get("WORLD_SIZE", "1")))
        except ValueError as e:
            raise click.UsageError(str(e)) from e
        if Path(cfg.out).exists() and not Path(cfg.out).is_dir():
            raise click.UsageError(f"--out {cfg.out} is a file; give a folder for the run")
        from babylm.train.progress import quiet_library_bars
        from babylm.train.setup import check_inputs
        from babylm.train.trainer import train

        quiet_library_bars()
        check_inputs(cfg)  # a SetupError is one line and exit 2 (see cli.py)
        sys.exit(train(cfg))

    return command


def _absolute_paths(cli: dict[str, Any]) -> dict[str, Any]:
    """Local paths made absolute, so RUN_DIR/config.toml works from any directory."""

    def fix(v: str) -> str:
        return str(Path(v).resolve()) if "://" not in v and Path(v).exists() else v

    out = dict(cli)
    for k in ("tokenizer", "out", "vision_encoder"):
        if k in out:
            out[k] = fix(out[k]) if k != "out" else str(Path(out[k]).resolve())
    if "data" in out:
        out["data"] = [fix(v) for v in out["data"]]
    return out


train_commands = [_make_train_command(m) for m in KINDS]


@click.command("export")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option(
    "--tokenizer",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Tokenizer folder (default: the one the run trained with).",
)
@click.option(
    "--revisions",
    is_flag=True,
    help="CHECKPOINT is a RUN_DIR: write its word-milestone checkpoints (chck_1M, ...) and its final "
    "one (main) as revisions of --repo-id in the Hugging Face hub-cache layout under OUT_DIR; load "
    'them with HF_HUB_CACHE=OUT_DIR HF_HUB_OFFLINE=1 and from_pretrained("ORG/NAME", revision="chck_1M").',
)
@click.option("--repo-id", default=None, metavar="ORG/NAME", help="The model's name for --revisions.")
def export(
    checkpoint: str, out_dir: str, tokenizer: str | None, revisions: bool, repo_id: str | None
) -> None:
    """Write CHECKPOINT (a checkpoint folder, or a run folder: its newest) as a Hugging Face model
    folder in OUT_DIR, loadable with AutoModelForCausalLM / AutoModelForMaskedLM."""
    import transformers

    from babylm.train.export import export_checkpoint

    if revisions != (repo_id is not None):
        raise click.UsageError("--revisions and --repo-id ORG/NAME go together")
    transformers.utils.logging.disable_progress_bar()
    if revisions:
        from babylm.train.export_revisions import export_revisions

        repo = export_revisions(checkpoint, out_dir, repo_id, tokenizer)  # errors: one line, exit 2
        names = sorted(p.name for p in (repo / "refs").iterdir())
        click.echo(f"exported {len(names)} revisions of {repo_id} to {repo}: {', '.join(names)}")
        click.echo(f'load with HF_HUB_CACHE={Path(out_dir).resolve()} HF_HUB_OFFLINE=1 and "{repo_id}"')
        return
    out = export_checkpoint(checkpoint, out_dir, tokenizer)  # an ExportError is one line, exit 2
    click.echo(f"exported {checkpoint} to {out}")


@click.command("plot")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    "out_png",
    type=click.Path(dir_okay=False),
    default=None,
    help="PNG to write (default: RUN_DIR/loss.png).",
)
def plot(run_dir: str, out_png: str | None) -> None:
    """Plot the loss curves (total, caption, text) and the learning rate of RUN_DIR."""
    from babylm.train.metrics import plot as draw

    click.echo(str(draw(run_dir, out_png)))


@click.command("evaluate")
@click.argument("checkpoint")
@click.option("--data", required=True, help="Held-out image-text (or features) shards, e.g. cc3m_validation.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Report folder.")
@click.option(
    "--tokenizer",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Tokenizer folder (default: the one the run used).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=2),
    default=32,
    show_default=True,
    help="Pairs per batch (at least 2: images are shuffled within a batch).",
)
@click.option(
    "--max-samples",
    type=click.IntRange(min=1),
    default=1024,
    show_default=True,
    help="Evaluate at most this many pairs.",
)
@click.option(
    "--examples",
    type=click.IntRange(min=0),
    default=8,
    show_default=True,
    help="Greedy captions on the contact sheet.",
)
@click.option(
    "--min-image-gain",
    type=_Number(float, None),
    default=None,
    help="Exit non-zero unless shuffled-image loss exceeds right-image loss by at least this much.",
)
def evaluate_command(
    checkpoint: str,
    data: str,
    out_dir: str,
    tokenizer: str | None,
    batch_size: int,
    max_samples: int,
    examples: int,
    min_image_gain: float | None,
) -> None:
    """Caption loss with the right vs. shuffled images, greedy captions and loss curves of
    CHECKPOINT (a checkpoint folder or a run folder: its newest checkpoint)."""
    from babylm.train.evaluate import evaluate

    r = evaluate(checkpoint, data, out_dir, tokenizer, batch_size, max_samples, examples)
    click.echo(
        f"caption loss with right images {r['matched_loss']:.3f}, with shuffled images "
        f"{r['shuffled_loss']:.3f} (gain {r['image_gain']:+.3f}) over {r['samples']} pairs"
    )
    click.echo(f"report: {Path(out_dir).resolve()} (eval.json, captions.png, loss.png)")
    if min_image_gain is not None and r["image_gain"] < min_image_gain:
        raise click.ClickException(
            f"the model does not use the image enough: gain {r['image_gain']:.3f} < {min_image_gain}"
        )
