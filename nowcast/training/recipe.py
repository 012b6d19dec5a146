"""What the training loop trains (:class:`Stage`), how it runs (:class:`LoopSettings`) and the
learning-rate schedule (:class:`LRSchedule`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["LRSchedule", "LoopSettings", "Stage"]


@dataclass(frozen=True)
class LRSchedule:
    """Linear warm-up, then a constant rate or a cosine decay.

    ``schedule(step, base)`` is the rate of optimiser step ``step`` (0-based) for a parameter group
    whose rate is ``base``.

    Attributes
    ----------
    total : int
        Steps of the run (the cosine reaches its end there).
    warmup : int
        Warm-up steps (0: none).
    start : float
        Where the warm-up starts, as a fraction of ``base``: 0 ramps ``base·(s + 1)/warmup``
        (reaching ``base`` on the last warm-up step), ``start > 0`` ramps
        ``base·(start + (1 − start)·s/warmup)`` (DyWeight's protocol: 0.1).
    final : float
        The cosine's end as a fraction of ``base``.
    cosine : bool
        Decay by a half cosine after the warm-up (else constant).
    ramp_first : bool
        Compute the zero-start ramp as ``base·((s + 1)/warmup)`` (the tiny image model's recipe;
        the same rate up to rounding).
    """

    total: int
    warmup: int = 0
    start: float = 0.0
    final: float = 0.0
    cosine: bool = False
    ramp_first: bool = False

    def __call__(self, step: int, base: float) -> float:
        """The rate of optimiser step ``step`` for a group of rate ``base``."""
        if self.warmup and step < self.warmup:
            if self.start:
                return base * (self.start + (1 - self.start) * step / self.warmup)
            return base * ((step + 1) / self.warmup) if self.ramp_first else base * (step + 1) / self.warmup
        if not self.cosine:
            return base
        frac = (step - self.warmup) / max(1, self.total - self.warmup)
        return base * (self.final + (1 - self.final) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


@dataclass(frozen=True)
class LoopSettings:
    """How the loop runs (what it trains is the :class:`Stage`).

    Attributes
    ----------
    max_steps : int
        Optimiser steps of the run.
    seed : int
        Seed of every random draw.
    grad_accum : int
        Micro-batches per optimiser step (``sample`` stages).
    grad_clip : float
        Gradient-norm clipping per optimiser (≤ 0: none).
    precision : str
        ``auto`` (bf16 autocast on GPU), ``bf16`` or ``fp32``.
    num_workers : int
        ``DataLoader`` workers of ``sample`` stages.
    log_every, ckpt_every, val_every : int
        Steps between metrics lines, checkpoints and validations (``val_every`` 0: only at the end).
    keep_checkpoints : int
        Checkpoints kept in the run directory.
    name : str
        Progress-bar label.
    config : str
        JSON of the configuration, recorded in every checkpoint.
    """

    max_steps: int
    seed: int = 0
    grad_accum: int = 1
    grad_clip: float = 1.0
    precision: str = "fp32"
    num_workers: int = 0
    log_every: int = 10
    ckpt_every: int = 200
    val_every: int = 0
    keep_checkpoints: int = 2
    name: str = "train"
    config: str = ""


@dataclass
class Stage:
    """What :func:`train` trains.

    Attributes
    ----------
    modules : dict of str to nn.Module
        Everything whose state is checkpointed (trained networks, EMA, discriminator, solvers).
    params : dict of str to list
        Trained parameters per optimiser name.
    compute : callable
        ``compute(batch, step, generator) → (losses, logs)``: ``losses`` maps optimiser names to
        scalar losses (each backpropagated into its own parameters only), ``logs`` scalar floats.
    sample : callable, optional
        ``sample(step, micro, rank) → batch``, deterministic in its arguments (runs in workers).
    draw : callable, optional
        ``draw(generator) → batch`` from the run's carried generator (instead of ``sample``).
    optimizer : callable, optional
        ``optimizer(params) → torch.optim.Optimizer`` for each name in ``params`` (or give
        ``optimizers`` built already).
    lr : callable, optional
        ``lr(step, base) → rate`` (an :class:`LRSchedule`); default: each group keeps its rate.
    validate : callable, optional
        ``validate(step) → dict`` of metrics (rank 0).
    validate_at_start : bool
        Also validate the untrained state (step 0) of a new run.
    keep_best : str, optional
        A key of ``validate``'s result: the modules' state where it was lowest is kept and restored
        at the end (a learned solver then never ends worse than its start).
    export : callable, optional
        ``export(path, meta)`` writes the usable model (``model.pt``) with every checkpoint.
    after_step : callable, optional
        Called after each optimiser step (EMA updates).
    extra_state : dict
        Further objects with ``state_dict``/``load_state_dict`` saved with the run (batch sources).
    """

    modules: dict
    params: dict
    compute: Callable
    sample: Callable | None = None
    draw: Callable | None = None
    optimizer: Callable | None = None
    optimizers: dict = field(default_factory=dict)
    lr: Callable | None = None
    validate: Callable | None = None
    validate_at_start: bool = False
    keep_best: str | None = None
    export: Callable | None = None
    after_step: Callable | None = None
    extra_state: dict = field(default_factory=dict)
