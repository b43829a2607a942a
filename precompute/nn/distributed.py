"""Several processes under `torchrun`: which block of the images this process embeds, and the
process group through which the processes wait for one another and average gradients.

`torchrun --nproc_per_node N -m precompute.cli all …` (or across nodes with `--nnodes`) starts N
copies of the command; each reads its place from the RANK, WORLD_SIZE and LOCAL_RANK variables
torchrun sets. Without torchrun the process is the single shard.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass

# Ranks wait for the main one while it runs the stages that are not sharded (projections of
# millions of points take tens of minutes), so the collective timeout is generous.
WAIT_LIMIT = dt.timedelta(hours=12)


@dataclass(frozen=True)
class Shard:
    """This process's place among `world` processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0  # the GPU of this process on its node

    @property
    def sharded(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def name(self) -> str:
        """`RRRRR-of-WWWWW`, the part of a store file this process writes."""
        return f"{self.rank:05d}-of-{self.world:05d}"

    def rows(self, total: int) -> range:
        """This process's contiguous block of `total` rows; block sizes differ by at most one."""
        return range(total * self.rank // self.world, total * (self.rank + 1) // self.world)


SINGLE = Shard()


def current_shard() -> Shard:
    """This process's place as torchrun set it in the environment, else SINGLE."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    return Shard(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


@contextlib.contextmanager
def process_group(shard: Shard) -> Iterator[None]:
    """Join torchrun's processes for the duration (nothing to do for a single process).

    Each process uses the GPU of its local rank; gradients of GPU replicas pass through NCCL,
    everything else (barriers, CPU training) through gloo. NCCL refuses two processes on one
    GPU, so where a node runs more processes than it has GPUs, GPU tensors go through gloo
    too."""
    if not shard.sharded:
        yield
        return
    import torch
    import torch.distributed as dist

    backend = "gloo"
    if torch.cuda.is_available():
        gpus = torch.cuda.device_count()
        torch.cuda.set_device(shard.local_rank % gpus)
        if int(os.environ.get("LOCAL_WORLD_SIZE", "1")) <= gpus:
            backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(backend, timeout=WAIT_LIMIT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def wait_for_all(shard: Shard) -> None:
    """Block until every process reaches this point."""
    if shard.sharded:
        import torch.distributed as dist

        dist.barrier()
