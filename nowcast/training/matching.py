"""Endpoint teacher matching of a learned solver, on the one training loop.

The student is rolled out from batches of initial states (fresh every step: a
:class:`~nowcast.solvers.matching.TeacherPool` pass or a
:class:`~nowcast.solvers.matching.FreshTeacher`) and its endpoint compared with the target by an
endpoint loss (:mod:`.losses`). Adam with DyWeight's schedule (warm-up from a tenth of the rate,
cosine decay to ``final_lr``), gradient-norm clipping. A validation set is scored at the start and
periodically; the best state is kept and restored at the end, so a learned solver never ends worse
than its initialisation on validation. A run directory makes it resumable after a kill.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..solvers.core import Solver
from ..solvers.matching import Batch, evaluate_endpoint, matching_loss
from .loop import LoopSettings, LRSchedule, Stage, train
from .losses import endpoint_loss
from .runs import RunDir

__all__ = ["MatchingConfig", "MatchingResult", "train_endpoint_matching"]


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

    def schedule(self) -> LRSchedule:
        """Warm-up over ``warmup × iterations`` steps from 0.1 × the rate, then cosine to ``final_lr``."""
        return LRSchedule(self.iterations, max(1, int(round(self.warmup * self.iterations))), start=0.1,
                          final=self.final_lr, cosine=True)


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


def train_endpoint_matching(student: Solver, denoiser: Callable, sigmas: torch.Tensor,
                            batches: Callable[[int, torch.Generator], Batch], val: Batch,
                            config: MatchingConfig = MatchingConfig(),
                            run_dir: str | Path | None = None, progress: bool = False,
                            log: Callable[[str], None] | None = None,
                            loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                            blocks: int | Sequence[int] | None = None) -> MatchingResult:
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
        ``batches(batch_size, generator) -> Batch``: fresh initial states and targets. A source
        with ``state_dict``/``load_state_dict`` has its state saved and restored with the run.
    val : Batch
        Fixed validation set.
    config : MatchingConfig
        Hyper-parameters.
    run_dir : path-like, optional
        The run directory (checkpoints, ``metrics.json``, ``log.txt``); an unfinished run there is
        resumed.
    progress : bool
        Show a progress bar.
    log : callable, optional
        Receives one line per validation.
    loss_fn : callable, optional
        ``loss_fn(pred, target) -> (B,)`` instead of the registry loss ``config.loss``.
    blocks : int or sequence of int, optional
        Blocks per step of a length-adaptive denoiser: the student is trained for that (steps,
        blocks) schedule (default: full depth).

    Returns
    -------
    MatchingResult

    Raises
    ------
    ValueError
        For a solver without trainable parameters, or a run directory written by an earlier version.
    """
    params = [p for p in student.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"solver {student.name!r} has no trainable parameters")
    run = _run_dir(run_dir)
    loss_fn = loss_fn or endpoint_loss(config.loss)
    last = {}

    def compute(batch: Batch, step: int, generator):
        loss = matching_loss(student, denoiser, sigmas, batch, loss_fn, config.afs, config.checkpoint, blocks)
        last["train"] = float(loss.item())
        return {"student": loss}, {"loss": last["train"]}

    def validate(step: int) -> dict:
        entry = {**last, "val": evaluate_endpoint(student, denoiser, sigmas, val, loss_fn, config.afs,
                                                  blocks=blocks)}
        if log is not None and step:
            log(f"iter {step}: train {entry['train']:.4e} val {entry['val']:.4e}")
        return entry

    stage = Stage(modules={"student": student}, params={"student": params}, compute=compute,
                  draw=lambda g: batches(config.batch_size, g), lr=config.schedule(),
                  optimizers={"student": torch.optim.Adam(student.param_groups(config.lr), lr=config.lr,
                                                          betas=config.betas)},
                  validate=validate, validate_at_start=True, keep_best="val",
                  extra_state={"batches": batches} if hasattr(batches, "state_dict") else {})
    settings = LoopSettings(max_steps=config.iterations, seed=config.seed, grad_clip=config.grad_clip,
                            log_every=config.val_every, ckpt_every=config.save_every, val_every=config.val_every,
                            name=student.name, config=str(asdict(config)))
    metrics = train(settings, stage, run, progress=progress)
    return _result(metrics)


def _run_dir(run_dir) -> RunDir | None:
    if run_dir is None:
        return None
    path = Path(run_dir)
    if (path / "state.pt").is_file() and not (path / "checkpoints").is_dir():
        raise ValueError(f"{path} holds a run of an earlier nowcast (state.pt); its format is not resumed: "
                         "start a new run in another directory")
    path.mkdir(parents=True, exist_ok=True)
    return RunDir(path)


def _result(metrics: dict) -> MatchingResult:
    vals = metrics["validation"]
    history = [{"iteration": v["step"], **{k: v[k] for k in ("train", "val") if k in v}} for v in vals]
    best = metrics.get("best", {"step": vals[0]["step"], "val": vals[0]["val"]})
    return MatchingResult(vals[0]["val"], best["val"], best["step"], metrics["final"]["wall_time_s"], history)
