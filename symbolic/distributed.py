"""One process or many: the same training script under ``python`` and under ``torchrun``.

``torchrun --nproc_per_node=K`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; then each
process joins a process group (NCCL on CUDA, gloo on CPU) and the model is wrapped in
DistributedDataParallel. Without them this is a single process and every helper is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Context:
    """Where this process stands: ``rank`` of ``world_size`` processes, on ``device``."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """True on the process that logs, evaluates and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()


def setup(device: str | None = None) -> Context:
    """Join the process group when launched by torchrun; pick the device (CUDA when present)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo",
                                             rank=rank, world_size=world_size)
    return Context(rank=rank, world_size=world_size, device=dev)


def teardown(ctx: Context) -> None:
    """Leave the process group (if any)."""
    if ctx.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
