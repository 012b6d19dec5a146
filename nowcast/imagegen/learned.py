"""Learned solvers for image models through the solver core's endpoint-matching trainer.

DyWeight's protocol (``solvers.md`` §1.3): EDM polynomial grid (ρ = 7, σ ∈ [0.002, 80]); a
student with NFE ``n`` takes ``n + 1`` steps of which the first is the analytic first step (AFS),
and ends at σ_min (no final denoising); fresh noise every batch; the teacher is a base solver
(Heun or iPNDM) with many steps on the same kind of grid from the same noise. ``dyweight`` learns
the scalar weight table and time scales; ``spanlift`` learns the spatial residual operator on top
of a base (a registry solver such as ``ipndm``, or a trained DyWeight file — the paper's
configuration). Losses: ``mse`` on pixels, or ``inception`` — MSE of the Inception-v3 pool
features of the images mapped to ``[0, 255]`` without quantisation (DyWeight's
``clamp((x + 1)·127.5, 0, 255)``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..solvers.matching import Batch, FreshTeacher
from ..training.matching import MatchingConfig, train_endpoint_matching
from ..solvers.registry import get_solver, load_learned_solver, parse_solver_spec, save_solver
from ..solvers.rollout import rollout
from ..solvers.schedules import edm_sigmas
from ..training.losses import endpoint_loss
from ..training.students import build_student, load_base

__all__ = ["ImageSolverConfig", "student_grid", "teacher_fn", "image_student",
           "train_image_solver", "load_image_solver", "sample_images"]


@dataclass(frozen=True)
class ImageSolverConfig:
    """What to learn and how (defaults: DyWeight's protocol at CPU scale).

    Attributes
    ----------
    solver : {'spanlift', 'dyweight'}
    base : str
        SpanLift's base: a registry solver name (``ipndm``, ``euler`` …) or a trained solver file.
    nfe : int
        Network evaluations of the student (``nfe + 1`` steps with AFS).
    loss : {'mse', 'inception'}
    teacher : str
        ``SOLVER:STEPS`` on the EDM grid (e.g. ``heun:64`` = 127 NFE, ``ipndm:256``).
    iterations, batch_size, lr : training
    val_size : int
        Fixed validation noise (seed ``seed + 1``).
    afs : bool
    seed : int
    """

    solver: str = "spanlift"
    base: str = "ipndm"
    nfe: int = 4
    loss: str = "mse"
    teacher: str = "heun:64"
    iterations: int = 300
    batch_size: int = 32
    lr: float | None = None
    val_size: int = 128
    afs: bool = True
    seed: int = 0


def student_grid(nfe: int, afs: bool = True, sigma_min: float = 0.002, sigma_max: float = 80.0) -> torch.Tensor:
    """The student's EDM grid: ``nfe + 1`` steps with AFS, ``nfe`` without."""
    return edm_sigmas(nfe + 1 if afs else nfe, sigma_min, sigma_max)


def teacher_fn(denoiser: Callable, spec: str, sigma_min: float = 0.002,
               sigma_max: float = 80.0) -> Callable[[torch.Tensor, Any], torch.Tensor]:
    """``teacher(x_init, cond) -> endpoint``: a many-step base solver on the EDM grid."""
    name, steps = parse_solver_spec(spec)
    solver, sig = get_solver(name), edm_sigmas(steps, sigma_min, sigma_max)

    @torch.no_grad()
    def run(x: torch.Tensor, cond: Any = None) -> torch.Tensor:
        return rollout(denoiser, x, sig, solver, cond=cond).x

    return run


def image_student(cfg: ImageSolverConfig, channels: int, sigma_data: float):
    """The untrained student: DyWeight (iPNDM-initialised table) or SpanLift on ``cfg.base`` (a registry
    solver, or a trained solver file whose table then trains on with the operator)."""
    steps = cfg.nfe + 1 if cfg.afs else cfg.nfe
    base = load_base(cfg.base, steps, freeze=False)[0] if Path(cfg.base).suffix == ".pt" else cfg.base
    return build_student(cfg.solver, steps, channels, base if cfg.solver == "spanlift" else None,
                         sigma_data=sigma_data)


class _OnDevice:
    """A batch source whose batches are moved to ``device`` (noise is drawn on the CPU generator)."""

    def __init__(self, source: FreshTeacher, device: torch.device):
        self.source, self.device = source, device

    def __call__(self, batch_size: int, generator: torch.Generator) -> Batch:
        b = self.source(batch_size, generator)
        cond = b.cond.to(self.device) if torch.is_tensor(b.cond) else b.cond
        return Batch(b.x.to(self.device), b.target.to(self.device), cond)


def train_image_solver(denoiser, shape: tuple, cfg: ImageSolverConfig, run_dir: str | Path | None = None,
                       progress: bool = False, log: Callable[[str], None] | None = None,
                       loss_fn: Callable | None = None, device: str | torch.device = "cpu"):
    """Train a learned solver for an image denoiser; returns ``(solver, MatchingResult)``.

    Parameters
    ----------
    denoiser : callable
        ``D(x, σ, cond)`` in EDM space (e.g. :func:`nowcast.imagegen.tiny.load_tiny_edm`,
        :class:`nowcast.imagegen.edm.EDMDenoiser`).
    shape : tuple
        Per-sample image shape ``(C, H, W)``.
    cfg : ImageSolverConfig
        What to learn. Class-conditional denoisers (``label_dim > 0``) get uniformly drawn labels
        with every batch, as EDM's ``generate.py`` samples them.
    run_dir : path-like, optional
        Resumable state and ``solver.pt`` (with the grid and training record in its metadata).
    loss_fn : callable, optional
        Overrides ``cfg.loss`` (tests).
    device : str or torch.device
        Where the denoiser lives and the student trains (noise is drawn on the CPU, seeded).
    """
    sigma_min = float(getattr(denoiser, "sigma_min", 0.002))
    sigma_max = float(getattr(denoiser, "sigma_max", 80.0))
    sig = student_grid(cfg.nfe, cfg.afs, sigma_min, sigma_max)
    device = torch.device(device)
    student = image_student(cfg, shape[0], float(getattr(denoiser, "sigma_data", 0.5))).to(device)
    teacher = teacher_fn(denoiser, cfg.teacher, sigma_min, sigma_max)
    classes = int(getattr(denoiser, "label_dim", 0) or 0)
    labels = (lambda b, g: torch.randint(classes, (b,), generator=g)) if classes else None  # noqa: E731
    on_dev = lambda c: c.to(device) if torch.is_tensor(c) else c  # noqa: E731
    source = _OnDevice(FreshTeacher(lambda x, c: teacher(x.to(device), on_dev(c)), shape, float(sig[0]), labels),
                       device)
    val = source(cfg.val_size, torch.Generator().manual_seed(cfg.seed + 1))
    lr = cfg.lr if cfg.lr is not None else (1e-2 if cfg.solver == "dyweight" else 1e-3)
    mcfg = MatchingConfig(iterations=cfg.iterations, batch_size=cfg.batch_size, lr=lr, afs=cfg.afs,
                          loss=cfg.loss, seed=cfg.seed, val_every=max(1, cfg.iterations // 10),
                          save_every=max(1, cfg.iterations // 10))
    fn = loss_fn or endpoint_loss(cfg.loss, images=True)
    if hasattr(fn, "network"):
        fn.network.to(device)
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    result = train_endpoint_matching(student, denoiser, sig, source, val, mcfg, run_dir=run_dir,
                                     progress=progress, log=log, loss_fn=fn)
    if run_dir is not None:
        meta = {"task": "image", "steps": len(sig) - 1, "nfe": cfg.nfe, "afs": cfg.afs, "schedule": "edm",
                "sigma_min": sigma_min, "sigma_max": sigma_max, "shape": list(shape),
                "training": {**asdict(cfg), "result": result.to_dict()}}
        save_solver(Path(run_dir) / "solver.pt", student, meta)
    return student, result


def load_image_solver(path: str | Path):
    """``(solver, grid, afs)`` from a ``solver.pt`` written by :func:`train_image_solver`."""
    solver, meta = load_learned_solver(path, task="image")     # a run directory or its solver.pt
    grid = edm_sigmas(meta["steps"], meta["sigma_min"], meta["sigma_max"])
    return solver, grid, meta["afs"]


@torch.no_grad()
def sample_images(denoiser, noise: torch.Tensor, grid: torch.Tensor, solver, afs: bool = False,
                  cond: Any = None, batch_size: int = 500) -> tuple[torch.Tensor, int]:
    """Images from standard-normal ``noise`` (batched); returns ``(images, nfe per sample)``."""
    out, nfe = [], 0
    for i in range(0, len(noise), batch_size):
        c = cond[i:i + batch_size] if torch.is_tensor(cond) else cond
        res = rollout(denoiser, noise[i:i + batch_size] * float(grid[0]), grid, solver, cond=c, afs=afs)
        out.append(res.x)
        nfe = res.nfe
    return torch.cat(out), nfe
