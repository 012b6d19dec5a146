"""Process-group facts for training under ``torchrun`` (one process otherwise)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

__all__ = ["Dist"]


@dataclass
class Dist:
    """Process group facts (a single process when not launched by ``torchrun``)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, device_type: str) -> "Dist":
        """Join the process group ``torchrun`` describes in the environment, if any."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        """Rank 0."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process."""
        if self.world > 1:
            torch.distributed.barrier()

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank."""
        if self.world == 1:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def average_gradients(self, params: list) -> None:
        """Average ``.grad`` of ``params`` over processes (missing gradients count as zero)."""
        if self.world == 1 or not params:
            return
        from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = _flatten_dense_tensors(grads)
        torch.distributed.all_reduce(flat)
        flat /= self.world
        for p, g in zip(params, _unflatten_dense_tensors(flat, grads)):
            p.grad = g.clone() if p.grad is None else p.grad.copy_(g)
