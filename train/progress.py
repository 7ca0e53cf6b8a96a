"""The trainer's progress display on rank 0: tqdm's bar on a terminal; in a log file (Slurm,
`> run.log 2>&1`) one plain line per metrics record, at most one every $BABYLM_PROGRESS_SECONDS
seconds (default 30), and always the last one:

    flamingo: 120/400 step (30%), 4.1 step/s, elapsed 0:00:29, ETA 0:01:08 | loss 5.123 lr 1.00e-04 41 samples/s words 1.2M
"""

from __future__ import annotations

from typing import Any, TextIO

from babylm.shards.progress import LineProgress, format_count, progress


def record_summary(rec: dict[str, Any]) -> str:
    """The numbers of a metrics record worth a glance: loss, lr, throughput, words seen."""
    text = f"loss {rec['loss']:.3f} lr {rec['lr']:.2e} {rec['samples_per_s']:.0f} samples/s"
    if rec.get("words") is not None:
        text += f" words {format_count(rec['words'])}"
    return text


class TrainProgress:
    """Steps of one run: `step()` after each optimizer step, `record(rec)` at each metrics record."""

    def __init__(self, rank: int, total: int, step: int, name: str, stream: TextIO | None = None):
        self.display = progress(
            total, name, "step", initial=step, enabled=rank == 0, stream=stream, auto=False,
            dynamic_ncols=True,
        )  # fmt: skip
        self.lines = isinstance(self.display, LineProgress)

    def step(self) -> None:
        self.display.update(1)

    def record(self, rec: dict[str, Any], final: bool = False) -> None:
        """Show `rec`; a line is printed when due, or when `final` (the run's last record)."""
        self.display.set_postfix_str(record_summary(rec), refresh=False)
        if self.lines:
            self.display.refresh(force=final)

    def close(self) -> None:
        self.display.close()


def quiet_library_bars(stream: TextIO | None = None) -> None:
    """Outside a terminal, also silence huggingface_hub's download bars (a model named by its Hub
    id), which would put carriage returns in the log; transformers' own are off on every rank
    (`distributed.quiet`)."""
    import sys

    from babylm.shards.progress import is_terminal

    if not is_terminal(stream if stream is not None else sys.stderr):
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
