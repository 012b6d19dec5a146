"""What every baseline shares: a task and grid, and ``predict`` returning the forecast and its NFE (0).

A baseline is a :class:`~nowcast.nowcasters.Nowcaster`: ``predict(context, n_lead, members, seed)``
takes ``(B, T, H, W)`` VIL bytes (255 = missing) ordered oldest → newest and returns
``((B, M, n_lead, H, W) bytes, 0)``. The baselines here are deterministic and return a single
member (``M = 1``) whatever ``members`` is, so an ensemble score of them is labelled as the
deterministic score it is (CRPS → MAE).
"""

from __future__ import annotations

import numpy as np

from ..foundation.tasks import Grid, Task, get_task

__all__ = ["Baseline", "check_context"]


def check_context(context) -> np.ndarray:
    """The context as ``(B, T, H, W)`` uint8 bytes.

    Raises
    ------
    ValueError
        For another rank or dtype.
    """
    ctx = np.asarray(context)
    if ctx.ndim != 4:
        raise ValueError(f"context must be (batch, time, y, x) VIL bytes, got shape {ctx.shape}")
    if ctx.dtype != np.uint8:
        raise ValueError(f"context must be VIL bytes (uint8), got {ctx.dtype}")
    return ctx


class Baseline:
    """A non-learned nowcaster for a task (default ``sevirlr``) on a grid (default: the task's SEVIR grid).

    Subclasses set ``name`` and implement :meth:`forecast`.
    """

    name = "baseline"
    nfe = 0

    def __init__(self, task: str | Task = "sevirlr", grid: Grid | None = None):
        self.task = get_task(task) if isinstance(task, str) else task
        self.grid = grid or Grid.sevir(self.task)

    def forecast(self, context, n_lead: int) -> np.ndarray:
        """``(B, 1, n_lead, H, W)`` forecast bytes of ``(B, T, H, W)`` context bytes."""
        raise NotImplementedError

    def predict(self, context, n_lead: int, members: int = 1, seed: int = 0, progress: bool = False) -> tuple:
        """``(forecast, nfe)``: the deterministic forecast as one member, and 0 model evaluations
        (``members``, ``seed`` and ``progress`` are accepted for the protocol and have no effect)."""
        return self.forecast(context, n_lead), 0
