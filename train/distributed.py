"""Where a training process sits in a torchrun job: process group, device, quiet ranks, DDP."""

from __future__ import annotations

import inspect
import logging
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class Dist:
    """Where this process sits in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    flag_group: Any = None

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def setup_distributed() -> Dist:
    """Join the torchrun job (gloo on CPU, NCCL on GPU) or run alone without a process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    d = Dist(rank, world, local, device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
        # The per-step stop flag goes over gloo so reading it never waits for the GPU stream.
        d.flag_group = dist.new_group(backend="gloo") if cuda else None
    return d


def quiet(rank: int) -> None:
    """Rank 0 shows the bar; other ranks print nothing but errors."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars would break ours
    if rank != 0:
        warnings.filterwarnings("ignore")
        logging.disable(logging.WARNING)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (for the life of the process)


def wrap_ddp(net: nn.Module, d: Dist) -> nn.Module:
    """DDP over `net` when there are several ranks (only parameters that need gradients)."""
    if d.world == 1:
        return net
    ddp = nn.parallel.DistributedDataParallel
    # No batch-norm statistics here: skip the buffer broadcast every forward would do.
    no_buffer_sync = (
        {"forward_sync_buffers": False}
        if "forward_sync_buffers" in inspect.signature(ddp).parameters
        else {"broadcast_buffers": False}
    )
    device_ids = [d.device.index] if d.device.type == "cuda" else None
    return ddp(net, device_ids=device_ids, gradient_as_bucket_view=True, **no_buffer_sync)
