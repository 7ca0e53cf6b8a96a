#!/bin/bash
# One-node babylm-train under Slurm (or directly on a workstation: `bash train_one_node.sh ...`).
# torchrun --standalone runs one rank per GPU; stopping, resuming and requeueing work as in
# train.sbatch (see there).
#
#   sbatch scripts/slurm/train_one_node.sh RUN_DIR MODEL [babylm-train options...]
#   sbatch scripts/slurm/train_one_node.sh /scratch/runs/opt opt --setting opt125m_s1 \
#       --data shards/babylm_10M --tokenizer tokenizers/babylm-10M
#SBATCH --job-name=babylm-train
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --gpus=1
#SBATCH --cpus-per-task=10
#SBATCH --mem=64G
#SBATCH --time=48:00:00
#SBATCH --signal=USR1@180
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=%x-%j.out

set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: sbatch $0 RUN_DIR MODEL [babylm-train options...]" >&2
    exit 2
fi
RUN_DIR=$1
MODEL=$2
shift 2

VENV=${BABYLM_VENV:-$PWD/.venv}
NGPUS=${NGPUS:-$("$VENV/bin/python" -c "import torch; print(max(1, torch.cuda.device_count()))")}
WORKERS=${WORKERS:-$(( (${SLURM_CPUS_PER_TASK:-$(nproc)} - NGPUS) / NGPUS ))}
[ "$WORKERS" -ge 1 ] || WORKERS=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

# The torchrun agent runs with USR1 ignored; this wrapper passes a USR1 on to the training ranks
# (the agent's children, in their own session). See train.sbatch.
FORWARD_USR1='(trap "" USR1; exec "$@") & agent=$!
trap "pkill -USR1 -P $agent" USR1
while :; do wait "$agent"; status=$?; kill -0 "$agent" 2>/dev/null || exit "$status"; done'
launch=(bash -c "$FORWARD_USR1" _)
if [ -n "${SLURM_JOB_ID:-}" ]; then
    launch=(srun --ntasks=1 "${launch[@]}")
fi
set +e
"${launch[@]}" "$VENV/bin/torchrun" --standalone --nproc-per-node="$NGPUS" \
    -m babylm.train "$MODEL" --out "$RUN_DIR" --workers "$WORKERS" "$@" --resume auto
status=$?
set -e

if [ -f "$RUN_DIR/done.json" ]; then
    echo "training complete: $(cat "$RUN_DIR/done.json")"
elif [ "$status" -eq 0 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
    echo "stopped with a checkpoint before the time limit; requeueing"
    scontrol requeue "$SLURM_JOB_ID"
else
    exit "$status"
fi
