#!/usr/bin/env bash
# Build (or refresh) a clean venv at $1 with only torch, transformers matching $2, and what the
# check script needs: babylm-pipeline is never installed there, as on an evaluation machine.
# Wheels are cached under $3 (pip's --cache-dir), so a rerun downloads nothing.
set -euo pipefail
venv=$1 spec=$2 cache=$3
torch_spec=${TORCH:-torch==2.13.0}
test -x "$venv/bin/python" || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip -q --disable-pip-version-check --cache-dir "$cache")
# torch first: a plain `torch` requirement would pull a multi-GB CUDA build.
"$venv/bin/python" -c "import torch" 2>/dev/null || "${pip[@]}" install "$torch_spec"
# --upgrade: "transformers>=5" means the newest 5.x the registry serves today.
"${pip[@]}" install --upgrade "$spec" accelerate pillow
"$venv/bin/python" -c "import transformers, torch; print('$venv: transformers', transformers.__version__, 'torch', torch.__version__)"
