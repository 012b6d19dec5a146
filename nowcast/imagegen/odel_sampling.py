"""The length-adaptive DiT (:mod:`.odel`) on the solver core: a denoiser that runs any number of blocks
and takes shortcut steps, and sampling with a schedule of (σ_n, blocks_n).

:class:`ODELDenoiser` is a :class:`~nowcast.solvers.denoisers.FlowDenoiser`: in EDM space
``t = σ̃/(1+σ̃)``, ``x_t = x̃/(1+σ̃)`` and ``D = x_t − t·s(x_t, t, Δt, depth)``. It is
*length-adaptive* (``full_blocks``; the rollout passes each step's ``depth``) and a *shortcut*
denoiser: given the σ the step lands on it asks the network for the average velocity over that
step, ``Δt = t_n − t_{n+1}``. Euler in EDM space is exactly the flow-matching Euler step
``x_{t−Δt} = x_t − Δt·v``, so Euler with this denoiser is the shortcut model's own sampler; any
other solver of the core (iPNDM, DyWeight, SpanLift …) runs on it as well, with ``Δt = 0`` (the
instantaneous velocity) for a plain flow model (``shortcut=False``).

Cost is counted by the rollout: NFE, block-evaluations (the blocks each evaluation ran) and
seconds.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..solvers.core import Solver
from ..solvers.matching import Batch
from ..solvers.denoisers import FlowDenoiser, flow_t_to_sigma, sigma_to_flow_t
from ..solvers.registry import get_solver
from ..solvers.rollout import RolloutResult, rollout
from .flow import T_MAX

__all__ = ["ODELDenoiser", "uniform_flow_sigmas", "sample_odel", "sample_shortcut", "TeacherBatches"]


class ODELDenoiser(FlowDenoiser):
    """A length-adaptive flow network ``s(x_t, t, Δt, depth, y)`` as a denoiser of the solver core.

    Parameters
    ----------
    model : nn.Module
        Called as ``model(x_t, t, dt, depth=…, y=…)`` with a ``cfg.blocks`` depth
        (:class:`~.odel.LengthAdaptiveDiT`).
    shortcut : bool
        Condition each evaluation on the step it is taken for (a shortcut model); else ``Δt = 0``.
    """

    def __init__(self, model: torch.nn.Module, shortcut: bool = True):
        super().__init__(model)
        self.full_blocks = int(model.cfg.blocks)
        self.shortcut = bool(shortcut)

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, cond=None, depth: int | None = None,
                 sigma_next: torch.Tensor | None = None) -> torch.Tensor:
        """The network's (average) velocity over the step towards ``sigma_next`` at ``depth`` blocks."""
        dt = torch.zeros_like(t)
        if sigma_next is not None and self.shortcut:
            t_next = sigma_to_flow_t(torch.as_tensor(sigma_next, dtype=torch.float64, device=t.device))
            dt = (t - t_next).clamp(min=0.0)
        dtype = next(self.model.parameters(), torch.empty(0, dtype=x_t.dtype)).dtype
        return self.model(x_t.to(dtype), t.to(dtype), dt.to(dtype), depth=depth, y=cond)


def uniform_flow_sigmas(steps: int) -> torch.Tensor:
    """The σ̃ grid of ``steps`` equal flow-time steps from ``t = 1`` (clamped to ``T_MAX``) to 0."""
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64).clamp(max=T_MAX)
    return flow_t_to_sigma(t)


def sample_odel(model: torch.nn.Module, noise: torch.Tensor, sigmas: torch.Tensor, solver: Solver,
                blocks: int | Sequence[int] | None = None, y: torch.Tensor | None = None,
                shortcut: bool = True, afs: bool = False) -> tuple:
    """Noise → images with any solver of the core on the length-adaptive network.

    Parameters
    ----------
    model : nn.Module
        The network (:class:`~.odel.LengthAdaptiveDiT`).
    noise : torch.Tensor
        ``(B, C, H, W)`` standard normal noise (the flow's ``x`` at ``t = 1``).
    sigmas : torch.Tensor
        EDM σ̃ grid ending at 0 (e.g. :func:`uniform_flow_sigmas`).
    solver : Solver
        Any solver of the core.
    blocks : int or sequence of int, optional
        Blocks per step (default: all).
    y : torch.Tensor, optional
        Class labels.
    shortcut : bool
        Condition evaluations on their step size (the time shortcut).
    afs : bool
        Analytic first step.

    Returns
    -------
    tuple
        ``(images, RolloutResult)`` — images in the dtype of ``noise``; the result carries NFE,
        block-evaluations and seconds.
    """
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    t0 = float(sigma_to_flow_t(sigmas[0]))
    t_end = float(sigma_to_flow_t(sigmas[-1]))
    x = noise.to(torch.float64) / (1 - t0)
    res: RolloutResult = rollout(ODELDenoiser(model, shortcut), x, sigmas, solver, cond=y, blocks=blocks, afs=afs)
    return (res.x * (1 - t_end)).to(noise.dtype), res


def sample_shortcut(model: torch.nn.Module, noise: torch.Tensor, steps: int, blocks=None,
                    y: torch.Tensor | None = None) -> tuple:
    """The shortcut model's own sampler: ``steps`` equal steps from ``t = 1`` to 0, each one evaluation
    of the average velocity over the step (Euler on the core).

    Parameters
    ----------
    model : nn.Module
        The network.
    noise : torch.Tensor
        ``(B, C, H, W)`` standard normal.
    steps : int
        Time steps.
    blocks : int or sequence of int, optional
        Blocks per step (one value for all, or one per step, e.g. fewer at high noise); default: all.
    y : torch.Tensor, optional
        Class labels.

    Returns
    -------
    tuple
        ``(samples, RolloutResult)``.
    """
    with torch.no_grad():
        return sample_odel(model, noise, uniform_flow_sigmas(steps), get_solver("euler"), blocks, y)


class TeacherBatches:
    """Fresh (initial state, teacher endpoint) batches for endpoint matching on the length-adaptive
    network: noise at ``t = 1`` (σ̃ ≈ 10⁹, so the states are float64), the teacher the same network
    at full depth with ``teacher_steps`` shortcut Euler steps.

    Parameters
    ----------
    model : nn.Module
        The network.
    teacher_steps : int
        Steps of the teacher.
    """

    def __init__(self, model: torch.nn.Module, teacher_steps: int = 32):
        self.den = ODELDenoiser(model)
        self.shape = tuple(model.cfg.shape)
        self.grid = uniform_flow_sigmas(teacher_steps)
        self.euler = get_solver("euler")

    @torch.no_grad()
    def __call__(self, batch_size: int, generator: torch.Generator) -> Batch:
        """``batch_size`` new pairs."""
        x = torch.randn((batch_size,) + self.shape, generator=generator, dtype=torch.float64) * float(self.grid[0])
        return Batch(x, rollout(self.den, x, self.grid, self.euler).x)
