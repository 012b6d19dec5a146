"""Task presets and SEVIR constants (importable without torch).

* ``sevir``: 13 context + 12 target frames at 5 min, windows every 12 frames (3 per 49-frame event);
* ``sevirlr``: 7 + 6 frames at 10 min, windows every 6 frames (3 per 25-frame event).

A SEVIR patch covers :data:`SEVIR_DOMAIN_M` (384 km) on a side, whatever its pixel count (384² at
1 km for SEVIR VIL, 128² at 3 km for SEVIR-LR).
"""

from __future__ import annotations

from dataclasses import dataclass

from .registry import lookup

__all__ = ["MISSING", "SEVIR_THRESHOLDS", "VIL_LEVELS", "SEVIR_DOMAIN_M", "Task", "TASKS", "Grid", "get_task"]

#: Byte value marking missing data.
MISSING = 255
#: The standard SEVIR CSI thresholds in bytes (compared with ``>=``).
SEVIR_THRESHOLDS = (16, 74, 133, 160, 181, 219)
#: Colour-map levels of the SEVIR VIL palette (bytes).
VIL_LEVELS = (0, 16, 31, 59, 74, 100, 133, 160, 181, 219, 255)
#: Side of a SEVIR patch in metres.
SEVIR_DOMAIN_M = 384_000.0


@dataclass(frozen=True)
class Task:
    """A forecasting task: context and target lengths, window stride, frame interval."""

    name: str
    in_len: int
    out_len: int
    stride: int
    frame_minutes: int
    frame_pixels: int = 384

    @property
    def seq_len(self) -> int:
        """Frames per window (context + target)."""
        return self.in_len + self.out_len



TASKS = {"sevir": Task("sevir", 13, 12, 12, 5, 384), "sevirlr": Task("sevirlr", 7, 6, 6, 10, 128)}


@dataclass(frozen=True)
class Grid:
    """Where a nowcaster's frames live: time step, pixel size and frame shape.

    Attributes
    ----------
    frame_minutes : int
        Minutes between frames.
    pixel_m : float
        Pixel size in metres.
    shape : tuple of int
        ``(H, W)`` pixels.
    """

    frame_minutes: int
    pixel_m: float
    shape: tuple

    @property
    def domain_m(self) -> tuple:
        """``(height, width)`` of the domain in metres."""
        return (self.shape[0] * self.pixel_m, self.shape[1] * self.pixel_m)

    @classmethod
    def sevir(cls, task: Task, pixels: int | None = None) -> "Grid":
        """A SEVIR patch (384 km on a side) of ``pixels`` (default: the task's) at the task's time step."""
        n = int(pixels or task.frame_pixels)
        return cls(task.frame_minutes, SEVIR_DOMAIN_M / n, (n, n))


def get_task(name: str) -> Task:
    """Look up a task preset by name (``sevir`` or ``sevirlr``).

    Raises
    ------
    ValueError
        For an unknown name.
    """
    return lookup(TASKS, "task", name)
