"""Endpoint teacher matching: one trainer for any learned solver and any denoiser.

The student (a learned :class:`~.core.Solver`) is rolled out for K steps from a batch of initial
states and its endpoint is compared with a target — a teacher's endpoint from the same noise or,
for nowcasting, the observed future — by a loss from :data:`LOSSES`. Fresh batches every
iteration, Adam with linear warm-up and cosine decay, gradient-norm clipping. A validation set is
scored at initialisation and periodically; the best state is kept and restored at the end, so a
learned solver never ends worse than its initialisation on validation. Training state is saved
atomically and resumed after a kill.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from ..foundation.files import atomic_save
from ..foundation.registry import lookup
from .core import Solver
from .rollout import rollout

__all__ = ["MatchingConfig", "MatchingResult", "Batch", "TeacherPool", "FreshTeacher", "LOSSES", "get_loss",
           "train_endpoint_matching", "evaluate_endpoint"]


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error, shape ``(B,)``."""
    return (pred - target).pow(2).flatten(1).mean(1)


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"mse": mse_loss}


def get_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Look up an endpoint loss by name.

    Raises
    ------
    ValueError
        For an unknown name, listing the available ones.
    """
    return lookup(LOSSES, "loss", name)


@dataclass
class Batch:
    """Initial states at σ_max, the targets their rollouts should reach, and conditioning."""

    x: torch.Tensor
    target: torch.Tensor
    cond: Any = None


class TeacherPool:
    """Batches from precomputed (initial state, teacher endpoint) pairs.

    Each pass visits every pair once in a new random order, so within a pass every batch holds
    noise the student has not seen; a new pass starts when the pool is used up.
    """

    def __init__(self, x: torch.Tensor, target: torch.Tensor, cond: Any = None):
        if len(x) != len(target):
            raise ValueError("x and target must have the same length")
        self.x, self.target, self.cond = x, target, cond
        self._order: Optional[torch.Tensor] = None
        self._pos = 0

    def __len__(self) -> int:
        return len(self.x)

    def state_dict(self) -> dict:
        """Position in the current pass (saved with the training state, so a resumed run draws the
        same batches as an uninterrupted one)."""
        return {"order": self._order, "pos": self._pos}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (a state of a pool of another size starts a new pass instead)."""
        if state["order"] is not None and len(state["order"]) == len(self.x):
            self._order, self._pos = state["order"], int(state["pos"])

    def __call__(self, batch_size: int, generator: torch.Generator) -> Batch:
        """Next ``batch_size`` pairs."""
        if self._order is None or self._pos + batch_size > len(self.x):
            self._order = torch.randperm(len(self.x), generator=generator)
            self._pos = 0
        idx = self._order[self._pos:self._pos + batch_size]
        self._pos += batch_size
        cond = self.cond[idx] if torch.is_tensor(self.cond) else self.cond
        return Batch(self.x[idx], self.target[idx], cond)


class FreshTeacher:
    """Batches of new noise every call, with the teacher's endpoints computed on the fly.

    Parameters
    ----------
    teacher : callable
        ``teacher(x_init, cond) -> endpoint`` (e.g. a many-step base-solver rollout or an
        analytic test bed's accurate integrator); run without gradients.
    shape : tuple
        Per-sample state shape.
    sigma_max : float
        Initial noise level: ``x_init = sigma_max · ε``.
    cond : callable, optional
        ``cond(batch_size, generator)`` drawing conditioning for the batch.
    """

    def __init__(self, teacher: Callable[[torch.Tensor, Any], torch.Tensor], shape: tuple,
                 sigma_max: float, cond: Optional[Callable[[int, torch.Generator], Any]] = None):
        self.teacher, self.shape, self.sigma_max, self.cond = teacher, tuple(shape), sigma_max, cond

    @torch.no_grad()
    def __call__(self, batch_size: int, generator: torch.Generator) -> Batch:
        """``batch_size`` fresh (noise, teacher endpoint) pairs."""
        x = torch.randn((batch_size,) + self.shape, generator=generator) * self.sigma_max
        cond = self.cond(batch_size, generator) if self.cond is not None else None
        return Batch(x, self.teacher(x, cond).to(x.dtype), cond)


@dataclass(frozen=True)
class MatchingConfig:
    """Hyper-parameters of endpoint teacher matching (defaults follow DyWeight's protocol)."""

    iterations: int = 625
    batch_size: int = 16
    lr: float = 1e-2
    warmup: float = 0.1
    final_lr: float = 0.01
    betas: tuple = (0.9, 0.999)
    grad_clip: float = 1.0
    val_every: int = 25
    save_every: int = 100
    loss: str = "mse"
    afs: bool = False
    checkpoint: bool = False
    seed: int = 0


@dataclass
class MatchingResult:
    """Outcome of a training run (validation losses are means over the validation set)."""

    init_val: float
    best_val: float
    best_iteration: int
    seconds: float
    history: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return asdict(self)


def _lr_factor(config: MatchingConfig) -> Callable[[int], float]:
    warm = max(1, int(round(config.warmup * config.iterations)))

    def factor(it: int) -> float:
        if it < warm:
            return 0.1 + 0.9 * it / warm
        frac = (it - warm) / max(1, config.iterations - warm)
        return config.final_lr + (1 - config.final_lr) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))

    return factor


@torch.no_grad()
def evaluate_endpoint(student: Solver, denoiser: Callable, sigmas: torch.Tensor, batch: Batch,
                      loss: str | Callable = "mse", afs: bool = False, chunk: int = 256) -> float:
    """Mean endpoint loss of a solver over a batch (evaluated in chunks, no gradients)."""
    fn = get_loss(loss) if isinstance(loss, str) else loss
    total, count = 0.0, 0
    for i in range(0, len(batch.x), chunk):
        cond = batch.cond[i:i + chunk] if torch.is_tensor(batch.cond) else batch.cond
        out = rollout(denoiser, batch.x[i:i + chunk], sigmas, student, cond=cond, afs=afs).x
        total += float(fn(out, batch.target[i:i + chunk]).sum())
        count += len(out)
    return total / count


def train_endpoint_matching(student: Solver, denoiser: Callable, sigmas: torch.Tensor,
                            batches: Callable[[int, torch.Generator], Batch], val: Batch,
                            config: MatchingConfig = MatchingConfig(),
                            run_dir: str | Path | None = None, progress: bool = False,
                            log: Callable[[str], None] | None = None,
                            loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
                            ) -> MatchingResult:
    """Train a learned solver by endpoint teacher matching.

    Parameters
    ----------
    student : Solver
        Learned solver; its parameters with ``requires_grad`` are trained in place. At the end it
        holds the best state found on validation (the initial state if nothing was better).
    denoiser : callable
        ``denoiser(x, sigma, cond)``.
    sigmas : torch.Tensor
        The student's σ grid (K + 1 points).
    batches : callable
        ``batches(batch_size, generator) -> Batch``: fresh initial states and targets
        (e.g. a :class:`TeacherPool` or a function that runs a teacher on new noise). A source
        with ``state_dict``/``load_state_dict`` has its state saved and restored with the run.
    val : Batch
        Fixed validation set.
    config : MatchingConfig
        Hyper-parameters.
    run_dir : path-like, optional
        Where ``state.pt`` (resumable training state) and ``metrics.json`` go. An existing
        ``state.pt`` is resumed.
    progress : bool
        Show a tqdm progress bar.
    log : callable, optional
        Receives one line per validation.
    loss_fn : callable, optional
        ``loss_fn(pred, target) -> (B,)`` used instead of the registry loss ``config.loss`` (which
        then only names it), e.g. a perceptual loss bound to a decoder.

    Returns
    -------
    MatchingResult
    """
    params = [p for p in student.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"solver {student.name!r} has no trainable parameters")
    loss_fn = loss_fn or get_loss(config.loss)
    opt = torch.optim.Adam(student.param_groups(config.lr), lr=config.lr, betas=config.betas)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(config))
    gen = torch.Generator().manual_seed(config.seed)
    state_path = Path(run_dir) / "state.pt" if run_dir is not None else None
    start, history, elapsed = 0, [], 0.0
    if state_path is not None and state_path.exists():
        st = torch.load(state_path, map_location="cpu", weights_only=True)
        student.load_state_dict(st["student"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        gen.set_state(st["generator"])
        start, history, elapsed = st["iteration"], st["history"], st["seconds"]
        if st.get("batches") is not None and hasattr(batches, "load_state_dict"):
            batches.load_state_dict(st["batches"])
        best_state, best_val, best_it, init_val = st["best"], st["best_val"], st["best_iteration"], st["init_val"]
    else:
        init_val = evaluate_endpoint(student, denoiser, sigmas, val, loss_fn, config.afs)
        best_state, best_val, best_it = copy.deepcopy(student.state_dict()), init_val, 0
        history.append({"iteration": 0, "val": init_val})

    def save(it: int) -> None:
        if state_path is None:
            return
        atomic_save({"student": student.state_dict(), "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict(), "generator": gen.get_state(),
                     "iteration": it, "history": history, "seconds": elapsed,
                     "best": best_state, "best_val": best_val, "best_iteration": best_it,
                     "init_val": init_val,
                     "batches": batches.state_dict() if hasattr(batches, "state_dict") else None}, state_path)

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=config.iterations, initial=start, desc=f"train {student.name}", leave=False)
    t0 = time.perf_counter()
    for it in range(start + 1, config.iterations + 1):
        batch = batches(config.batch_size, gen)
        out = rollout(denoiser, batch.x, sigmas, student, cond=batch.cond, afs=config.afs,
                      checkpoint=config.checkpoint).x
        loss = loss_fn(out, batch.target).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        opt.step()
        sched.step()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3e}", best=f"{best_val:.3e}")
        if it % config.val_every == 0 or it == config.iterations:
            v = evaluate_endpoint(student, denoiser, sigmas, val, loss_fn, config.afs)
            history.append({"iteration": it, "train": float(loss.item()), "val": v})
            if v < best_val:
                best_state, best_val, best_it = copy.deepcopy(student.state_dict()), v, it
            if log is not None:
                log(f"iter {it}: train {loss.item():.4e} val {v:.4e} (best {best_val:.4e} @ {best_it})")
        if it % config.save_every == 0:
            elapsed_now = elapsed + time.perf_counter() - t0
            elapsed, t0 = elapsed_now, time.perf_counter()
            save(it)
    if bar is not None:
        bar.close()
    elapsed += time.perf_counter() - t0
    student.load_state_dict(best_state)
    save(config.iterations)
    result = MatchingResult(init_val, best_val, best_it, elapsed, history)
    if run_dir is not None:
        (Path(run_dir) / "metrics.json").write_text(json.dumps(
            {**result.to_dict(), "config": asdict(config)}, indent=2))
    return result
