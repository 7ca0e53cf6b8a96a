#!/usr/bin/env bash
# `make test-slurm`: a throw-away one-node Slurm cluster for the tests in tests/slurm/, then
# COMMAND... with SLURM_CONF pointing at it.
#
#   tests/slurm/cluster.sh .venv/bin/python -m pytest -m slurm tests/slurm
#
# Installs slurm-wlm and munge with apt-get when they are missing (needs root, as CI has), writes
# a one-node slurm.conf in a temporary folder, starts munged, slurmctld and slurmd from there (own
# ports, socket, state and logs, so a Slurm already on the machine is left alone), and on exit,
# also after a failed test or Ctrl-C, cancels the jobs and stops exactly the daemons it started,
# by pid. The ends of the daemon logs are printed when COMMAND fails.
set -euo pipefail
if [ $# -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

missing=()
command -v slurmctld >/dev/null || missing+=(slurm-wlm)
command -v munged >/dev/null || missing+=(munge)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "$0: ${missing[*]} missing; install them (apt-get install ${missing[*]}) or run as root" >&2
        exit 1
    fi
    echo "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# slurmd runs jobs as their owner and the daemons here run as whoever we are; Slurm needs root to
# switch users, so a non-root run only works for that user's own jobs, which is all the tests do.
USER_NAME=$(id -un)
# The node's name is this machine's short host name: the scripts pass it to torchrun as the
# rendezvous host, so it has to resolve (localhost where it does not), and slurmd -N says which
# node of slurm.conf it is.
NODE=$(hostname -s)
getent hosts "$NODE" >/dev/null || NODE=localhost

DIR=$(mktemp -d "${TMPDIR:-/tmp}/babylm-slurm.XXXXXX")
PIDS=()
stop_cluster() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "${SLURM_CONF:-}" ] && [ ${#PIDS[@]} -ge 2 ]; then
        # Jobs first: their slurmstepd processes are not our children, and a requeued job would
        # otherwise outlive the test.
        scancel --user="$USER_NAME" 2>/dev/null || true
        for _ in $(seq 50); do
            [ -z "$(squeue -h -t RUNNING,COMPLETING -o %i 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
    if [ "$status" -ne 0 ]; then
        # (munged in the foreground logs to stderr)
        for log in "$DIR/slurmctld.log" "$DIR/slurmd.log" "$DIR/munged.stderr"; do
            if [ -f "$log" ]; then echo "== $log (last lines)"; tail -n 15 "$log"; fi
        done
    fi
    # Newest first: slurmd, slurmctld, munged.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill "${PIDS[i]}" 2>/dev/null || true
        wait "${PIDS[i]}" 2>/dev/null || true
    done
    rm -rf "$DIR"
    exit "$status"
}
trap stop_cluster EXIT
trap 'exit 130' INT TERM

# A free TCP port each for slurmctld and slurmd.
read -r CTLD_PORT SLURMD_PORT < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)

mkdir -p "$DIR/state" "$DIR/spool"
# munged refuses a key that others can read; a fresh one keeps the machine's own key out of it.
head -c 1024 /dev/urandom > "$DIR/munge.key"
chmod 600 "$DIR/munge.key"
munged --foreground --force --socket="$DIR/munge.sock" --key-file="$DIR/munge.key" \
    --pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log" --seed-file="$DIR/munged.seed" \
    >"$DIR/munged.stderr" 2>&1 &
PIDS+=($!)

cat > "$DIR/slurm.conf" <<EOF
ClusterName=babylm-test
SlurmctldHost=$NODE
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=$USER_NAME
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket=$DIR/munge.sock,cred_expire=5
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
MailProg=/bin/true
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups and no accounting: what a container without systemd can run.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# Schedule as soon as something changes (a requeued job's hold ending included), not once a minute.
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
# Finished jobs stay visible to scontrol for 5 minutes, enough for the tests to read them.
MinJobAge=300
KillWait=5
ReturnToService=2
# More CPUs than the machine has, so that two small jobs run side by side; config_overrides makes
# slurmd take the node description from here instead of draining the node for it.
SlurmdParameters=config_overrides
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=8 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$DIR/slurm.conf

for _ in $(seq 50); do [ -S "$DIR/munge.sock" ] && break; sleep 0.1; done
slurmctld -D -f "$SLURM_CONF" >"$DIR/slurmctld.stderr" 2>&1 &
PIDS+=($!)
slurmd -D -N "$NODE" -f "$SLURM_CONF" >"$DIR/slurmd.stderr" 2>&1 &
PIDS+=($!)

# Ready when the node is idle (slurmd registered with slurmctld).
for _ in $(seq 150); do
    state=$(sinfo -h -n "$NODE" -o %t 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.2
done
if [ "$state" != idle ]; then
    echo "$0: the test cluster did not come up (node state '${state:-none}')" >&2
    exit 1
fi
# tests/slurm/conftest.py runs the `slurm` tests only where this is set: never on a real cluster.
export BABYLM_TEST_SLURM=$DIR
echo "test Slurm up in $DIR: node $NODE, slurmctld port $CTLD_PORT (pids ${PIDS[*]})"
"$@"
