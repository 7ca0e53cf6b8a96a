"""The model-kind records: each names an architecture that has a builder, files and classes that
exist, and a setting name that parses back to the kind; the CLI has one command per record."""

from __future__ import annotations

import importlib

import pytest
import transformers
from click.testing import CliRunner

from babylm.train.cli import main
from babylm.train.kinds import KINDS, MODEL_KINDS, MULTIMODAL_KINDS, architecture, kind_of
from babylm.train.models.build import ARCHITECTURES, model_class
from babylm.train.settings import parse_setting


@pytest.mark.parametrize("name", MODEL_KINDS)
def test_every_kind_has_a_builder_and_an_export_route(name):
    kind = KINDS[name]
    assert kind.architecture in ARCHITECTURES
    assert model_class(name) is ARCHITECTURES[kind.architecture].model_class
    # exactly one way to export: its own remote code, or a stock transformers class
    assert (kind.remote_code is None) != (kind.stock_class is None)
    if kind.stock_class is not None:
        assert issubclass(getattr(transformers, kind.stock_class), transformers.PreTrainedModel)
    else:
        code = kind.remote_code
        config_module = importlib.import_module(f"babylm.train.models.{code.config_module}")
        modeling = importlib.import_module(f"babylm.train.models.{code.modeling_module}")
        assert getattr(config_module, code.config_class).model_type.startswith("babylm")
        assert getattr(modeling, f"{code.class_prefix}ForCausalLM") is model_class(name)
        for extra in code.extra_files:
            importlib.import_module(f"babylm.train.models.{extra.removesuffix('.py')}")


@pytest.mark.parametrize("name", MODEL_KINDS)
def test_setting_names_parse_back_to_the_kind(name):
    kind = KINDS[name]
    setting = f"base_{kind.setting_name}_1vd25_s3" if kind.multimodal else f"{kind.setting_name}_s3"
    assert parse_setting(setting)["model"] == name


def test_facts_of_the_baselines():
    assert MULTIMODAL_KINDS == ("flamingo", "git", "noimg")
    assert [k for k, v in KINDS.items() if v.images] == ["flamingo", "git"]
    assert [k for k, v in KINDS.items() if v.masked_lm] == ["roberta"]
    assert KINDS["flamingo"].image_prefix == "<image> " and KINDS["git"].image_prefix is None
    assert architecture("noimg") == "git"
    assert [KINDS[k].default_epochs for k in MODEL_KINDS] == [30, 30, 30, 20, 20]
    with pytest.raises(ValueError, match="kind must be one of"):
        kind_of("gpt2")


def test_one_train_command_per_kind_with_its_help():
    for name, kind in KINDS.items():
        result = CliRunner().invoke(main, [name, "--help"], terminal_width=400)
        assert result.exit_code == 0
        assert " ".join(kind.help.split()[:6]) in " ".join(result.output.split())
