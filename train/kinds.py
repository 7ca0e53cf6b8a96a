"""The model kinds: one frozen `ModelKind` record per `babylm-train` command, holding every fact about
the kind that needs no torch (what it trains on, its help text, its 2023 setting, how it exports).

`kind` alone always means a model kind here and in the checkpoints (`state["kind"]`); the kind of a
dataset (image_text, features, tokens: its manifest's `kind`) is called `dataset_kind`.

The code that builds a kind's model lives in `models/build.py`, keyed by the record's
`architecture`; the exporter reads `remote_code` / `stock_class`. Adding a kind is one record here
(and, for a new architecture, its model files and one entry in `models/build.py`'s `ARCHITECTURES`).
Kept free of torch so the CLI starts fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

# Dropout config fields: OPT's names (Flamingo's decoder is OPT-shaped) and GIT's / RoBERTa's.
_OPT_DROPOUT = ("dropout", "attention_dropout")
_BERT_DROPOUT = ("hidden_dropout_prob", "attention_probs_dropout_prob")


@dataclass(frozen=True)
class SettingTokenizer:
    """The tokenizer a 2023 --setting trained with (FIDELITY.md): its size and whether a line
    starts with BOS."""

    description: str
    size: int
    bos: bool


@dataclass(frozen=True)
class RemoteCode:
    """The self-contained files in train/models/ an exported model of this architecture ships, and
    the class names its `auto_map` points at (`{prefix}ForCausalLM`, ...)."""

    config_module: str
    config_class: str
    modeling_module: str
    class_prefix: str
    extra_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelKind:
    """Everything about one model kind that needs no torch.

    - `architecture`: the model files (and `models/build.py` builder) it is built with.
    - `multimodal`: built with a frozen vision encoder and trained on caption plus text datasets;
      `images`: whether an image ever reaches it (`noimg` is GIT trained on the captions alone).
    - `masked_lm`: its targets are masked tokens (no causal shift); the trainer masks its inputs.
    - `image_token`: the token that places an image in a text (captions are prefixed with it, a
      caption prompt is it); None: the image goes before the text without a token.
    - `original_pad_row`: the embedding row the original kept at zero, for `--pad-row original`
      (None: the option does not concern this kind).
    - `setting_name` / `setting_vocab` / `setting_tokenizer`: the 2023 setting names
      (`base_{name}_MIX_sN` when multimodal, else `{name}_sN`), the published config's vocabulary
      and the tokenizer those settings trained with.
    - `remote_code` (exported with its own files) or `stock_class` (a plain transformers class).
    """

    name: str
    help: str
    architecture: str
    setting_name: str
    dropout_fields: tuple[str, ...]
    multimodal: bool = False
    images: bool = False
    masked_lm: bool = False
    image_token: str | None = None
    original_pad_row: int | None = None
    setting_vocab: int | None = None
    setting_tokenizer: SettingTokenizer | None = None
    remote_code: RemoteCode | None = None
    stock_class: str | None = None

    @property
    def image_prefix(self) -> str | None:
        """What a caption is tokenized after (`<image> ` for Flamingo), None for none."""
        return f"{self.image_token} " if self.image_token else None

    @property
    def default_epochs(self) -> int:
        """The original's epochs: 30 on the multimodal track, 20 on the text track."""
        return 30 if self.multimodal else 20


_FLAMINGO_CODE = RemoteCode(
    "configuration_babylm_flamingo",
    "BabyLMFlamingoConfig",
    "modeling_babylm_flamingo",
    "BabyLMFlamingo",
    extra_files=("modeling_babylm_perceiver.py",),
)
_GIT_CODE = RemoteCode("configuration_babylm_git", "BabyLMGitConfig", "modeling_babylm_git", "BabyLMGit")

KINDS: dict[str, ModelKind] = {
    k.name: k
    for k in (
        ModelKind(
            name="flamingo",
            help="Train the Flamingo baseline: an OPT-125M-shaped decoder with gated cross-attention "
            "over a perceiver-resampled frozen ViT, on image-caption and text shards.",
            architecture="flamingo",
            setting_name="flmg",
            dropout_fields=_OPT_DROPOUT,
            multimodal=True,
            images=True,
            image_token="<image>",
            original_pad_row=1,  # OPT-125M's pad_token_id (`</s>` in the BabyLM tokenizer)
            remote_code=_FLAMINGO_CODE,
        ),
        ModelKind(
            name="git",
            help="Train the GIT baseline: GIT's 12-layer text decoder reading a frozen ViT through a "
            "fresh visual projection, on image-caption and text shards.",
            architecture="git",
            setting_name="git",
            dropout_fields=_BERT_DROPOUT,
            multimodal=True,
            images=True,
            remote_code=_GIT_CODE,  # GIT's pad row is <pad> (0) in the original too
        ),
        ModelKind(
            name="noimg",
            help="Train the text-only control of the multimodal track: GIT's decoder on the captions "
            "(as text, without images) plus the text shards.",
            architecture="git",
            setting_name="noimg",
            dropout_fields=_BERT_DROPOUT,
            multimodal=True,
            remote_code=_GIT_CODE,  # exports as the GIT it is
        ),
        ModelKind(
            name="opt",
            help="Train the OPT-125M causal LM baseline (2023 text track) on a tokens dataset.",
            architecture="opt",
            setting_name="opt125m",
            dropout_fields=_OPT_DROPOUT,
            setting_vocab=50272,  # facebook/opt-125m's config
            setting_tokenizer=SettingTokenizer(
                "facebook/opt-125m's GPT-2 BPE tokenizer with add_bos_token=False and <image>, </c>, "
                "<PERSON> added",
                50268,
                False,
            ),
            stock_class="OPTForCausalLM",
        ),
        ModelKind(
            name="roberta",
            help="Train the RoBERTa-base masked LM baseline (2023 text track, 15% masking) on a tokens dataset.",
            architecture="roberta",
            setting_name="roberta",
            dropout_fields=_BERT_DROPOUT,
            masked_lm=True,
            setting_vocab=50265,  # roberta-base's config
            setting_tokenizer=SettingTokenizer("roberta-base's tokenizer", 50265, True),
            stock_class="RobertaForMaskedLM",
        ),
    )
}

MODEL_KINDS = tuple(KINDS)
# The kind names as a type (TrainConfig.model); the same names as the records, in their order.
ModelName = Literal["flamingo", "git", "noimg", "opt", "roberta"]
if get_args(ModelName) != MODEL_KINDS:
    raise ImportError(f"kinds.ModelName {get_args(ModelName)} differs from the records {MODEL_KINDS}")
# Built with a frozen vision encoder. `noimg` is the multimodal track's text-only control: GIT's
# architecture, trained on the captions without ever seeing an image.
MULTIMODAL_KINDS = tuple(k for k, spec in KINDS.items() if spec.multimodal)
TEXT_KINDS = tuple(k for k, spec in KINDS.items() if not spec.multimodal)


def check_kind(kind: str) -> None:
    """Raise ValueError unless `kind` is one of MODEL_KINDS."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {MODEL_KINDS}, got {kind!r}")


def kind_of(kind: str) -> ModelKind:
    """The record of model kind `kind` (ValueError for an unknown one)."""
    check_kind(kind)
    return KINDS[kind]


def architecture(kind: str) -> str:
    """The architecture a model kind is built with: the kind itself, or "git" for `noimg`."""
    return kind_of(kind).architecture
