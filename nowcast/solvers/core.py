"""The step-rule interface every solver implements, and the NFE-counting denoiser wrapper.

A solver is a rule that, at step n, sees the current state ``x_n``, the buffer of past evaluations
``(σ_k, x_k, D_k, d_k)`` (newest last, including the current one) and the nominal σ grid, and
returns ``x_{n+1} = x_n + h_n·u_n`` as a :class:`Step` (``x`` — the start state, possibly corrected
as UniPC does; ``u`` — the direction; ``h`` — the step; ``sigma_next`` — the σ reached). The loop
that evaluates the denoiser and calls the rule is :func:`nowcast.solvers.rollout.rollout`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

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
        ``denoise(x, sigma)`` — the counted denoiser with the conditioning (and the step's depth)
        bound, for solvers that need extra evaluations within a step (Heun, DPM-Solver-2).
    scratch : dict
        Per-rollout storage a solver may use between its steps (e.g. UniPC's corrector state).
    blocks : int, optional
        Blocks the denoiser ran at this step (a length-adaptive denoiser; ``None``: all of them).
    full_blocks : int, optional
        The denoiser's full depth (``None``: not length-adaptive).
    """

    n: int
    x: torch.Tensor
    grid: torch.Tensor
    buffer: list
    denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    scratch: dict
    blocks: Optional[int] = None
    full_blocks: Optional[int] = None

    @property
    def depth_fraction(self) -> float:
        """Share of the network this step ran (1.0 for a full-depth or fixed-depth denoiser)."""
        if self.blocks is None or not self.full_blocks:
            return 1.0
        return self.blocks / self.full_blocks

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
    """Wrap a denoiser, count its calls (and block-evaluations) and cast its output to the state's dtype.

    The ODE state stays in the dtype the caller chose (float32 or float64) even when the network
    runs in lower precision.

    A *length-adaptive* denoiser has an integer attribute ``full_blocks`` and accepts ``depth=b``
    (run ``b`` of its blocks); a *shortcut* denoiser has ``shortcut = True`` and accepts
    ``sigma_next=`` (the noise level the step lands on, for a step-size-conditioned network).
    Those keywords are passed only when set, so every other denoiser is called as
    ``denoiser(x, sigma, cond)``. Block-evaluations add the blocks each call ran (the full depth
    when no depth is given); they are ``None`` for a denoiser that is not length-adaptive.
    """

    def __init__(self, denoiser: Callable[..., torch.Tensor], cond: Any = None):
        self.denoiser = denoiser
        self.cond = cond
        self.calls = 0
        self.full_blocks: Optional[int] = getattr(denoiser, "full_blocks", None)
        self.shortcut = bool(getattr(denoiser, "shortcut", False))
        self.block_evaluations: Optional[int] = 0 if self.full_blocks else None

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, depth: Optional[int] = None,
                 sigma_next: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Evaluate ``D(x, σ, cond)`` (at ``depth`` blocks; towards ``sigma_next`` for a shortcut
        denoiser) and count the call."""
        kwargs = {}
        if depth is not None:
            if not self.full_blocks:
                raise ValueError("a depth was given but the denoiser is not length-adaptive "
                                 "(it has no full_blocks)")
            kwargs["depth"] = int(depth)
        if sigma_next is not None and self.shortcut:
            kwargs["sigma_next"] = sigma_next
        self.calls += 1
        if self.block_evaluations is not None:
            self.block_evaluations += int(depth) if depth is not None else self.full_blocks
        return self.denoiser(x, sigma, self.cond, **kwargs).to(x.dtype)
