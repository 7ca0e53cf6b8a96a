#!/usr/bin/env bash
# `make test-export-compat`: export tiny Flamingo/GIT/OPT/RoBERTa models with this checkout's venv,
# then run check_export.py on them in clean venvs that have no babylm-pipeline, one per
# transformers requirement in EXPORT_COMPAT_TRANSFORMERS (default: 4.51.3, which the BabyLM 2025
# evaluation pipeline pins; the newest 4.56 patch, which the 2024 pipeline's GLUE fine-tuning
# needs; and the newest 5.x the registry serves). The revisions are read from the hub cache
# make_exports writes (HF_HUB_CACHE=exports/hub, offline).
# The venvs and a wheelhouse live under EXPORT_COMPAT_DIR (default build/export-compat, gitignored),
# so a rerun installs nothing new.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
dir=$(realpath -m "${EXPORT_COMPAT_DIR:-build/export-compat}")
py=${PY:-.venv/bin/python}
read -r -a specs <<< "${EXPORT_COMPAT_TRANSFORMERS:-transformers==4.51.3 transformers==4.56.2 transformers>=5}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$py" -m tests.export_compat.make_exports "$work/exports" >/dev/null
for spec in "${specs[@]}"; do
    venv="$dir/venv-$(tr -c 'A-Za-z0-9.\n' '_' <<< "$spec")"
    tests/export_compat/venv.sh "$venv" "$spec" "$dir/wheels" >"$work/venv.log" 2>&1 \
        || { grep -v '^WARNING: Location' "$work/venv.log" | tail -40; exit 1; }
    tail -1 "$work/venv.log"
    # -I: no PYTHONPATH, no user site (check_export.py adds its own folder); offline, a fresh HF cache.
    (cd "$work" && env -i PATH="$PATH" HOME="$work" HF_HOME="$work/hf-$RANDOM" HF_HUB_CACHE="$work/exports/hub" HF_HUB_OFFLINE=1 \
        TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
        "$venv/bin/python" -I "$repo/tests/export_compat/check_export.py" "$work/exports" 2>"$work/stderr" \
        | tail -1) || { tail -40 "$work/stderr"; echo "export-compat FAILED with $spec" >&2; exit 1; }
done
