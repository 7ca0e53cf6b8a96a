#!/bin/bash
# One-node babylm-train under Slurm, or directly on a workstation. torchrun --standalone runs one
# rank per GPU (one CPU rank without GPUs); stopping, resuming and requeueing work as in
# train.sbatch (see there).
#
#   sbatch scripts/slurm/train_one_node.sh RUN_DIR MODEL [babylm-train options...]
#   sbatch scripts/slurm/train_one_node.sh /scratch/runs/opt opt --setting opt125m_s1 \
#       --data shards/babylm_10M --tokenizer tokenizers/babylm-10M
#
# The defaults ask for a GPU, 10 CPUs and 64 GB. A node without GPUs, or a smaller one, needs
# these overrides on the sbatch line (as in README's Slurm section):
#   sbatch --gpus=0 --cpus-per-task=2 --mem=0 scripts/slurm/train_one_node.sh RUN_DIR MODEL ...
# Submit from the repository (its .venv is used; BABYLM_VENV=DIR names another one).
#
# Workstation (no Slurm): `bash scripts/slurm/train_one_node.sh RUN_DIR MODEL ...`; a SIGUSR1 or
# SIGTERM to this script (kill -USR1 PID) saves a checkpoint and stops; the same command resumes.
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
# Under sbatch $0 is Slurm's copy of this file, so the usage names the repository's path.
USAGE="usage: sbatch [no GPU / small node: --gpus=0 --cpus-per-task=C --mem=0] \
scripts/slurm/train_one_node.sh RUN_DIR MODEL [babylm-train options...]
   or: bash scripts/slurm/train_one_node.sh RUN_DIR MODEL [babylm-train options...]"
if [ $# -lt 2 ]; then
    echo "error: RUN_DIR and MODEL are required" >&2
    echo "$USAGE" >&2
    exit 2
fi
RUN_DIR=$1
MODEL=$2
shift 2
# Fail here, with the reason in the job log, rather than in every rank after start-up.
if ! mkdir -p "$RUN_DIR" 2>/dev/null || ! touch "$RUN_DIR/.write-test" 2>/dev/null; then
    echo "error: RUN_DIR $RUN_DIR is not writable; nothing started, not requeueing" >&2
    exit 2
fi
rm -f "$RUN_DIR/.write-test"

VENV=${BABYLM_VENV:-$PWD/.venv}
if [ ! -x "$VENV/bin/torchrun" ]; then
    echo "error: no $VENV/bin/torchrun; run from the repository after \`make install\`, or set BABYLM_VENV" >&2
    exit 2
fi
NGPUS=${NGPUS:-$("$VENV/bin/python" -c "import torch; print(max(1, torch.cuda.device_count()))")}
WORKERS=${WORKERS:-$(( (${SLURM_CPUS_PER_TASK:-$(nproc)} - NGPUS) / NGPUS ))}
[ "$WORKERS" -ge 1 ] || WORKERS=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

# The torchrun agent runs with USR1 ignored; this wrapper passes a USR1 on to the training ranks
# (the agent's children, in their own session), first leaving BABYLM_STOP_FILE for ranks that have
# not installed their handler yet. See train.sbatch.
FORWARD_USR1='stop=$(mktemp -u "${TMPDIR:-/tmp}/babylm-stop.XXXXXX")
export BABYLM_STOP_FILE=$stop
forward() { : > "$stop"; [ -z "${agent:-}" ] || pkill -USR1 -P "$agent"; }
trap forward USR1
(trap "" USR1; exec "$@") & agent=$!
while kill -0 "$agent" 2>/dev/null; do wait "$agent"; done
wait "$agent"; status=$?
rm -f "$stop"
exit "$status"'
launch=(bash -c "$FORWARD_USR1" _)
if [ -n "${SLURM_JOB_ID:-}" ]; then
    launch=(srun --ntasks=1 "${launch[@]}")
    echo "$(date -Is) job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}) on $(hostname -s), $NGPUS rank(s)"
else
    echo "$(date -Is) pid $$ on $(hostname -s) (no Slurm), $NGPUS rank(s); kill -USR1 $$ saves and stops"
fi

newest_checkpoint() {
    local found=("$RUN_DIR"/checkpoints/step-*)
    if [ -e "${found[0]}" ]; then echo "${found[-1]}"; fi
}

before=$(newest_checkpoint)
set +e
"${launch[@]}" "$VENV/bin/torchrun" --standalone --nproc-per-node="$NGPUS" \
    -m babylm.train "$MODEL" --out "$RUN_DIR" --workers "$WORKERS" "$@" --resume auto &
child=$!
if [ -z "${SLURM_JOB_ID:-}" ]; then
    # Workstation: nobody signals the wrapper for us, and a USR1/TERM left to its default would
    # kill this script only and leave training running without a checkpoint.
    trap 'kill -USR1 "$child" 2>/dev/null' USR1 TERM
fi
# wait returns early when a trapped signal arrives; the last wait gives the exit status.
while kill -0 "$child" 2>/dev/null; do wait "$child"; done
wait "$child"
status=$?
set -e

if [ -f "$RUN_DIR/done.json" ]; then
    echo "$(date -Is) training complete: $(cat "$RUN_DIR/done.json")"
elif [ "$status" -eq 0 ] && [ "$(newest_checkpoint)" != "$before" ]; then
    if [ -n "${SLURM_JOB_ID:-}" ]; then
        echo "$(date -Is) stopped with a checkpoint ($(basename "$(newest_checkpoint)")); requeueing"
        scontrol requeue "$SLURM_JOB_ID"
    else
        echo "$(date -Is) stopped with a checkpoint ($(basename "$(newest_checkpoint)")); the same command resumes"
    fi
elif [ "$status" -eq 0 ]; then
    # e.g. `--help`: requeueing would start the same thing again, forever.
    echo "$(date -Is) training exited 0 without finishing or saving a checkpoint; not requeueing" >&2
    exit 1
else
    echo "$(date -Is) training failed (exit $status); not requeueing" >&2
    exit "$status"
fi
