"""Own checkpoints: tensors plus the configuration that built them, written atomically.

A checkpoint is a ``torch.save`` dict of tensors, numbers, strings and nested dicts of those (no
pickled classes), so it is read back with ``torch.load(weights_only=True)`` — loading never runs
code from the file. Training checkpoints live in a run directory as
``checkpoints/step-NNNNNNN.pt``; :func:`latest_checkpoint` finds the one to resume from.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from .foundation.files import atomic_save

__all__ = ["save_checkpoint", "load_checkpoint", "checkpoint_path", "latest_checkpoint", "prune_checkpoints"]

_STEP = re.compile(r"^step-(\d+)\.pt$")


def save_checkpoint(payload: dict, path: str | os.PathLike) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file in the same directory, then rename)."""
    return atomic_save(payload, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint without executing code from it.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the file is not a checkpoint of plain tensors and containers (e.g. a foreign pickle).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError/RuntimeError for foreign or broken files
        raise ValueError(f"{path} is not a nowcast checkpoint (tensors and plain containers only): "
                         f"{str(e).splitlines()[0]}") from None


def checkpoint_path(run_dir: str | os.PathLike, step: int) -> Path:
    """``run_dir/checkpoints/step-NNNNNNN.pt``."""
    return Path(run_dir) / "checkpoints" / f"step-{int(step):07d}.pt"


def _steps(run_dir) -> list:
    d = Path(run_dir) / "checkpoints"
    if not d.is_dir():
        return []
    return sorted((int(m.group(1)), d / m.group(0)) for p in d.iterdir() if (m := _STEP.match(p.name)))


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint with the highest step in ``run_dir``, or ``None``."""
    steps = _steps(run_dir)
    return steps[-1][1] if steps else None


def prune_checkpoints(run_dir: str | os.PathLike, keep: int) -> list:
    """Delete all but the ``keep`` most recent step checkpoints; returns the deleted paths."""
    steps = _steps(run_dir)
    gone = [p for _, p in steps[:-keep]] if keep > 0 else []
    for p in gone:
        p.unlink(missing_ok=True)
    return gone

