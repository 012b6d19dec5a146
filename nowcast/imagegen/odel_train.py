"""Training of the length-adaptive DiT (:mod:`.odel`) on small image sets, resumable on CPU.

:func:`train_odel` runs the package's training loop (checkpoints, exact resume after a kill, EMA)
with the ODE_t(ODE_l) objective (:func:`.odel_objective.shortcut_loss`) and writes ``model.pt``
(the EMA weights and both configurations; :func:`load_odel` reads it without executing code). The
fixed-depth shortcut model of the same size and budget is the same run with ``depths`` set to the
full depth alone (no length-consistency term).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..training.loop import LRSchedule, Stage
from .model_runs import read_model_file, train_and_export
from .odel import LengthAdaptiveDiT, ODELConfig
from .odel_objective import ShortcutConfig, shortcut_loss

__all__ = ["ODELTrainConfig", "train_odel", "load_odel"]


@dataclass
class ODELTrainConfig:
    """The network, the objective and the optimisation of one run.

    Attributes
    ----------
    model : ODELConfig
    objective : ShortcutConfig
    steps, batch_size, lr, warmup, ema, seed, checkpoint_every : training
    """

    model: ODELConfig = field(default_factory=ODELConfig)
    objective: ShortcutConfig = field(default_factory=ShortcutConfig)
    steps: int = 4000
    batch_size: int = 64
    lr: float = 3e-4
    warmup: int = 100
    ema: float = 0.999
    seed: int = 0
    checkpoint_every: int = 250

    def to_dict(self) -> dict:
        """Plain JSON-able settings."""
        d = asdict(self)
        d["model"] = self.model.to_dict()
        d["model"]["shape"] = list(self.model.shape)
        d["objective"]["depths"] = list(self.objective.depths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ODELTrainConfig":
        """The inverse of :meth:`to_dict`."""
        d = dict(d)
        model = ODELConfig.from_dict(d.pop("model"))
        obj = dict(d.pop("objective"))
        obj["depths"] = tuple(obj["depths"])
        return cls(model=model, objective=ShortcutConfig(**obj), **d)


def train_odel(images: torch.Tensor, labels: torch.Tensor | None, cfg: ODELTrainConfig, run_dir: str | Path,
               progress: bool = False, log: Callable[[str], None] | None = None) -> Path:
    """Train (or resume) a length-adaptive DiT on images in ``[−1, 1]``; returns ``run_dir/model.pt``.

    Parameters
    ----------
    images : torch.Tensor
        ``(N, C, H, W)`` training images.
    labels : torch.Tensor, optional
        ``(N,)`` class labels (``None``: unconditional).
    cfg : ODELTrainConfig
        ``cfg.model.shape`` must equal the image shape; every depth must be 1 … ``cfg.model.blocks``.
    run_dir : path-like
        Checkpoints, metrics and log (resumable), and ``model.pt`` (EMA weights).
    progress : bool
        tqdm progress bar.
    log : callable, optional
        Receives a line of mean losses every ``checkpoint_every`` steps.
    """
    if tuple(images.shape[1:]) != tuple(cfg.model.shape):
        raise ValueError(f"images have shape {tuple(images.shape[1:])}, the config says {cfg.model.shape}")
    if not all(1 <= d <= cfg.model.blocks for d in cfg.objective.depths):
        raise ValueError(f"depths {cfg.objective.depths} must lie in 1 … {cfg.model.blocks}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = LengthAdaptiveDiT(cfg.model)
    ema = copy.deepcopy(model).requires_grad_(False)
    n = len(images)
    seen: list = []

    def update_ema() -> None:
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - cfg.ema)

    def draw(gen):
        idx = torch.randint(n, (cfg.batch_size,), generator=gen)
        return images[idx], (None if labels is None else labels[idx])

    def compute(batch, step, gen):
        x0, y = batch
        loss, parts = shortcut_loss(model, ema, x0, gen, cfg.objective, y=y)
        seen.append({k: float(v) for k, v in parts.items()})
        return {"model": loss}, {"loss": float(loss.detach())}

    def validate(step: int) -> dict:                 # mean terms since the last line
        keys = ("flow_matching", "self_consistency", "length_consistency")
        mean = {k: sum(p[k] for p in seen) / max(1, len(seen)) for k in keys}
        seen.clear()
        if log is not None:
            log(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in mean.items()))
        return mean

    stage = Stage(modules={"model": model, "ema": ema}, params={"model": list(model.parameters())}, compute=compute,
                  draw=draw, optimizers={"model": torch.optim.Adam(model.parameters(), lr=cfg.lr)},
                  lr=LRSchedule(cfg.steps, max(1, cfg.warmup), ramp_first=True), after_step=update_ema,
                  validate=validate)
    return train_and_export(stage, run_dir, kind="odel-dit", config=cfg.to_dict(), ema=ema, steps=cfg.steps,
                            seed=cfg.seed, every=cfg.checkpoint_every, name="ODE_l DiT", grad_clip=1.0,
                            progress=progress)


def load_odel(path: str | Path) -> LengthAdaptiveDiT:
    """Load ``model.pt`` written by :func:`train_odel` (no code is executed from the file)."""
    config, weights = read_model_file(path, "odel-dit", "length-adaptive DiT")
    model = LengthAdaptiveDiT(ODELTrainConfig.from_dict(config).model)
    model.load_state_dict(weights)
    return model.eval().requires_grad_(False)
