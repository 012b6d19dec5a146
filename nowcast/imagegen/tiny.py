"""A tiny EDM-preconditioned image denoiser that trains on 2 CPU cores in minutes.

The network is a residual MLP on the flattened image (small convolutions are slow on two cores):
a Fourier-feature embedding of ``c_noise = ¼ ln σ``, an input projection to width ``w``, ``blocks``
residual blocks ``LayerNorm → FiLM(embedding) → Linear(w, 2w) → SiLU → Linear(2w, w)`` and a
zero-initialised output projection. It is wrapped in EDM's preconditioning
(:class:`nowcast.solvers.denoisers.EDMPrecond`, σ_data measured on the data) and trained with
EDM's loss: ``ln σ ~ N(−1.2, 1.2²)``, weight ``(σ² + σ_d²)/(σ σ_d)²``, Adam with warm-up, EMA of
the weights (Karras et al. 2022).

:func:`train_tiny_edm` resumes from its run directory and writes ``model.pt`` (the EMA weights and
the configuration; loaded without executing code by :func:`load_tiny_edm`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..training.loop import LRSchedule, Stage
from ..solvers.denoisers import EDMPrecond
from .model_runs import read_model_file, train_and_export

__all__ = ["TinyEDMConfig", "ResidualMLP", "build_tiny_edm", "train_tiny_edm", "load_tiny_edm", "edm_loss"]


@dataclass(frozen=True)
class TinyEDMConfig:
    """Architecture and training of the tiny EDM model (defaults: ``solvers.md`` §8 recipe).

    Attributes
    ----------
    shape : tuple
        Image shape ``(C, H, W)``.
    width, blocks, emb_dim : int
        MLP width, residual blocks, noise-embedding width.
    sigma_data : float
        Data standard deviation for the preconditioner.
    steps, batch_size, lr, warmup, ema : training
    p_mean, p_std : float
        ``ln σ ~ N(p_mean, p_std²)`` during training.
    seed : int
    """

    shape: tuple = (1, 8, 8)
    width: int = 256
    blocks: int = 4
    emb_dim: int = 128
    sigma_data: float = 0.5
    steps: int = 15000
    batch_size: int = 256
    lr: float = 1e-3
    warmup: int = 200
    ema: float = 0.999
    p_mean: float = -1.2
    p_std: float = 1.2
    seed: int = 0
    checkpoint_every: int = 1000


class ResidualMLP(nn.Module):
    """``F(x_in, c_noise)``: the raw network inside EDM's preconditioning."""

    def __init__(self, shape: tuple, width: int = 256, blocks: int = 4, emb_dim: int = 128):
        super().__init__()
        self.shape = tuple(shape)
        dim = math.prod(self.shape)
        self.register_buffer("freqs", torch.randn(emb_dim // 2, generator=torch.Generator().manual_seed(0)) * 4,
                             persistent=True)
        self.emb = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.inp = nn.Linear(dim, width)
        self.norms = nn.ModuleList(nn.LayerNorm(width, elementwise_affine=False) for _ in range(blocks))
        self.films = nn.ModuleList(nn.Linear(emb_dim, 2 * width) for _ in range(blocks))
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(width, 2 * width), nn.SiLU(), nn.Linear(2 * width, width))
                                  for _ in range(blocks))
        self.out = nn.Linear(width, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond=None) -> torch.Tensor:  # noqa: D102
        phase = c_noise.float().reshape(-1, 1) * self.freqs * (2 * math.pi)
        e = self.emb(torch.cat([phase.cos(), phase.sin()], dim=1))
        h = self.inp(x.reshape(x.shape[0], -1).float())
        for norm, film, mlp in zip(self.norms, self.films, self.mlps):
            scale, shift = film(e).chunk(2, dim=1)
            h = h + mlp(norm(h) * (1 + scale) + shift)
        return self.out(h).reshape(x.shape)


def build_tiny_edm(cfg: TinyEDMConfig) -> EDMPrecond:
    """An untrained tiny EDM denoiser for ``cfg``."""
    torch.manual_seed(cfg.seed)
    net = ResidualMLP(cfg.shape, cfg.width, cfg.blocks, cfg.emb_dim)
    den = EDMPrecond(net, sigma_data=cfg.sigma_data)
    den.shape = tuple(cfg.shape)
    return den


def edm_loss(den: EDMPrecond, x0: torch.Tensor, gen: torch.Generator, p_mean: float = -1.2,
             p_std: float = 1.2) -> torch.Tensor:
    """EDM's weighted denoising loss, averaged over the batch."""
    b = x0.shape[0]
    sigma = (torch.randn(b, generator=gen) * p_std + p_mean).exp().to(x0.device)
    noise = torch.randn(x0.shape, generator=gen).to(x0.device)
    s = sigma.reshape(-1, *([1] * (x0.ndim - 1)))
    sd = den.sigma_data
    weight = (s ** 2 + sd ** 2) / (s * sd) ** 2
    return (weight * (den(x0 + s * noise, sigma) - x0) ** 2).mean()


def _config_dict(cfg: TinyEDMConfig) -> dict:
    d = asdict(cfg)
    d["shape"] = list(cfg.shape)
    return d


def _from_dict(d: dict) -> TinyEDMConfig:
    d = dict(d)
    d["shape"] = tuple(d["shape"])
    return TinyEDMConfig(**d)


def train_tiny_edm(images: torch.Tensor, cfg: TinyEDMConfig, run_dir: str | Path, progress: bool = False,
                   log: Callable[[str], None] | None = None) -> Path:
    """Train (or resume) the tiny EDM model on images in ``[−1, 1]``; returns ``run_dir/model.pt``.

    Parameters
    ----------
    images : torch.Tensor
        ``(N, C, H, W)`` training images.
    cfg : TinyEDMConfig
        ``cfg.shape`` must equal the image shape.
    run_dir : path-like
        The run directory (checkpoints, metrics, log; resumable) and ``model.pt`` (EMA weights).
    progress : bool
        tqdm progress bar.
    log : callable, optional
        Receives a line every ``checkpoint_every`` steps (the mean losses are in ``metrics.json``).
    """
    if tuple(images.shape[1:]) != tuple(cfg.shape):
        raise ValueError(f"images have shape {tuple(images.shape[1:])}, the config says {cfg.shape}")
    run_dir = Path(run_dir)
    if (run_dir / "state.pt").is_file() and not (run_dir / "checkpoints").is_dir():
        raise ValueError(f"{run_dir} holds a run of an earlier nowcast (state.pt); its format is not resumed: "
                         "start a new run in another directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    den = build_tiny_edm(cfg)
    ema = copy.deepcopy(den).requires_grad_(False)

    def update_ema() -> None:
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), den.parameters()):
                pe.lerp_(pm, 1 - cfg.ema)

    losses: list = []

    def compute(x0, step, gen):
        loss = edm_loss(den, x0, gen, cfg.p_mean, cfg.p_std)
        losses.append(loss.item())
        return {"model": loss}, {"loss": losses[-1]}

    def validate(step: int) -> dict:                 # the mean training loss since the last line
        mean = sum(losses) / max(1, len(losses))
        losses.clear()
        if log is not None:
            log(f"step {step}: loss {mean:.4f}")
        return {"loss": mean}

    stage = Stage(modules={"model": den, "ema": ema}, params={"model": list(den.parameters())}, compute=compute,
                  draw=lambda gen: images[torch.randint(len(images), (cfg.batch_size,), generator=gen)],
                  optimizers={"model": torch.optim.Adam(den.parameters(), lr=cfg.lr)},
                  lr=LRSchedule(cfg.steps, max(1, cfg.warmup), ramp_first=True), after_step=update_ema,
                  validate=validate)
    return train_and_export(stage, run_dir, kind="tiny-edm", config=_config_dict(cfg), ema=ema, steps=cfg.steps,
                            seed=cfg.seed, every=cfg.checkpoint_every, name="tiny EDM", progress=progress)


def load_tiny_edm(path: str | Path) -> EDMPrecond:
    """Load ``model.pt`` written by :func:`train_tiny_edm` (no code is executed from the file)."""
    config, weights = read_model_file(path, "tiny-edm", "tiny EDM")
    den = build_tiny_edm(_from_dict(config))
    den.load_state_dict(weights)
    return den.eval().requires_grad_(False)
