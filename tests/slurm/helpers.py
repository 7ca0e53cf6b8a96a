"""What the Slurm tests run and how they watch it: the README's commands, demo shards, job state.

The command lines here are the ones README's Slurm section shows (test_readme.py checks that they
appear there verbatim); the tests run them with bash, SHARDS, RUN_DIR and JOB in the environment.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

TINY = (
    'TINY="flamingo --size tiny --vision-encoder tiny-random --data $SHARDS/cc3m_training'
    " --data $SHARDS/text_vis2024 --tokenizer $SHARDS/tokenizer_vis2024 --global-batch-size 8"
    ' --seq-len 32 --log-every 1 --max-steps 40"'
)
STEPS = 40
SBATCH_MULTI = (
    "JOB=$(sbatch --parsable --gpus-per-node=0 --cpus-per-task=2 --mem=0 --output=$RUN_DIR.log"
    " scripts/slurm/train.sbatch $RUN_DIR $TINY)"
)
SBATCH_ONE = (
    "JOB=$(sbatch --parsable --gpus=0 --cpus-per-task=2 --mem=0 --output=$RUN_DIR.log"
    " scripts/slurm/train_one_node.sh $RUN_DIR $TINY)"
)
STOP = "scancel --signal=USR1 $JOB"
WORKSTATION = "bash scripts/slurm/train_one_node.sh $RUN_DIR $TINY"
README_LINES = (TINY, SBATCH_MULTI, SBATCH_ONE, STOP, WORKSTATION)


def build_demo_shards(root: Path) -> Path:
    """Small demo shards as scripts/make_shards.sh builds them (only what the tiny run reads)."""
    prep = str(BIN / "babylm-prep")
    raw, out = root / "datasets", root / "shards"
    steps = [
        ["demo-data", "--out", str(root), "--cc3m-rows", "120", "--ln-images", "10", "--text-lines", "100"],
        ["tokenizer", "--corpus", "vis2024", "--root", str(raw), "--out", str(out / "tokenizer_vis2024")]
        + ["--vocab-size", "1000"],
        ["text", "--corpus", "vis2024", "--root", str(raw), "--tokenizer", str(out / "tokenizer_vis2024")]
        + ["--out", str(out / "text_vis2024"), "--workers", "1"],
        ["cc3m", "--root", str(raw), "--split", "training", "--out", str(out / "cc3m_training")]
        + ["--workers", "2"],
    ]
    for args in steps:
        result = subprocess.run([prep, *args], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"babylm-prep {args[0]}: {result.stderr[-2000:]}"
    return out


def environment(shards: Path, run_dir: Path, job: str = "") -> dict[str, str]:
    """What the README's lines expect: SHARDS, RUN_DIR, JOB; the test's venv for the scripts."""
    return {
        **os.environ,
        "SHARDS": str(shards),
        "RUN_DIR": str(run_dir),
        "JOB": job,
        "BABYLM_VENV": str(BIN.parent),
        "BABYLM_CACHE_DIR": str(run_dir.parent / "cache"),
        "MASTER_PORT": str(free_port()),  # train.sbatch's rendezvous port (default 29500)
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shell(lines: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    """Run README lines with bash in the repository, as a user would paste them."""
    script = "set -euo pipefail\n" + "\n".join(lines)
    return subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, **kwargs)


def submit(line: str, env: dict[str, str], *extra: str) -> str:
    """Submit with a README sbatch line (plus extra babylm-train options); the job id."""
    result = shell([TINY, line.replace("$TINY)", "$TINY " + " ".join(extra) + ")"), 'echo "$JOB"'], env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def job_info(job: str) -> dict[str, str]:
    """`scontrol show job` as a dict (JobState, Restarts, ExitCode, ...)."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, check=True)
    return dict(re.findall(r"(\w+)=(\S*)", out.stdout))


ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


def wait_for_end(job: str, timeout: float = 240) -> dict[str, str]:
    """Poll until the job has ended (a requeued job passes through PENDING again)."""
    deadline = time.time() + timeout
    while True:
        info = job_info(job)
        if info["JobState"] in ENDED:
            return info
        assert time.time() < deadline, f"job {job} still {info['JobState']} after {timeout} s"
        time.sleep(0.5)


def metric_steps(run_dir: Path) -> list[int]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.strip()]


def rank_pids(job_env_value: str, key: str) -> list[int]:
    """Training ranks (processes with RANK in their environment) whose `key` variable equals the value."""
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if "babylm.train" not in (p.info["cmdline"] or []):
                continue
            env = p.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "RANK" in env and env.get(key) == job_env_value:
            found.append(p.pid)
    return found


def ignores_usr1(pid: int) -> bool:
    """Whether the process still has SIGUSR1 ignored, i.e. the trainer's handler is not installed."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (10 - 1)))
    return False
