#!/usr/bin/env bash
# GPU check: one short timed Flamingo run and one GIT run at full size (base), on every GPU of
# this machine, printing samples/s, tokens/s and an estimate of model FLOPs utilisation (MFU).
#
# Needs no network: it writes its own shards (random 224-pixel JPEGs with random captions, random
# token chunks), a word-level tokenizer with the original's 32,770 tokens (model vocabulary
# 32,778) and a randomly initialised ViT-B/16-sized vision encoder, all under a temporary folder.
#
#   bash scripts/gpu_check.sh                 # STEPS=60 per model, timed after the first 20
#   STEPS=100 BATCH=128 PEAK_TFLOPS=989 bash scripts/gpu_check.sh
#
# MFU counts 6 x trainable parameters per processed token (forward + backward; GIT's decoder also
# processes 197 image tokens per caption) plus 2 x vision-encoder parameters x 197 patches per
# image (frozen: forward only), against PEAK_TFLOPS per GPU (default 989: H100/H200 dense bf16).
# It leaves out attention-score FLOPs (~10% at these lengths), so it is a slight underestimate.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
STEPS=${STEPS:-60}
BATCH=${BATCH:-128}
PEAK_TFLOPS=${PEAK_TFLOPS:-989}
NGPU=${NGPU:-$("$PY" -c "import torch; print(torch.cuda.device_count())")}
if [ "$NGPU" -lt 1 ]; then
    echo "gpu_check: no CUDA device visible" >&2
    exit 1
fi
WORKERS=${WORKERS:-$(( ($(nproc) - NGPU) / NGPU ))}
[ "$WORKERS" -ge 1 ] || WORKERS=1
WORK=${WORK:-$(mktemp -d /tmp/babylm_gpu_check.XXXXXX)}
trap 'rm -rf "$WORK"' EXIT
export OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false

echo "== generating data in $WORK ($NGPU GPU(s), $WORKERS loader workers per rank)"
"$PY" - "$WORK" "$(( BATCH * (STEPS + 2) ))" <<'EOF'
import io
import multiprocessing as mp
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast, ViTConfig, ViTModel

from babylm.shards import Manifest, RollingWriter, write_manifest
from babylm.train.models import make_tiny_vit

root, n_images = Path(sys.argv[1]), int(sys.argv[2])
WORDS = [f"w{i}" for i in range(4, 32768)]

# A word-level tokenizer shaped like the original's: 32,768 entries (specials first), </s>
# appended, then <image> (32768) and <PERSON> (32769) added.
vocab = {t: i for i, t in enumerate(["<pad>", "</s>", "<unk>", "<mask>", *WORDS])}
tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
fast = PreTrainedTokenizerFast(
    tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", mask_token="<mask>",
    additional_special_tokens=["<image>"],
)
fast.add_tokens(["<PERSON>"])
fast.save_pretrained(root / "tokenizer")
assert len(fast) == 32770 and fast.convert_tokens_to_ids("<image>") == 32768

# A ViT-B/16 (hidden 768, 12 layers, 12 heads, MLP 3072, 224 px) with random weights, saved with
# a DINO-like image processor.
make_tiny_vit(root / "vit", image_size=224, patch_size=16, hidden_size=768, num_layers=12, num_heads=12)
ViTModel(ViTConfig(image_size=224, patch_size=16), add_pooling_layer=False).save_pretrained(root / "vit")


def sample(i: int) -> dict:
    rng = np.random.default_rng(i)
    # A smooth random image (gradients compress like photos, unlike white noise).
    y, x = np.mgrid[0:224, 0:224] / 224.0
    img = np.stack([(rng.random() * x + rng.random() * y + rng.random()) % 1.0 for _ in range(3)], -1)
    buf = io.BytesIO()
    Image.fromarray((img * 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    caption = " ".join(rng.choice(WORDS, size=int(rng.integers(6, 16))))
    return {"__key__": f"s{i:07d}", "jpg": buf.getvalue(), "txt": caption, "json": {"i": i}}


with mp.Pool() as pool, RollingWriter(root / "images", "tar", max_samples=1000) as w:
    for s in pool.imap(sample, range(n_images), chunksize=64):
        w.write(s)
write_manifest(root / "images", Manifest(kind="image_text", shards=w.entries, name="images"))

rng = np.random.default_rng(0)
with RollingWriter(root / "text", "arrow", max_samples=20000, vocab_size=len(fast)) as w:
    written = 0
    while written < n_images * 130:  # one 128-token chunk per caption sample, and some
        row = rng.integers(4, 32768, size=int(rng.integers(10, 200)))
        w.write(row)
        written += len(row)
write_manifest(root / "text", Manifest(kind="tokens", shards=w.entries, name="text"))
EOF

for MODEL in flamingo git; do
    echo "== $MODEL: $STEPS steps, global batch $BATCH per stream"
    "$PY" -m torch.distributed.run --standalone --nproc-per-node="$NGPU" -m babylm.train "$MODEL" \
        --data "$WORK/images" --data "$WORK/text" --tokenizer "$WORK/tokenizer" \
        --vision-encoder "$WORK/vit" --out "$WORK/run_$MODEL" --size tiny \
        --global-batch-size "$BATCH" --max-steps "$STEPS" --warmup-steps 10 --log-every 10 \
        --save-every 0 --save-epochs "" --workers "$WORKERS" 2>&1 | tr '\r' '\n' | tail -n 2
    "$PY" - "$WORK/run_$MODEL" "$MODEL" "$NGPU" "$PEAK_TFLOPS" <<'EOF'
import json
import sys
from pathlib import Path

run, model, ngpu, peak = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]) * 1e12
info = json.loads((run / "run.json").read_text())
recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
timed = [r for r in recs if r["step"] > 20] or recs[1:] or recs
samples = sum(r["samples_per_s"] for r in timed) / len(timed)
tokens = sum(r["tokens_per_s"] for r in timed) / len(timed)
images = samples / 2  # half of the samples are image-caption pairs, half text chunks
trainable, frozen = info["parameters"]["trainable"], info["parameters"]["frozen"]
patches = 197
decoder_tokens = tokens + (patches * images if model == "git" else 0)
flops = 6 * trainable * decoder_tokens + 2 * frozen * patches * images
print(
    f"{model}: {samples:,.0f} samples/s ({images:,.0f} image-caption pairs/s + {images:,.0f} text chunks/s), "
    f"{tokens:,.0f} target tokens/s, {trainable / 1e6:.0f}M trainable + {frozen / 1e6:.0f}M frozen parameters, "
    f"~{flops / 1e12:.0f} TFLOP/s = MFU {flops / (ngpu * peak):.1%} of {ngpu} x {peak / 1e12:.0f} TFLOP/s "
    f"(final loss {recs[-1]['loss']:.3f})"
)
EOF
done
