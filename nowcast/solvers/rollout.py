"""The one rollout loop every solver runs in.

At step n the loop evaluates the denoiser once at the current state (or, with the analytic first
step (AFS) at n = 0, uses ``d₀ = x₀/√(1+σ₀²)`` instead), pushes ``(σ_n, x_n, D_n, d_n)`` onto the
buffer and asks the solver's step rule for ``x_{n+1}``. NFE is counted by wrapping the denoiser.
Optionally each step is gradient-checkpointed (training through long rollouts) and a callback
sees every step (trajectory recording, span analysis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from torch.utils.checkpoint import checkpoint as _checkpoint

from .core import CountingDenoiser, Entry, Solver, StepContext

__all__ = ["rollout", "sample", "RolloutResult", "afs_direction"]


@dataclass
class RolloutResult:
    """Endpoint of a rollout and its cost."""

    x: torch.Tensor
    nfe: int
    sigma: torch.Tensor
    steps: list = field(default_factory=list)


def afs_direction(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Analytic first step direction ``d₀ = x₀/√(1+σ₀²)`` (AMED; implies D ≈ 0, the data mean)."""
    return x / torch.sqrt(1 + sigma ** 2).to(x.dtype)


def _advance(solver: Solver, denoise: CountingDenoiser, n: int, x: torch.Tensor, sigma: torch.Tensor,
             grid: torch.Tensor, buffer: list, scratch: dict, afs: bool):
    """One loop iteration as a pure function of its inputs: returns (step, entry, scratch)."""
    scratch = dict(scratch)
    if afs and n == 0:
        d = afs_direction(x, sigma)
        D = x - sigma.to(x.dtype) * d
    else:
        D = denoise(x, solver.eval_sigma(n, sigma))
        d = (x - D) / sigma.to(x.dtype)
    entry = Entry(sigma, x, D, d)
    ctx = StepContext(n, x, grid, list(buffer) + [entry], denoise, scratch)
    return solver.step(ctx), entry, scratch


def rollout(denoiser: Callable[..., torch.Tensor], x: torch.Tensor, sigmas: torch.Tensor,
            solver: Solver, *, cond: Any = None, afs: bool = False,
            callback: Optional[Callable[[dict], None]] = None, checkpoint: bool = False,
            keep_steps: bool = False) -> RolloutResult:
    """Integrate the PF-ODE from ``sigmas[0]`` to ``sigmas[-1]`` with a solver.

    Parameters
    ----------
    denoiser : callable
        ``denoiser(x, sigma, cond) -> x̂₀`` in EDM σ-space (a :class:`~.denoisers.Denoiser`).
    x : torch.Tensor
        Initial state at ``sigmas[0]`` (e.g. ``sigmas[0] * noise``). Its dtype is the dtype of the
        ODE state throughout (use float32 or float64).
    sigmas : torch.Tensor
        Decreasing σ grid with ``K + 1`` points (K steps).
    solver : Solver
        Step rule (base or learned).
    cond : Any
        Conditioning passed to the denoiser.
    afs : bool
        Replace the first evaluation with the analytic first step (saves one NFE).
    callback : callable, optional
        Called after every step with ``{'n', 'x', 'sigma', 'denoised', 'x_next', 'sigma_next',
        'step', 'buffer'}``.
    checkpoint : bool
        Gradient-checkpoint every step (recompute in backward; saves memory when training).
    keep_steps : bool
        Keep the :class:`~.core.Step` of every step in the result.

    Returns
    -------
    RolloutResult
        Endpoint ``x``, the number of denoiser evaluations ``nfe`` and the final σ.
    """
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64, device=x.device)
    if sigmas.ndim != 1 or len(sigmas) < 2:
        raise ValueError("sigmas must be a 1-D grid with at least two points")
    if not bool((sigmas[1:] < sigmas[:-1]).all()):
        raise ValueError("sigmas must be strictly decreasing")
    if not x.is_floating_point():
        raise TypeError("the state x must be a floating-point tensor")
    counter = CountingDenoiser(denoiser, cond)
    buffer: list = []
    scratch: dict = {}
    sigma = sigmas[0]
    steps = []
    for n in range(len(sigmas) - 1):
        if checkpoint and torch.is_grad_enabled():
            step, entry, scratch = _checkpoint(
                _advance, solver, counter, n, x, sigma, sigmas, tuple(buffer), scratch, afs,
                use_reentrant=False)
        else:
            step, entry, scratch = _advance(solver, counter, n, x, sigma, sigmas, tuple(buffer), scratch,
                                            afs)
        buffer.append(entry)
        x_next = step.x_next
        if callback is not None:
            callback({"n": n, "x": step.x, "sigma": sigma, "denoised": entry.denoised,
                      "x_next": x_next, "sigma_next": step.sigma_next, "step": step,
                      "buffer": list(buffer)})
        if keep_steps:
            steps.append(step)
        x, sigma = x_next, step.sigma_next
    return RolloutResult(x=x, nfe=counter.calls, sigma=sigma, steps=steps)


def sample(denoiser: Callable[..., torch.Tensor], noise: torch.Tensor, sigmas: torch.Tensor,
           solver: Solver, **kwargs) -> torch.Tensor:
    """Draw samples: start at ``sigmas[0]·noise`` and return the rollout endpoint.

    Parameters
    ----------
    denoiser, sigmas, solver, **kwargs
        As :func:`rollout`.
    noise : torch.Tensor
        Standard normal noise; its dtype is the state dtype.

    Returns
    -------
    torch.Tensor
        Samples at ``sigmas[-1]``.
    """
    s0 = float(torch.as_tensor(sigmas, dtype=torch.float64)[0])
    if not math.isfinite(s0):
        raise ValueError("sigmas[0] must be finite")
    return rollout(denoiser, noise * s0, sigmas, solver, **kwargs).x
