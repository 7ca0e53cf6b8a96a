#!/usr/bin/env bash
# `make shards`: tokenizer, text, CC-3M and Localized Narratives shards.
# With BABYLM_DATASET_ROOT_DIR set: the real data, into $BABYLM_ROOT_DIR/shards/.
# Without it: the generated demo data in $DEMO_DIR/datasets (default .demo; created on first use),
# into $DEMO_DIR/shards/.
set -euo pipefail
BIN=${BIN:-.venv/bin}
if [ -n "${BABYLM_DATASET_ROOT_DIR:-}" ]; then
  ROOT=$BABYLM_DATASET_ROOT_DIR
  OUT=${BABYLM_ROOT_DIR:?set BABYLM_ROOT_DIR too: shards go to \$BABYLM_ROOT_DIR/shards}/shards
  VOCAB=${VOCAB:-32768}
  WORKERS=${WORKERS:-$(nproc)}
else
  DEMO_DIR=${DEMO_DIR:-.demo}
  ROOT=$DEMO_DIR/datasets
  OUT=$DEMO_DIR/shards
  VOCAB=${VOCAB:-1000}
  WORKERS=${WORKERS:-2}
  if [ ! -d "$ROOT" ]; then
    "$BIN/babylm-prep" demo-data --out "$DEMO_DIR" ${DEMO_DATA_ARGS:-}
  fi
fi
echo "raw data: $ROOT -> shards: $OUT"
mkdir -p "$OUT"
if [ ! -f "$OUT/tokenizer_vis2024/tokenizer.json" ]; then
  "$BIN/babylm-prep" tokenizer --corpus vis2024 --root "$ROOT" --out "$OUT/tokenizer_vis2024" --vocab-size "$VOCAB"
fi
"$BIN/babylm-prep" text --corpus vis2024 --root "$ROOT" --tokenizer "$OUT/tokenizer_vis2024" \
  --out "$OUT/text_vis2024" --workers "$WORKERS"
for split in training validation; do
  "$BIN/babylm-prep" cc3m --root "$ROOT" --split "$split" --out "$OUT/cc3m_$split" --workers "$WORKERS"
done
"$BIN/babylm-prep" localnarr --root "$ROOT" --out "$OUT/localnarr" --workers "$WORKERS"
echo
for d in text_vis2024 cc3m_training cc3m_validation localnarr; do
  "$BIN/babylm-prep" inspect "$OUT/$d"
  echo
done
