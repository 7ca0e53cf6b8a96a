"""The training configuration: one frozen dataclass whose defaults are the original's hyperparameters.

Every field is a `babylm-train MODEL` option (generated in `train_cli.py` from the field's metadata),
a key of `--config FILE.toml`, and a line of the resolved `RUN_DIR/config.toml`. Precedence, lowest
first: the defaults here, `--setting NAME`, the TOML file, options given on the command line.
A `TrainConfig` is checked once, when it is made (types, ranges, `Literal` choices, the rules between
fields); code that needs another one makes it with `dataclasses.replace`, which checks it again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

from babylm.train.bounds import Range, option_name, value_problem
from babylm.train.config_toml import load_toml, write_toml
from babylm.train.data.spec import CaptionLoss, Chunking, LoaderSpec
from babylm.train.kinds import KINDS, MODEL_KINDS, ModelName
from babylm.train.settings import apply_setting, parse_mix
from babylm.train.words import parse_milestones, parse_words

Size = Literal["base", "tiny"]
LrSchedule = Literal["constant", "cosine"]
Precision = Literal["auto", "bf16", "fp32"]
PadRow = Literal["pad", "original"]

# "30 for flamingo/git/noimg, 20 for opt/roberta": each kind's default number of epochs.
_EPOCHS_BY_KIND = ", ".join(
    f"{epochs} for {'/'.join(k for k in KINDS if KINDS[k].default_epochs == epochs)}"
    for epochs in dict.fromkeys(kind.default_epochs for kind in KINDS.values())
)

# Fields that say what to do now rather than what the run is; not written to config.toml.
_NOT_RECORDED = ("resume", "config")


def _opt(
    help: str,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    **cli: Any,
) -> dict[str, Any]:
    """Field metadata: the help text, the allowed range of a number (ge/gt/le/lt) and extra click
    settings (choices: the field's `Literal` values; flag, multiple)."""
    bounds = (ge, gt, le, lt)
    return {"help": help, "cli": cli, "range": Range(*bounds) if any(b is not None for b in bounds) else None}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; defaults reproduce the BabyLM baselines. Checked when made
    (ValueError naming the option)."""

    model: ModelName = field(
        default="flamingo", metadata=_opt("Model kind (the command).", choices=get_args(ModelName))
    )
    setting: str | None = field(
        default=None,
        metadata=_opt(
            "An original setting name: base_flmg_1vd25_s1, base_git_1vd25_s1, base_noimg_1vd25_s1, "
            "opt125m_s1, roberta_s1 (also 'BabyLM/exp_txt_vis_new.py:base_flmg_1vd25_s1'); sets "
            "model, mix and seed."
        ),
    )
    data: list[str] = field(
        default_factory=list,
        metadata=_opt(
            "Dataset location (folder or URL of a babylm shard dataset); repeat it. Multimodal "
            "models take one or more image-text (or features) datasets, concatenated, plus one "
            "tokens dataset; opt/roberta take one tokens dataset. Kinds come from the manifests.",
            multiple=True,
        ),
    )
    tokenizer: str = field(
        default="", metadata=_opt("Tokenizer folder (AutoTokenizer); the model's vocabulary follows it.")
    )
    vision_encoder: str = field(
        default="facebook/dino-vitb16",
        metadata=_opt(
            "Frozen vision encoder: a Hugging Face name or local folder; 'tiny-random' builds a "
            "small random ViT under RUN_DIR (tests, CPU demos)."
        ),
    )
    out: str = field(default="", metadata=_opt("Run folder (checkpoints, metrics, config).", folder=True))
    size: Size = field(
        default="base",
        metadata=_opt("Model size: base (the baselines) or tiny (CPU).", choices=get_args(Size)),
    )
    epochs: int | None = field(default=None, metadata=_opt(f"Epochs (default: {_EPOCHS_BY_KIND}).", ge=1))
    max_steps: int | None = field(
        default=None, metadata=_opt("Stop after this many optimizer steps (default: all epochs).", ge=1)
    )
    global_batch_size: int = field(
        default=128, metadata=_opt("Samples per optimizer step over all ranks (per stream).", ge=1)
    )
    batch_size: int | None = field(
        default=None,
        metadata=_opt(
            "Samples per device per micro-step; gradient accumulation makes up the rest of the "
            "global batch (default: global batch / world size, no accumulation).",
            ge=1,
        ),
    )
    dropout: float | None = field(
        default=None,
        metadata=_opt(
            "Override the model's dropout (hidden and attention); default: its own (0.1).", ge=0, lt=1
        ),
    )
    lr: float = field(default=1e-4, metadata=_opt("Peak learning rate (AdamW).", gt=0))
    weight_decay: float = field(default=0.1, metadata=_opt("AdamW weight decay.", ge=0))
    adam_beta1: float = field(default=0.9, metadata=_opt("AdamW beta1.", ge=0, lt=1))
    adam_beta2: float = field(default=0.999, metadata=_opt("AdamW beta2.", ge=0, lt=1))
    adam_eps: float = field(default=1e-8, metadata=_opt("AdamW epsilon.", gt=0))
    grad_clip: float = field(default=1.0, metadata=_opt("Gradient-norm clip (0: off).", ge=0))
    warmup_steps: int = field(default=5000, metadata=_opt("Linear warmup length in optimizer steps.", ge=0))
    lr_schedule: LrSchedule = field(
        default="constant",
        metadata=_opt(
            "After warmup: constant, or cosine decay to --min-lr-ratio.", choices=get_args(LrSchedule)
        ),
    )
    min_lr_ratio: float = field(
        default=0.0, metadata=_opt("Cosine schedule floor, as a fraction of --lr.", ge=0, le=1)
    )
    seq_len: int = field(default=128, metadata=_opt("Tokens per text chunk / longest caption.", ge=1))
    mix: str = field(
        default="1vd25",
        metadata=_opt(
            "Loss weights of the caption and text streams: a preset (1v1, 1vd5, 1vd25, 1vd125, ...) "
            "or 'W_IMG,W_TXT' such as 1,0.25."
        ),
    )
    mask_prob: float = field(default=0.15, metadata=_opt("RoBERTa masking probability.", gt=0, lt=1))
    seed: int = field(
        default=1, metadata=_opt("Seed of initialization, data order and masking.", ge=0, le=2**32 - 1)
    )
    workers: int = field(
        default=4,
        metadata=_opt(
            "Loader worker processes per rank for the image-caption stream (token streams are cut in-process).",
            ge=0,
        ),
    )
    cache_dir: str | None = field(
        default=None,
        metadata=_opt(
            "Where blocks and tar indexes of remote (s3://, http(s)://) shards are cached (default "
            "$BABYLM_CACHE_DIR or ~/.cache/babylm; a folder under /dev/shm keeps them in memory)."
        ),
    )
    cache_gb: float = field(
        default=LoaderSpec.cache_bytes / 2**30,
        metadata=_opt("Size limit of that cache in GiB (least recently used blocks go first).", gt=0),
    )
    prefetch_batches: int = field(
        default=LoaderSpec.prefetch_batches,
        metadata=_opt(
            "Remote shards: fetch the blocks of this many upcoming batches per worker ahead (0: one "
            "range request per sample, no cache).",
            ge=0,
        ),
    )
    save_every: int = field(
        default=1000, metadata=_opt("Save a checkpoint every N optimizer steps (0: off).", ge=0)
    )
    save_epochs: list[int] = field(
        default_factory=lambda: [5, 10, 20, 25],
        metadata=_opt("Epochs after which a checkpoint is kept for good, comma-separated.", ge=1),
    )
    keep: int = field(
        default=2,
        metadata=_opt(
            "How many periodic (--save-every) checkpoints to keep (epoch, word and final ones stay).", ge=0
        ),
    )
    log_every: int = field(
        default=10, metadata=_opt("Write metrics and update the progress display every N steps.", ge=1)
    )
    checkpoint_words: str | None = field(
        default=None,
        metadata=_opt(
            "Save a checkpoint at the first optimizer step whose words seen reach each of these counts, "
            "tagged chck_1M, chck_10M, ... (chck_500K below 1M; 1B is chck_1000M), never rotated by --keep: "
            "a comma-separated list with suffixes K/M/B (1M,2M,10M) or a preset: babylm-2025 (1M..9M, "
            "10M..100M every 10M, 200M..1000M every 100M) or babylm-2025-small (1M..9M, 10M..100M)."
        ),
    )
    max_words: str | None = field(
        default=None,
        metadata=_opt(
            "End training (final checkpoint) at the first optimizer step whose words seen reach this "
            "budget, e.g. 100M or 1B (suffixes K/M/B); --epochs and --max-steps still bound the run."
        ),
    )
    tensorboard: bool = field(
        default=False, metadata=_opt("Also write TensorBoard events under RUN_DIR/tb.", flag=True)
    )
    wandb: bool = field(
        default=False,
        metadata=_opt(
            "Also log the metrics records and this config to Weights & Biases from rank 0 (needs "
            "the wandb extra; WANDB_* variables apply, e.g. WANDB_MODE=offline); a resume "
            "continues the same W&B run (its id is in RUN_DIR/wandb.json).",
            flag=True,
        ),
    )
    wandb_project: str | None = field(
        default=None, metadata=_opt("W&B project (default: $WANDB_PROJECT, else babylm).")
    )
    wandb_run_name: str | None = field(
        default=None, metadata=_opt("W&B run name (default: W&B's own, or $WANDB_NAME).")
    )
    precision: Precision = field(
        default="auto",
        metadata=_opt(
            "auto: bf16 autocast on GPU, fp32 on CPU; fp32 is the original's (FIDELITY.md).",
            choices=get_args(Precision),
        ),
    )
    caption_loss: CaptionLoss = field(
        default="masked",
        metadata=_opt(
            "masked: caption loss over real tokens only; original: labels = input_ids with the "
            "padding left in and no attention mask, as the original (FIDELITY.md).",
            choices=get_args(CaptionLoss),
        ),
    )
    vocab_size: int | None = field(
        default=None,
        metadata=_opt(
            "Rows of the model's token embedding (default: the tokenizer's size + 8, the original's "
            "32,778 for the BabyLM tokenizer). --setting opt125m_s1 uses 50,272 (facebook/opt-125m), "
            "roberta_s1 50,265 (roberta-base).",
            ge=1,
        ),
    )
    chunking: Chunking = field(
        default="stream",
        metadata=_opt(
            "Text chunks: stream (the whole token stream cut into --seq-len chunks) or original "
            "(cut inside each group of 1000 lines, each group's remainder dropped, as the original).",
            choices=get_args(Chunking),
        ),
    )
    pad_row: PadRow = field(
        default="pad",
        metadata=_opt(
            "Flamingo's token-embedding row kept at zero: pad (the tokenizer's <pad>) or original "
            "(OPT-125M's pad id 1, which is </s> in the BabyLM tokenizer, as the original; FIDELITY.md).",
            choices=get_args(PadRow),
        ),
    )
    override_setting: bool = field(
        default=False,
        metadata=_opt(
            "Allow options that contradict --setting's reproduction of the original (otherwise an error).",
            flag=True,
        ),
    )
    resume: str | None = field(
        default=None, metadata=_opt("Checkpoint folder to continue from, or 'auto' (newest in RUN_DIR).")
    )

    def __post_init__(self) -> None:
        self.validate()

    # ---- derived values -------------------------------------------------------------------------
    @property
    def multimodal(self) -> bool:
        return KINDS[self.model].multimodal

    @property
    def num_epochs(self) -> int:
        if self.epochs is not None:
            return self.epochs
        return KINDS[self.model].default_epochs

    @property
    def mix_weights(self) -> tuple[float, float]:
        return parse_mix(self.mix)

    def accumulation(self, world_size: int) -> tuple[int, int]:
        """(per-device micro-batch, micro-steps per optimizer step) for `world_size` ranks."""
        if self.global_batch_size % world_size:
            raise ValueError(
                f"--global-batch-size {self.global_batch_size} is not a multiple of the world size {world_size}"
            )
        per_rank = self.global_batch_size // world_size
        micro = self.batch_size or per_rank
        if per_rank % micro:
            raise ValueError(
                f"--global-batch-size {self.global_batch_size} / {world_size} ranks = {per_rank} per rank, "
                f"not a multiple of --batch-size {micro}"
            )
        return micro, per_rank // micro

    def validate(self) -> TrainConfig:
        """Raise ValueError with the option's name on a bad value; return self. Runs when the
        config is made; a frozen config stays valid."""
        if self.model not in MODEL_KINDS:
            raise ValueError(f"model must be one of {', '.join(MODEL_KINDS)}, got {self.model!r}")
        for f in fields(self):
            problem = value_problem(f, getattr(self, f.name))
            if problem:
                raise ValueError(f"{option_name(f.name)} {problem}")
        if not self.tokenizer:
            raise ValueError("--tokenizer is required")
        if not self.out:
            raise ValueError("--out is required")
        if not self.data:
            raise ValueError("--data is required")
        parse_mix(self.mix)
        if self.batch_size is not None and self.global_batch_size % self.batch_size:
            raise ValueError(
                f"--global-batch-size {self.global_batch_size} is not a multiple of --batch-size "
                f"{self.batch_size}; pick a --batch-size that divides it"
            )
        if self.checkpoint_words is not None:
            parse_milestones(self.checkpoint_words)
        if self.max_words is not None:
            parse_words(self.max_words)
        return self

    @property
    def word_milestones(self) -> list[int]:
        """--checkpoint-words as sorted word counts (none: [])."""
        return parse_milestones(self.checkpoint_words) if self.checkpoint_words else []

    @property
    def word_budget(self) -> int | None:
        """--max-words as a word count."""
        return parse_words(self.max_words) if self.max_words is not None else None

    # ---- TOML -----------------------------------------------------------------------------------
    def to_toml(self) -> str:
        """The resolved configuration as TOML (flat keys, the field names)."""
        return write_toml(
            {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NOT_RECORDED}
        )


def resolve_config(model: str, cli: dict[str, Any], config_file: str | Path | None = None) -> TrainConfig:
    """Defaults < --setting < TOML file < explicit CLI values (`cli` holds only those given)."""
    file_values = load_toml(config_file, fields(TrainConfig)) if config_file else {}
    values: dict[str, Any] = {}
    setting = cli.get("setting") or file_values.get("setting")
    if setting:
        given = {**file_values, **{k: v for k, v in cli.items() if v is not None}}
        values.update(apply_setting(setting, model, given))
    values.update(file_values)
    values.update({k: v for k, v in cli.items() if v is not None})
    if values.get("model", model) != model:
        raise ValueError(f"{config_file}: model = {values['model']!r}, but the command is {model}")
    values["model"] = model
    for k in ("data", "save_epochs"):
        if k in values:
            values[k] = list(values[k])
    return TrainConfig(**values)


def config_fields() -> list[dataclasses.Field]:
    """Fields exposed as CLI options (all but `model`, which is the command)."""
    return [f for f in fields(TrainConfig) if f.name != "model"]
