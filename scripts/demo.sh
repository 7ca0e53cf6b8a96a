#!/usr/bin/env bash
# `make demo`: generated raw data -> shards -> a tiny multimodal model trained with torchrun on 2 CPU
# processes -> a report (loss plot, greedy captions, right- vs shuffled-image loss) -> an exported
# Hugging Face folder, loaded back with AutoModelForCausalLM + AutoProcessor.
# DEMO_MODEL (flamingo, the default, or git), DEMO_DIR (default .demo), DEMO_STEPS and
# DEMO_DATA_ARGS make it different or smaller (CI runs a reduced one).
#
# The tiny Flamingo uses the picture after ~200 steps (why its init differs from the base size:
# README, "Quick start").
set -euo pipefail
BIN=${BIN:-.venv/bin}
export DEMO_DIR=${DEMO_DIR:-.demo}
STEPS=${DEMO_STEPS:-400}
MODEL=${DEMO_MODEL:-flamingo}
# The demo fails unless shuffled-image loss exceeds right-image loss by DEMO_MIN_GAIN nats/token
# (empty: report only, as the reduced CI run does).
MIN_GAIN=${DEMO_MIN_GAIN-0.2}
GAIN_ARGS=()
if [ -n "$MIN_GAIN" ]; then GAIN_ARGS=(--min-image-gain "$MIN_GAIN"); fi
unset BABYLM_DATASET_ROOT_DIR  # the demo always uses its generated data
SHARDS=$DEMO_DIR/shards
RUN=$DEMO_DIR/run

BIN=$BIN scripts/make_shards.sh

echo "== training a tiny $MODEL for $STEPS steps on 2 CPU processes (torchrun, gloo)"
rm -rf "$RUN"
OMP_NUM_THREADS=1 "$BIN/torchrun" --standalone --nproc-per-node 2 -m babylm.train "$MODEL" \
  --data "$SHARDS/cc3m_training" --data "$SHARDS/localnarr" --data "$SHARDS/text_vis2024" \
  --tokenizer "$SHARDS/tokenizer_vis2024" --vision-encoder tiny-random --size tiny \
  --max-steps "$STEPS" --global-batch-size 32 --lr 1e-3 --warmup-steps 20 --dropout 0 --mix 1v1 --seq-len 64 --workers 1 \
  --save-every 100 --log-every 10 --out "$RUN"

echo "== evaluating on held-out images"
"$BIN/babylm-train" evaluate "$RUN" --data "$SHARDS/cc3m_validation" --out "$DEMO_DIR/report" \
  "${GAIN_ARGS[@]}"

echo "== exporting"
"$BIN/babylm-train" export "$RUN" "$DEMO_DIR/model"
"$BIN/python" - "$DEMO_DIR/model" <<'PY'
import sys

from PIL import Image
from transformers import AutoModelForCausalLM, AutoProcessor

folder = sys.argv[1]
model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
inputs = processor(images=[Image.new("RGB", (320, 240), "red")], text=["a small red circle"], return_tensors="pt")
inputs.pop("token_type_ids", None)
logits = model(**inputs).logits
print(f"exported model loads: {type(model).__name__}, logits {tuple(logits.shape)}")
PY
echo
echo "report:         $(cd "$DEMO_DIR/report" && pwd) (loss.png, captions.png, eval.json)"
echo "exported model: $(cd "$DEMO_DIR/model" && pwd) (AutoModelForCausalLM / AutoProcessor, trust_remote_code=True)"
