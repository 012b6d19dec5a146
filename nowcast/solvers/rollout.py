"""The one rollout loop every solver runs in.

At step n the loop evaluates the denoiser once at the current state (or, with the analytic first
step (AFS) at n = 0, uses ``d₀ = x₀/√(1+σ₀²)`` instead), pushes ``(σ_n, x_n, D_n, d_n)`` onto the
buffer and asks the solver's step rule for ``x_{n+1}``. NFE is counted by wrapping the denoiser.
A length-adaptive denoiser may run a different number of blocks at each step (``blocks``): the
rollout then also reports block-evaluations (its cost in network depth) beside the NFE, and
the wall time.
Optionally each step is gradient-checkpointed (training through long rollouts) and a callback
sees every step (trajectory recording, span analysis).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch
from torch.utils.checkpoint import checkpoint as _checkpoint

from .core import CountingDenoiser, Entry, Solver, StepContext

__all__ = ["rollout", "sample", "RolloutResult", "afs_direction", "block_schedule"]


@dataclass
class RolloutResult:
    """Endpoint of a rollout and its cost.

    Attributes
    ----------
    x : torch.Tensor
        The endpoint.
    nfe : int
        Denoiser evaluations.
    sigma : torch.Tensor
        The σ reached.
    steps : list
        The :class:`~.core.Step` of every step (``keep_steps``).
    block_evaluations : int, optional
        Blocks run over all evaluations (per sample); ``None`` for a denoiser that is not
        length-adaptive.
    seconds : float
        Wall time of the rollout.
    blocks : list
        Blocks per step (``None`` entries: full depth).
    """

    x: torch.Tensor
    nfe: int
    sigma: torch.Tensor
    steps: list = field(default_factory=list)
    block_evaluations: Optional[int] = None
    seconds: float = 0.0
    blocks: list = field(default_factory=list)


def block_schedule(blocks: int | Sequence[int] | None, num_steps: int,
                   full_blocks: Optional[int]) -> list:
    """Blocks per step of a ``num_steps``-step rollout, checked against the denoiser's depth.

    Parameters
    ----------
    blocks : int, sequence of int or None
        One depth for every step, one per step (e.g. fewer blocks at high noise), or ``None``
        (full depth at every step).
    num_steps : int
        Steps of the rollout.
    full_blocks : int, optional
        The denoiser's full depth (``None``: not length-adaptive).

    Returns
    -------
    list
        ``num_steps`` entries, ``None`` where the full network runs.
    """
    if blocks is None:
        return [None] * num_steps
    if not full_blocks:
        raise ValueError("blocks per step need a length-adaptive denoiser (one with full_blocks)")
    schedule = [blocks] * num_steps if isinstance(blocks, int) else [int(b) for b in blocks]
    if len(schedule) != num_steps:
        raise ValueError(f"blocks gives {len(schedule)} values for {num_steps} steps")
    bad = [b for b in schedule if not 1 <= b <= full_blocks]
    if bad:
        raise ValueError(f"blocks must lie in 1 … {full_blocks}, got {bad[0]}")
    return schedule


def afs_direction(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Analytic first step direction ``d₀ = x₀/√(1+σ₀²)`` (AMED; implies D ≈ 0, the data mean)."""
    return x / torch.sqrt(1 + sigma ** 2).to(x.dtype)


def _advance(solver: Solver, counter: CountingDenoiser, n: int, x: torch.Tensor, sigma: torch.Tensor,
             grid: torch.Tensor, buffer: list, scratch: dict, afs: bool, blocks: Optional[int]):
    """One loop iteration as a pure function of its inputs: returns (step, entry, scratch)."""
    scratch = dict(scratch)
    denoise = counter if blocks is None else functools.partial(counter, depth=blocks)
    if afs and n == 0:
        d = afs_direction(x, sigma)
        D = x - sigma.to(x.dtype) * d
    else:
        D = denoise(x, solver.eval_sigma(n, sigma), sigma_next=grid[n + 1])
        d = (x - D) / sigma.to(x.dtype)
    entry = Entry(sigma, x, D, d)
    ctx = StepContext(n, x, grid, list(buffer) + [entry], denoise, scratch, blocks, counter.full_blocks)
    return solver.step(ctx), entry, scratch


def rollout(denoiser: Callable[..., torch.Tensor], x: torch.Tensor, sigmas: torch.Tensor,
            solver: Solver, *, cond: Any = None, afs: bool = False,
            callback: Optional[Callable[[dict], None]] = None, checkpoint: bool = False,
            keep_steps: bool = False, blocks: int | Sequence[int] | None = None) -> RolloutResult:
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
    blocks : int, sequence of int or None
        Blocks the denoiser runs at each step (a length-adaptive denoiser only; see
        :func:`block_schedule`); extra evaluations within a step (Heun) run at the step's depth.

    Returns
    -------
    RolloutResult
        Endpoint ``x``, the number of denoiser evaluations ``nfe``, the final σ, the
        block-evaluations and the wall time.
    """
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64, device=x.device)
    if sigmas.ndim != 1 or len(sigmas) < 2:
        raise ValueError("sigmas must be a 1-D grid with at least two points")
    if not bool((sigmas[1:] < sigmas[:-1]).all()):
        raise ValueError("sigmas must be strictly decreasing")
    if not x.is_floating_point():
        raise TypeError("the state x must be a floating-point tensor")
    counter = CountingDenoiser(denoiser, cond)
    schedule = block_schedule(blocks, len(sigmas) - 1, counter.full_blocks)
    start = time.perf_counter()
    buffer: list = []
    scratch: dict = {}
    sigma = sigmas[0]
    steps = []
    for n in range(len(sigmas) - 1):
        if checkpoint and torch.is_grad_enabled():
            step, entry, scratch = _checkpoint(
                _advance, solver, counter, n, x, sigma, sigmas, tuple(buffer), scratch, afs, schedule[n],
                use_reentrant=False)
        else:
            step, entry, scratch = _advance(solver, counter, n, x, sigma, sigmas, tuple(buffer), scratch,
                                            afs, schedule[n])
        buffer.append(entry)
        x_next = step.x_next
        if callback is not None:
            callback({"n": n, "x": step.x, "sigma": sigma, "denoised": entry.denoised,
                      "x_next": x_next, "sigma_next": step.sigma_next, "step": step,
                      "buffer": list(buffer)})
        if keep_steps:
            steps.append(step)
        x, sigma = x_next, step.sigma_next
    return RolloutResult(x=x, nfe=counter.calls, sigma=sigma, steps=steps,
                         block_evaluations=counter.block_evaluations, seconds=time.perf_counter() - start,
                         blocks=schedule)


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
