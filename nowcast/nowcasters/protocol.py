"""The ``Nowcaster`` protocol: what every forecaster — the diffusion model with any sampler, every
baseline — offers to the forecast and evaluation services."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ..foundation.tasks import Grid, Task

__all__ = ["Nowcaster"]


@runtime_checkable
class Nowcaster(Protocol):
    """A forecaster of VIL-byte sequences.

    Attributes
    ----------
    name : str
        What it is called in reports (the spec it was resolved from).
    task : nowcast.foundation.tasks.Task
        Context and target lengths and the frame step it forecasts at.
    grid : nowcast.foundation.tasks.Grid
        Time step, pixel size and frame shape its inputs must have.
    """

    name: str
    task: Task
    grid: Grid

    def predict(self, context: np.ndarray, n_lead: int, members: int = 1, seed: int = 0) -> tuple:
        """``(B, T, H, W)`` context bytes (255 = missing) → ``((B, M, n_lead, H, W) bytes, NFE)``.

        Member ``m`` uses seed ``seed + m``; deterministic methods return one member and NFE 0.
        """
