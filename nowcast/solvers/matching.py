"""Endpoint teacher matching, the solver core's part: batches of initial states and targets, the
endpoint loss of a rollout, and its evaluation.

The student (a learned :class:`~.core.Solver`) is rolled out for K steps from a batch of initial
states and its endpoint is compared with a target — a teacher's endpoint from the same noise or,
for nowcasting, the observed future. :func:`matching_loss` is one training step's loss;
:func:`nowcast.training.matching.train_endpoint_matching` trains with it on the one training loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch

from .core import Solver
from .rollout import rollout

__all__ = ["Batch", "TeacherPool", "FreshTeacher", "mse_loss", "matching_loss", "evaluate_endpoint"]


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error, shape ``(B,)``."""
    return (pred - target).pow(2).flatten(1).mean(1)


@dataclass
class Batch:
    """Initial states at σ_max, the targets their rollouts should reach, and conditioning."""

    x: torch.Tensor
    target: torch.Tensor
    cond: Any = None


class TeacherPool:
    """Batches from precomputed (initial state, teacher endpoint) pairs.

    Each pass visits every pair once in a new random order, so within a pass every batch holds
    noise the student has not seen; a new pass starts when the pool is used up.
    """

    def __init__(self, x: torch.Tensor, target: torch.Tensor, cond: Any = None):
        if len(x) != len(target):
            raise ValueError("x and target must have the same length")
        self.x, self.target, self.cond = x, target, cond
        self._order: Optional[torch.Tensor] = None
        self._pos = 0

    def __len__(self) -> int:
        return len(self.x)

    def state_dict(self) -> dict:
        """Position in the current pass (saved with the training state, so a resumed run draws the
        same batches as an uninterrupted one)."""
        return {"order": self._order, "pos": self._pos}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (a state of a pool of another size starts a new pass instead)."""
        if state["order"] is not None and len(state["order"]) == len(self.x):
            self._order, self._pos = state["order"], int(state["pos"])

    def __call__(self, batch_size: int, generator: torch.Generator) -> Batch:
        """Next ``batch_size`` pairs."""
        if self._order is None or self._pos + batch_size > len(self.x):
            self._order = torch.randperm(len(self.x), generator=generator)
            self._pos = 0
        idx = self._order[self._pos:self._pos + batch_size]
        self._pos += batch_size
        cond = self.cond[idx] if torch.is_tensor(self.cond) else self.cond
        return Batch(self.x[idx], self.target[idx], cond)


class FreshTeacher:
    """Batches of new noise every call, with the teacher's endpoints computed on the fly.

    Parameters
    ----------
    teacher : callable
        ``teacher(x_init, cond) -> endpoint`` (e.g. a many-step base-solver rollout or an
        analytic test bed's accurate integrator); run without gradients.
    shape : tuple
        Per-sample state shape.
    sigma_max : float
        Initial noise level: ``x_init = sigma_max · ε``.
    cond : callable, optional
        ``cond(batch_size, generator)`` drawing conditioning for the batch.
    """

    def __init__(self, teacher: Callable[[torch.Tensor, Any], torch.Tensor], shape: tuple,
                 sigma_max: float, cond: Optional[Callable[[int, torch.Generator], Any]] = None):
        self.teacher, self.shape, self.sigma_max, self.cond = teacher, tuple(shape), sigma_max, cond

    @torch.no_grad()
    def __call__(self, batch_size: int, generator: torch.Generator) -> Batch:
        """``batch_size`` fresh (noise, teacher endpoint) pairs."""
        x = torch.randn((batch_size,) + self.shape, generator=generator) * self.sigma_max
        cond = self.cond(batch_size, generator) if self.cond is not None else None
        return Batch(x, self.teacher(x, cond).to(x.dtype), cond)


@torch.no_grad()
def evaluate_endpoint(student: Solver, denoiser: Callable, sigmas: torch.Tensor, batch: Batch,
                      loss: Callable | None = None, afs: bool = False, chunk: int = 256,
                      blocks: int | Sequence[int] | None = None) -> float:
    """Mean endpoint loss (default :func:`mse_loss`) of a solver over a batch (in chunks, no gradients);
    ``blocks``: the depth schedule of a length-adaptive denoiser (see :func:`~.rollout.rollout`)."""
    fn = loss or mse_loss
    total, count = 0.0, 0
    for i in range(0, len(batch.x), chunk):
        cond = batch.cond[i:i + chunk] if torch.is_tensor(batch.cond) else batch.cond
        out = rollout(denoiser, batch.x[i:i + chunk], sigmas, student, cond=cond, afs=afs, blocks=blocks).x
        total += float(fn(out, batch.target[i:i + chunk]).sum())
        count += len(out)
    return total / count


def matching_loss(student: Solver, denoiser: Callable, sigmas: torch.Tensor, batch: Batch,
                  loss: Callable | None = None, afs: bool = False, checkpoint: bool = False,
                  blocks: int | Sequence[int] | None = None) -> torch.Tensor:
    """The mean endpoint loss of the student's rollout from ``batch.x`` against ``batch.target``
    (with gradients; ``checkpoint`` recomputes each step in the backward pass; ``blocks``: the depth
    schedule of a length-adaptive denoiser)."""
    out = rollout(denoiser, batch.x, sigmas, student, cond=batch.cond, afs=afs, checkpoint=checkpoint,
                  blocks=blocks).x
    return (loss or mse_loss)(out, batch.target).mean()
