"""What the small image models' trainings share: the package's training loop run to the end (resumable)
and the model file it exports, read back without executing code."""

from __future__ import annotations

import json
from pathlib import Path

from ..checkpoints import load_checkpoint, save_checkpoint
from ..training.loop import LoopSettings, train
from ..training.runs import RunDir

__all__ = ["train_and_export", "read_model_file"]


def train_and_export(stage, run_dir: Path, *, kind: str, config: dict, ema, steps: int, seed: int, every: int,
                     name: str, grad_clip: float = 0.0, progress: bool = False) -> Path:
    """Run (or resume) ``stage`` for ``steps`` steps, checkpointing and validating every ``every``, and
    write ``run_dir/model.pt`` with the EMA weights, ``kind`` and ``config``; returns its path."""
    settings = LoopSettings(max_steps=steps, seed=seed, grad_clip=grad_clip, log_every=every, ckpt_every=every,
                            val_every=every, name=name, config=json.dumps(config))
    metrics = train(settings, stage, RunDir(run_dir), progress=progress)
    out = Path(run_dir) / "model.pt"
    save_checkpoint({"kind": kind, "config": config, "weights": ema.state_dict(),
                     "train_seconds": metrics["final"]["wall_time_s"], "steps": steps}, out)
    return out


def read_model_file(path: str | Path, kind: str, what: str) -> tuple:
    """``(config, weights)`` of a model file of ``kind``.

    Raises
    ------
    ValueError
        When the file holds something else (``what`` names the expected model).
    """
    ck = load_checkpoint(path)
    if ck.get("kind") != kind:
        raise ValueError(f"{path}: not a {what} model file")
    return ck["config"], ck["weights"]
