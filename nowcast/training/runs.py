"""Run directories ``runs_dir/NNNNN-<name>/``: config.json, log.txt, metrics.json, checkpoints, model.pt."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from ..checkpoints import latest_checkpoint
from ..foundation.files import atomic_write_text

__all__ = ["RunDir", "find_resumable", "new_run_dir"]

_RUN = re.compile(r"^(\d{5})-(.+)$")
#: Config keys that may change between a run and its resumption (they do not change the result).
RESUME_FREE = ("max_steps", "ckpt_every", "keep_checkpoints", "log_every", "val_every", "num_workers")


def _comparable(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in RESUME_FREE}


def find_resumable(runs_dir: str | os.PathLike, name: str, config: dict) -> Path | None:
    """The newest run named ``name`` with the same configuration (up to :data:`RESUME_FREE` keys) that
    has a checkpoint — or none yet and no exported result (a run killed before its first checkpoint,
    which is taken up again rather than left behind) — or ``None``."""
    root = Path(runs_dir)
    if not root.is_dir():
        return None
    for d in sorted((p for p in root.iterdir() if (m := _RUN.match(p.name)) and m.group(2) == name), reverse=True):
        try:
            saved = json.loads((d / "config.json").read_text())
        except (OSError, ValueError):
            continue
        # state.pt: a spanlift run of an earlier version, found so that it is refused with a message
        unstarted = not any((d / f).exists() for f in ("checkpoints", "model.pt", "solver.pt"))
        resumable = latest_checkpoint(d) is not None or (d / "state.pt").is_file() or unstarted
        if _comparable(saved) == _comparable(config) and resumable:
            return d
    return None


def new_run_dir(runs_dir: str | os.PathLike, name: str) -> Path:
    """Create ``runs_dir/NNNNN-name`` with the next free number."""
    root = Path(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    while True:
        numbers = [int(m.group(1)) for p in root.iterdir() if (m := _RUN.match(p.name))]
        d = root / f"{max(numbers, default=-1) + 1:05d}-{name}"
        try:
            d.mkdir()
            return d
        except FileExistsError:  # another process took the number
            continue


class RunDir:
    """Files of one run (written by rank 0 only)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @property
    def model(self) -> Path:
        """The exported model (``model.pt``)."""
        return self.path / "model.pt"

    def write_config(self, config: dict) -> None:
        """``config.json`` (the resolved configuration)."""
        atomic_write_text(self.path / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")

    def log(self, message: str) -> None:
        """Append a time-stamped line to ``log.txt``."""
        with open(self.path / "log.txt", "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def read_metrics(self) -> dict:
        """``metrics.json`` (empty dict when absent)."""
        p = self.path / "metrics.json"
        return json.loads(p.read_text()) if p.is_file() else {}

    def write_metrics(self, metrics: dict) -> None:
        """Replace ``metrics.json`` atomically."""
        atomic_write_text(self.path / "metrics.json",
                          json.dumps(metrics, indent=2, sort_keys=True, default=float) + "\n")
