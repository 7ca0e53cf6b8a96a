"""Run records: `RUN_DIR/metrics.jsonl`, optional TensorBoard events, and the loss/lr plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from babylm.shards import atomic_write_bytes
from babylm.shards.version import package_version
from babylm.train.errors import MissingInput

METRICS_NAME = "metrics.jsonl"


def require_tensorboard():
    """The SummaryWriter class, or a clear error when the tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:  # torch raises ImportError when the `tensorboard` package is absent
        raise RuntimeError(
            "--tensorboard needs the 'tensorboard' package, which is not installed; "
            "install it (pip install tensorboard) or drop --tensorboard (metrics.jsonl has the same data)"
        ) from e
    return SummaryWriter


class MetricsWriter:
    """Appends one JSON object per logged step; rank 0 only."""

    def __init__(
        self,
        run_dir: str | Path,
        tensorboard: bool = False,
        resume_step: int | None = None,
        tracker: Any = None,
    ):
        """`tracker`: also given every record (`log`) and closed with this writer (W&B)."""
        self.path = Path(run_dir) / METRICS_NAME
        if resume_step is not None:
            truncate_after(self.path, resume_step)
        self._file = open(self.path, "a")
        self._tb = None
        if tensorboard:
            self._tb = require_tensorboard()(log_dir=str(Path(run_dir) / "tb"))
        self._tracker = tracker

    def log(self, record: dict[str, Any]) -> None:
        """Write `record` (must hold "step"); numbers go to TensorBoard under their key."""
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(k, v, record["step"])
        if self._tracker is not None:
            self._tracker.log(record)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._tracker is not None:
            self._tracker.close()


def truncate_after(path: Path, step: int) -> None:
    """Drop records past `step`: a resumed run logs those steps again."""
    if not path.exists():
        return
    kept = [line for line in read_metrics(path) if line.get("step", 0) <= step]
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in kept).encode())


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Records of a metrics.jsonl (a torn last line from a kill is ignored)."""
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def plot(run_dir: str | Path, out_png: str | Path | None = None) -> Path:
    """Draw the loss curves (total and per stream) and the learning rate against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    records = read_metrics(run_dir / METRICS_NAME) if (run_dir / METRICS_NAME).exists() else []
    if not records:
        raise MissingInput(
            f"{run_dir / METRICS_NAME}: no metrics to plot; pass the --out folder of a babylm-train run"
        )
    out_png = Path(out_png) if out_png else run_dir / "loss.png"
    steps = [r["step"] for r in records]
    fig, (ax_loss, ax_lr) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=(3, 1))
    for key, label in (("loss", "total (weighted)"), ("loss_caption", "caption"), ("loss_text", "text")):
        ys = [r.get(key) for r in records]
        if any(y is not None and math.isfinite(y) for y in ys):
            ax_loss.plot(steps, [math.nan if y is None else y for y in ys], label=label)
    ax_loss.set_ylabel("loss (nats / token)")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    ax_lr.plot(steps, [r.get("lr", math.nan) for r in records], color="tab:gray")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("optimizer step")
    ax_lr.grid(alpha=0.3)
    ax_loss.set_title(run_dir.name)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


def interval_record(
    loss_acc: torch.Tensor, count_acc: torch.Tensor, weights: list[float], streams: list[str], elapsed: float
) -> dict[str, float]:
    """Mean losses per stream (summed losses / global target counts), their weighted total,
    tokens/s and the skipped-sample count, from the all-reduced accumulators."""
    n = len(streams)
    sums, tokens = loss_acc[:n].tolist(), count_acc.tolist()
    means = [s / max(c, 1) for s, c in zip(sums, tokens, strict=True)]
    rec = {"loss": sum(w * m for w, m in zip(weights, means, strict=True))}
    rec.update({f"loss_{s}": m for s, m in zip(streams, means, strict=True)})
    rec["tokens_per_s"] = sum(tokens) / elapsed
    rec["skipped"] = int(loss_acc[n].item())
    return rec


def write_run_info(run_dir: Path, model: torch.nn.Module, **facts: Any) -> None:
    """RUN_DIR/run.json: what this start of the run resolved to (sizes, topology, batches)."""
    from babylm.train.models import count_parameters

    info = {"parameters": count_parameters(model), **facts, "torch": torch.__version__}
    info["babylm_pipeline"] = package_version()
    atomic_write_bytes(run_dir / "run.json", (json.dumps(info, indent=2) + "\n").encode())
