#!/usr/bin/env bash
# Build (or refresh) a clean venv at $1 with torch, transformers matching $2 and what the check
# script needs (accelerate for Trainer, pillow): babylm-pipeline is never installed there, as on an
# evaluation machine. Every wheel goes through the wheelhouse $3 first (pip on this machine writes
# no HTTP cache), so a rerun or a new venv downloads only what is new on the registry.
set -euo pipefail
venv=$1 spec=$2 wheels=$3
# The CPU build of torch, pinned: a plain `torch` requirement would pull a multi-GB CUDA build.
torch_spec=${TORCH:-torch==2.13.0}
reqs=("$torch_spec" "$spec" accelerate pillow)
test -x "$venv/bin/python" || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip -q --disable-pip-version-check)
mkdir -p "$wheels"
# `download` asks the registry which releases match ("transformers>=5": the newest 5.x today) and
# fetches only wheels the wheelhouse lacks; `install` then reads the wheelhouse alone.
"${pip[@]}" download -d "$wheels" --find-links "$wheels" "${reqs[@]}"
"${pip[@]}" install --no-index --find-links "$wheels" --upgrade "${reqs[@]}"
"$venv/bin/python" -c "import transformers, torch; print('$venv: transformers', transformers.__version__, 'torch', torch.__version__)"
