"""The step-rule interface every solver implements, and the NFE-counting denoiser wrapper.

A solver is a rule that, at step n, sees the current state ``x_n``, the buffer of past evaluations
``(σ_k, x_k, D_k, d_k)`` (newest last, including the current one) and the nominal σ grid, and
returns ``x_{n+1} = x_n + h_n·u_n`` as a :class:`Step` (``x`` — the start state, possibly corrected
as UniPC does; ``u`` — the direction; ``h`` — the step; ``sigma_next`` — the σ reached). The loop
that evaluates the denoiser and calls the rule is :func:`nowcast.solvers.rollout.rollout`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

__all__ = ["Entry", "Step", "StepContext", "Solver", "CountingDenoiser"]


@dataclass
class Entry:
    """One buffered evaluation: noise level, the state it was taken at, D and ``d = (x − D)/σ``."""

    sigma: torch.Tensor
    x: torch.Tensor
    denoised: torch.Tensor
    d: torch.Tensor


@dataclass
class Step:
    """Result of one step rule: ``x_next = x + h·u``; ``extra`` carries diagnostics."""

    x: torch.Tensor
    u: torch.Tensor
    h: torch.Tensor
    sigma_next: torch.Tensor
    extra: dict = field(default_factory=dict)

    @property
    def x_next(self) -> torch.Tensor:
        """The state after the step."""
        return self.x + self.h.to(self.x.dtype) * self.u


@dataclass
class StepContext:
    """What a step rule sees at step ``n``.

    Attributes
    ----------
    n : int
        Step index (0-based).
    x : torch.Tensor
        Current state ``x_n`` (the state the newest buffer entry was evaluated at).
    grid : torch.Tensor
        Nominal σ grid (float64, ``num_steps + 1`` points).
    buffer : list of Entry
        Past evaluations, oldest first; ``buffer[-1]`` is the current one.
    denoise : callable
        ``denoise(x, sigma)`` — the counted denoiser with the conditioning bound, for solvers that
        need extra evaluations within a step (Heun, DPM-Solver-2).
    scratch : dict
        Per-rollout storage a solver may use between its steps (e.g. UniPC's corrector state).
    """

    n: int
    x: torch.Tensor
    grid: torch.Tensor
    buffer: list
    denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    scratch: dict

    @property
    def num_steps(self) -> int:
        """Number of steps of the rollout."""
        return len(self.grid) - 1

    @property
    def sigma(self) -> torch.Tensor:
        """Current (true) noise level."""
        return self.buffer[-1].sigma

    @property
    def sigma_next(self) -> torch.Tensor:
        """Nominal next noise level ``grid[n + 1]``."""
        return self.grid[self.n + 1]


class Solver(nn.Module):
    """Base class of all step rules (hand-crafted ones have no parameters).

    Subclasses implement :meth:`step`; learned ones may override :meth:`eval_sigma` (the σ at which
    the denoiser is queried, given the true current σ) and keep their parameters as modules.

    Attributes
    ----------
    name : str
        Registry name.
    evals_per_step : int
        Denoiser evaluations per step beyond the one the rollout makes (Heun: 1).
    """

    name: str = "solver"
    evals_per_step: int = 0

    def eval_sigma(self, n: int, sigma: torch.Tensor) -> torch.Tensor:
        """Noise level at which to evaluate the denoiser at step ``n`` (default: ``sigma``)."""
        return sigma

    def step(self, ctx: StepContext) -> Step:  # pragma: no cover - abstract
        """Advance one step; see the module docstring."""
        raise NotImplementedError

    def config(self) -> dict:
        """Constructor keyword arguments that rebuild this solver (for checkpoints)."""
        return {}

    def param_groups(self, lr: float) -> list:
        """Optimizer parameter groups for training at base learning rate ``lr``."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def nfe(self, num_steps: int, afs: bool = False) -> int:
        """Denoiser evaluations of a ``num_steps``-step rollout."""
        return num_steps * (1 + self.evals_per_step) - int(afs)


class CountingDenoiser:
    """Wrap a denoiser, count its calls and cast its output to the state's dtype.

    The ODE state stays in the dtype the caller chose (float32 or float64) even when the network
    runs in lower precision.
    """

    def __init__(self, denoiser: Callable[..., torch.Tensor], cond: Any = None):
        self.denoiser = denoiser
        self.cond = cond
        self.calls = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Evaluate ``D(x, σ, cond)`` and count the call."""
        self.calls += 1
        return self.denoiser(x, sigma, self.cond).to(x.dtype)
