"""The ``spanlift`` stage: a learned few-step solver for a trained nowcaster, by endpoint matching.

The nowcaster stays frozen. The student — SpanLift on a base solver (``ddim:5`` by default), or a
DyWeight scalar table — is rolled out from the VP prior on the base's DDIM grid, conditioned on the
context latents of a window, and its endpoint is compared with a target:

* ``target: teacher`` — the endpoint of the teacher solver (``ddim:100`` by default) from the same
  noise and context. Teacher pairs are drawn from the seed (window and noise seed of pair ``i``)
  and their endpoints are cached on disk (:mod:`.teacher_cache`), so a second run with the same
  model, teacher, data and seed computes no teacher rollouts (whatever its base or loss). By
  default the pool holds ``max_steps × batch_size`` pairs, so every batch brings new noise.
* ``target: target`` — the observed future of the window (direct-target supervision): new windows
  and new noise every batch, no teacher.

The loss (:mod:`.losses`) compares latents (``mse``) or decoded frames (``inception``,
``lpips``). Training is :func:`nowcast.solvers.matching.train_endpoint_matching` (gradient
checkpointing through the rollout, validation, best state kept, resumable checkpoints of the one training loop); at the end
``solver.pt`` is written to the run directory with the metadata sampling needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..foundation.provenance import file_digest
from ..foundation.config import DictRoundTrip
from ..data.windows import WindowDataset, window_frames
from ..models.ldm import member_noise
from ..models.model_files import load_model, resolve_model, resolve_solver
from ..solvers.matching import Batch, TeacherPool
from ..solvers.registry import LEARNED_SOLVERS, get_solver, parse_solver_spec, save_solver
from ..solvers.rollout import rollout
from .losses import LOSS_SPACE, endpoint_loss
from .matching import MatchingConfig, train_endpoint_matching
from .students import build_student, load_base
from .teacher_cache import TeacherCache, cache_key, noise_seed, window_of

__all__ = ["SolverSection", "SolverJob", "build_solver_job", "default_run_name"]

TARGETS = ("teacher", "target")


@dataclass(frozen=True)
class SolverSection(DictRoundTrip):
    """The ``spanlift:`` section of a training config.

    Attributes
    ----------
    model : str
        The frozen nowcaster: ``default``, a model file or an ``ldm`` run directory.
    solver : str
        What is learned: ``spanlift`` (operator + per-step α, β) or ``dyweight`` (a scalar table).
    base : str
        SpanLift's base solver: ``SOLVER:STEPS`` (``ddim:5``, ``euler:5``, ``ipndm:5``) or a trained
        solver (file or run directory, e.g. a ``dyweight`` run), which then fixes the steps.
        For ``solver: dyweight`` only the steps are used.
    teacher : str
        Teacher ``SOLVER:STEPS`` for ``target: teacher``.
    loss : str
        ``mse`` (latents), ``inception`` or ``lpips`` (decoded frames), or ``crps`` (the fair CRPS of
        ``members`` members of each forecast against the observed future, in the forecast's pixels).
    target : str
        ``teacher`` or ``target`` (the observed future).
    teacher_samples : int
        Teacher pairs in the training pool; 0 (default) means ``max_steps × batch_size``: every batch
        then holds noise never used before. A smaller pool is revisited, in a new order each pass.
    val_samples : int
        Validation pairs (val split).
    hidden, blocks, history, kernel_size : int
        Shape of SpanLift's operator (3-D convolutions over time × latent space). The width is 32
        by default, which keeps the operator within 5% of the time of a 5-step forecast of the
        1.7 M-parameter default model on a CPU (width 64 costs it ≈ 7%); the paper uses ≈ 64,
        which is negligible next to a paper-scale denoiser (``--set spanlift.hidden=64``).
    scalar_lr_scale : float
        Learning-rate multiplier of the per-step scalars.
    afs : bool
        Analytic first step (saves one NFE).
    grad_checkpoint : bool
        Recompute each rollout step in the backward pass (memory).
    inception_weights, lpips_weights : str or None
        Explicit weight files for the perceptual losses.
    members : int
        ``crps``: members per forecast (2, 4, 8 or 16); each context of a batch brings that many
        rollouts from fresh noise.
    """

    model: str = "default"
    solver: str = "spanlift"
    base: str = "ddim:5"
    teacher: str = "ddim:100"
    loss: str = "mse"
    target: str = "teacher"
    teacher_samples: int = 0
    val_samples: int = 16
    hidden: int = 32
    blocks: int = 2
    history: int = 3
    kernel_size: int = 3
    scalar_lr_scale: float = 1.0
    afs: bool = False
    grad_checkpoint: bool = True
    inception_weights: str | None = None
    lpips_weights: str | None = None
    members: int = 4

    def __post_init__(self):
        if self.solver not in LEARNED_SOLVERS:
            raise ValueError(f"spanlift.solver must be one of {list(LEARNED_SOLVERS)}, got {self.solver!r}")
        if self.loss not in LOSS_SPACE:
            raise ValueError(f"unknown loss {self.loss!r}; available: {sorted(LOSS_SPACE)}")
        if self.target not in TARGETS:
            raise ValueError(f"unknown target {self.target!r}; available: {list(TARGETS)}")
        parse_solver_spec(self.teacher)
        if self.teacher_samples < 0:
            raise ValueError(f"spanlift.teacher_samples must be ≥ 0, got {self.teacher_samples}")
        for name in ("val_samples", "hidden", "blocks", "history"):
            if getattr(self, name) < 1:
                raise ValueError(f"spanlift.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.loss == "crps":
            if self.target != "target":
                raise ValueError("--loss crps judges the members' spread against the observed future: "
                                 "use --target target")
            if self.members not in (2, 4, 8, 16):
                raise ValueError(f"spanlift.members must be 2, 4, 8 or 16, got {self.members}")

    @property
    def group(self) -> int:
        """Rollouts per context: the members of a ``crps`` forecast, else 1."""
        return self.members if self.loss == "crps" else 1


def default_run_name(section: dict) -> str:
    """``<solver>-<base>-<loss>-<target>``, e.g. ``spanlift-ddim5-mse-teacher``."""
    s = SolverSection.from_dict(section)
    base = s.base.replace(":", "") if ":" in s.base else Path(s.base).name
    return f"{s.solver}-{base}-{s.loss}-{s.target}"


def _base(section: SolverSection, device) -> tuple:
    """``(base solver or None, steps, description)``."""
    if ":" in section.base and not Path(section.base).exists():
        name, steps = parse_solver_spec(section.base)
        return name, steps, section.base
    solver, steps = load_base(resolve_solver(section.base), device=device)
    return solver, steps, f"{solver.name}:{steps} ({section.base})"


class _ObservedBatches:
    """Fresh windows and fresh noise every call; targets from the observed future."""

    def __init__(self, job: "SolverJob", data: WindowDataset):
        self.job, self.data = job, data

    @torch.no_grad()
    def __call__(self, batch_size: int, generator: torch.Generator) -> Batch:
        idx = torch.randint(len(self.data), (batch_size,), generator=generator).tolist()
        frames = torch.stack([window_frames(self.data[i]) for i in idx])
        group = self.job.section.group                     # members of one forecast share its window
        noise = torch.randn((batch_size * group, *self.job.ldm.latent_shape()), generator=generator)
        return self.job.observed_batch(frames, noise)


@dataclass
class SolverJob:
    """Everything a solver training needs, built (and checked) before any file is written."""

    section: SolverSection
    ldm: object
    model_path: Path
    task: object
    student: object
    steps: int
    base_text: str
    loss_fn: Callable
    store: str
    device: torch.device
    seed: int

    @property
    def sigmas(self) -> torch.Tensor:
        """The student's σ grid."""
        return self.ldm.solver_grid(self.steps, device=self.device)

    def _context(self, frames: torch.Tensor) -> torch.Tensor:
        return self.ldm.encode_context(frames[:, :self.task.in_len].to(self.device))

    def observed_batch(self, frames: torch.Tensor, noise: torch.Tensor) -> Batch:
        """A batch targeting the observed future of ``(B, T, H, W)`` windows from standard normal latents
        (``B·members`` of them for ``crps``: each window's members follow each other).

        For ``crps`` on a model that adds its decoded correction to a first guess in pixels, the target
        is the future moved by ``D(g) − P`` (P the first guess, g its latents): the CRPS is unchanged
        by adding one field to forecast and observation alike, so comparing the decoded endpoint
        ``D(ẑ)`` with it scores the forecast ``P + D(ẑ) − D(g)`` itself (before the clamp to [0, 1]).
        """
        ctx = frames[:, :self.task.in_len].to(self.device)
        future = frames[:, self.task.in_len:].to(self.device)
        guess = self.ldm.first_guess_frames(ctx) if self.ldm.cfg.first_guess else None
        z_c = self.ldm.encode_context(ctx, guess)
        if LOSS_SPACE[self.section.loss] == "latent":
            target = self.ldm.encode_frames(future)
        elif self.section.loss == "crps" and self.ldm.cfg.first_guess_pixels:
            t = future.shape[1]
            target = future - guess[:, -t:] + self.ldm.decode(z_c[:, -t:].float()).to(future.dtype)
        else:
            target = future
        group = self.section.group
        if group > 1:
            z_c, target = z_c.repeat_interleave(group, 0), target.repeat_interleave(group, 0)
        return Batch(self.ldm.prior_state(noise.to(self.device), self.sigmas, z_c), target, z_c)

    @torch.no_grad()
    def teacher_pairs(self, split: str, n: int, progress: bool, log: Callable[[str], None]) -> Batch:
        """``n`` teacher pairs of a split: from the cache, computing (and caching) missing endpoints."""
        from tqdm.auto import tqdm

        from ..foundation.cache import cache_dir

        data = WindowDataset(self.store, self.task.name, split)
        shape = self.ldm.latent_shape()
        key = cache_key(file_digest(self.model_path), self.section.teacher, self.store, split, shape, self.seed)
        cache = TeacherCache(cache_dir() / "teachers", key)
        windows = [window_of(self.seed, i, len(data)) for i in range(n)]
        seeds = [noise_seed(self.seed, i) for i in range(n)]
        noise = member_noise(shape, seeds, device=self.device)
        frames = torch.stack([window_frames(data[w]) for w in windows])
        z_c = self._context(frames)
        have = min(cache.count, n)
        if have < n:
            name, steps = parse_solver_spec(self.section.teacher)
            solver = get_solver(name)
            grid = self.ldm.solver_grid(steps, device=self.device)
            den = self.ldm.denoiser()
            log(f"teacher {self.section.teacher}: computing {n - have} {split} endpoints (cache {cache.path}, "
                f"{have} already there)")
            bar = tqdm(total=n, initial=have, desc=f"teacher {self.section.teacher} ({split})", unit="pair",
                       disable=not progress)
            for start in range(have, n, cache.chunk):
                sl = slice(start, min(n, start + cache.chunk))
                end = rollout(den, self.ldm.prior_state(noise[sl], grid, z_c[sl]), grid, solver, cond=z_c[sl]).x
                cache.append(end.float().cpu().numpy())
                bar.update(sl.stop - sl.start)
            bar.close()
        else:
            log(f"teacher {self.section.teacher}: {n} {split} endpoints reused from {cache.path}")
        target = torch.from_numpy(cache.read(n)).to(self.device)
        if LOSS_SPACE[self.section.loss] == "frames":
            target = torch.cat([self.ldm.decode(target[i:i + 16]) for i in range(0, n, 16)])
        return Batch(self.ldm.prior_state(noise, self.sigmas, z_c), target, z_c)

    def observed_pairs(self, split: str, n: int) -> Batch:
        """``n`` fixed observed pairs of a split (validation of ``target: target``)."""
        data = WindowDataset(self.store, self.task.name, split)
        windows = [window_of(self.seed, i, len(data)) for i in range(n)]
        seeds = [noise_seed(self.seed, i * self.section.group + m) for i in range(n) for m in range(self.section.group)]
        noise = member_noise(self.ldm.latent_shape(), seeds)
        with torch.no_grad():
            return self.observed_batch(torch.stack([window_frames(data[w]) for w in windows]), noise)

    def run(self, cfg, run_dir: str | Path, progress: bool = True, log: Callable[[str], None] = print):
        """Train (resuming an unfinished run in ``run_dir``) and write ``run_dir/solver.pt``."""
        s = self.section
        if s.target == "teacher":
            pool = self.teacher_pairs("train", s.teacher_samples or cfg.max_steps * cfg.batch_size, progress, log)
            batches = TeacherPool(pool.x, pool.target, pool.cond)
            val = self.teacher_pairs("val", s.val_samples, progress, log)
        else:
            batches = _ObservedBatches(self, WindowDataset(self.store, self.task.name, "train"))
            val = self.observed_pairs("val", s.val_samples)
        mcfg = MatchingConfig(iterations=cfg.max_steps, batch_size=cfg.batch_size, lr=cfg.lr,
                              warmup=cfg.warmup_steps / cfg.max_steps,
                              final_lr=0.01 if cfg.lr_schedule == "cosine" else 1.0, betas=tuple(cfg.betas),
                              grad_clip=cfg.grad_clip if cfg.grad_clip > 0 else float("inf"),
                              val_every=cfg.val_every or cfg.max_steps, save_every=cfg.ckpt_every,
                              loss=s.loss, afs=s.afs, checkpoint=s.grad_checkpoint, seed=cfg.seed)
        result = train_endpoint_matching(self.student, self.ldm.denoiser(), self.sigmas, batches, val, mcfg,
                                         run_dir=run_dir, progress=progress, log=log, loss_fn=self.loss_fn)
        meta = {"steps": self.steps, "spacing": "leading", "afs": s.afs, "model": s.model,
                "model_sha256": file_digest(self.model_path), "task": self.task.name, "base": self.base_text,
                "teacher": s.teacher if s.target == "teacher" else None, "loss": s.loss, "target": s.target,
                "nfe": self.student.nfe(self.steps, s.afs), "training": result.to_dict()}
        save_solver(Path(run_dir) / "solver.pt", self.student, meta)
        return result


def build_solver_job(cfg, store: str, device: torch.device, lpips_module=None) -> SolverJob:
    """Load the nowcaster, build the student and the loss; raise ValueError for bad input."""
    from ..foundation.tasks import get_task

    section = SolverSection.from_dict(cfg.spanlift)
    model_path = resolve_model(section.model)
    loaded = load_model(model_path, device)
    ldm = loaded.ldm.eval()
    ldm.requires_grad_(False)
    task = get_task(loaded.task)
    base, steps, base_text = _base(section, device)
    torch.manual_seed(cfg.seed)
    student = build_student(section.solver, steps, ldm.unet.cfg.latent_channels, base, sigma_data=1.0,
                            history=section.history, hidden=section.hidden, blocks=section.blocks, spatial_dims=3,
                            kernel_size=section.kernel_size, scalar_lr_scale=section.scalar_lr_scale,
                            channel_axis=2).to(device)
    dtype = next(ldm.vae.parameters()).dtype
    loss_fn = endpoint_loss(section.loss, to_frames=lambda z: ldm.decode(z.to(dtype)), device=ldm.alphas_cumprod.device,
                            inception_weights=section.inception_weights, lpips_weights=section.lpips_weights,
                            lpips_module=lpips_module, members=section.members)
    WindowDataset(store, task.name, "train")             # the store fits the model's task
    from ..data.store import open_store

    frames = open_store(store)
    loaded.check_frames((frames.sizes["y"], frames.sizes["x"]), f"store {store}")
    return SolverJob(section, ldm, model_path, task, student, steps, base_text, loss_fn, store, device, cfg.seed)
