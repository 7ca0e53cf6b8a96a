"""The original's setting names (`base_flmg_1vd25_s1`, `opt125m_s1`, ...): what each selects, and
the choices every `--setting` run fixes so that it reproduces the original exactly (FIDELITY.md);
the loss-weight mixes (`--mix`, `parse_mix`)."""

from __future__ import annotations

import math
import re
from typing import Any

from babylm.train.kinds import KINDS

# Caption-stream weight, text-stream weight (the original's `cmb_exp_suffix_to_mixw_map`).
MIX_PRESETS: dict[str, tuple[float, float]] = {
    "1v2": (1.0, 2.0),
    "1v1": (1.0, 1.0),
    "1vd5": (1.0, 0.5),
    "1vd25": (1.0, 0.25),
    "1vd125": (1.0, 0.125),
    "1vd0625": (1.0, 0.0625),
    "1vd03125": (1.0, 0.03125),
}
# Setting-name model keys of the original (`exp_txt_vis_new.py`, `exp_strict*.py`): each kind's
# `setting_name`, with a mix for the multimodal kinds.
_BY_SETTING_NAME = {k.setting_name: k.name for k in KINDS.values()}
_MIXED = "|".join(k.setting_name for k in KINDS.values() if k.multimodal)
_UNMIXED = "|".join(k.setting_name for k in KINDS.values() if not k.multimodal)


def parse_mix(mix: str) -> tuple[float, float]:
    """`1vd25` -> (1, 0.25); `1,0.25` -> (1, 0.25)."""
    if mix in MIX_PRESETS:
        return MIX_PRESETS[mix]
    parts = mix.split(",")
    try:
        if len(parts) == 2:
            w = (float(parts[0]), float(parts[1]))
            if min(w) >= 0 and max(w) > 0 and all(map(math.isfinite, w)):
                return w
    except ValueError:
        pass
    raise ValueError(
        f"--mix must be one of {', '.join(MIX_PRESETS)} or two non-negative weights 'W_IMG,W_TXT', got {mix!r}"
    )


def parse_setting(name: str) -> dict[str, Any]:
    """The fields an original setting name selects: model, mix (multimodal) and seed.

    Accepts `base_flmg_1vd25_s1` and the original's `BabyLM/exp_txt_vis_new.py:base_flmg_1vd25_s1`.
    """
    key = name.rsplit(":", 1)[-1].strip()
    m = re.fullmatch(rf"base_({_MIXED})_(1v\w+?)_s(\d+)", key)
    if m:
        if m.group(2) not in MIX_PRESETS:
            raise ValueError(
                f"setting {name!r}: unknown mix {m.group(2)!r} (known: {', '.join(MIX_PRESETS)})"
            )
        return {"model": _BY_SETTING_NAME[m.group(1)], "mix": m.group(2), "seed": int(m.group(3))}
    m = re.fullmatch(rf"({_UNMIXED})_s(\d+)", key)
    if m:
        return {"model": _BY_SETTING_NAME[m.group(1)], "seed": int(m.group(2))}
    unmixed = " or ".join(f"{n}_sN" for n in _UNMIXED.split("|"))
    raise ValueError(
        f"unknown setting {name!r}; expected base_{{{_MIXED.replace('|', ',')}}}_MIX_sN, {unmixed}"
    )


# What every --setting run fixes to reproduce the original exactly (see FIDELITY.md): the
# original trained in fp32, averaged its caption loss over padding too, and Flamingo's embedding
# kept OPT's pad row (id 1).
SETTING_FIDELITY: dict[str, Any] = {
    "precision": "fp32",
    "caption_loss": "original",
    "pad_row": "original",
    "chunking": "original",
}


def apply_setting(setting: str, model: str, given: dict[str, Any]) -> dict[str, Any]:
    """The values `setting` selects; `given` (TOML and CLI values) must not contradict its
    fidelity choices unless it says override_setting."""
    picked = parse_setting(setting)
    if picked["model"] != model:
        raise ValueError(f"setting {setting!r} selects model {picked['model']}, not {model}")
    kind = KINDS[model]
    fidelity = dict(SETTING_FIDELITY)
    if not kind.multimodal:
        del fidelity["caption_loss"]
    if kind.original_pad_row is None:
        del fidelity["pad_row"]
    if kind.setting_vocab is not None:  # the published config's vocabulary, not the tokenizer's size
        fidelity["vocab_size"] = kind.setting_vocab
    if not given.get("override_setting"):
        for name, value in fidelity.items():
            if name in given and given[name] != value:
                flag = "--" + name.replace("_", "-")
                raise ValueError(
                    f"--setting {setting} reproduces the original with {flag} {value}, but {flag} "
                    f"{given[name]} was given; drop one, or pass --override-setting to train anyway"
                )
    return {**picked, **fidelity}
