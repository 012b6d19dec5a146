"""Time grids (σ schedules) for the solvers.

Every function returns a 1-D float64 tensor of decreasing noise levels in EDM σ-space with
``steps + 1`` entries: the solver takes ``steps`` steps from ``sigmas[0]`` to ``sigmas[-1]``.
Unless ``append_zero`` is set the grid ends at σ_min (the few-step literature's convention: no
final denoising step to σ = 0).

Functions
---------
edm_sigmas
    Karras et al.'s polynomial grid ``(σ_max^{1/ρ} + i/K (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ``.
logsnr_sigmas
    Uniform in log-SNR ``λ = −ln σ``.
time_uniform_sigmas
    Uniform (with warping ρ) in VP time, as DEIS/AMED.
vp_timesteps, vp_sigmas
    DDIM/diffusers timestep spacings (``leading``, ``trailing``, ``linspace``) of a discrete VP model.
flow_times, flow_sigmas
    Flow-matching times with a (static) shift, and their EDM-space σ.
get_schedule
    Registry lookup by name.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..foundation.registry import lookup

__all__ = [
    "edm_sigmas",
    "logsnr_sigmas",
    "time_uniform_sigmas",
    "vp_timesteps",
    "vp_sigmas",
    "flow_times",
    "flow_sigmas",
    "get_schedule",
    "SCHEDULES",
    "flow_shift",
]


def _check_steps(steps: int) -> None:
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")


def _finish(sigmas: torch.Tensor, append_zero: bool) -> torch.Tensor:
    if append_zero:
        sigmas = torch.cat([sigmas, sigmas.new_zeros(1)])
    return sigmas


def edm_sigmas(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
               append_zero: bool = False) -> torch.Tensor:
    """EDM polynomial grid (Karras et al. 2022, Eq. 5).

    Parameters
    ----------
    steps : int
        Number of solver steps K; the grid has K + 1 points.
    sigma_min, sigma_max : float
        End points.
    rho : float
        Warping exponent (7 in EDM).
    append_zero : bool
        Append a final σ = 0.

    Returns
    -------
    torch.Tensor
        Float64 tensor of shape ``(K + 1,)`` (``K + 2`` with ``append_zero``).
    """
    _check_steps(steps)
    i = torch.arange(steps + 1, dtype=torch.float64) / steps
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return _finish((a + i * (b - a)) ** rho, append_zero)


def logsnr_sigmas(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
                  append_zero: bool = False) -> torch.Tensor:
    """Grid uniform in log-SNR ``λ = −ln σ`` (DPM-Solver, UniPC)."""
    _check_steps(steps)
    lam = torch.linspace(-math.log(sigma_max), -math.log(sigma_min), steps + 1, dtype=torch.float64)
    return _finish((-lam).exp(), append_zero)


def _vp_beta_fit(sigma_min: float, sigma_max: float, eps_s: float):
    beta_d = 2 * (math.log(sigma_min ** 2 + 1) / eps_s - math.log(sigma_max ** 2 + 1)) / (eps_s - 1)
    beta_min = math.log(sigma_max ** 2 + 1) - 0.5 * beta_d
    return beta_d, beta_min


def time_uniform_sigmas(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
                        rho: float = 1.0, eps_s: float = 1e-3, append_zero: bool = False) -> torch.Tensor:
    """Grid uniform (warped by ρ) in continuous VP time ``t ∈ [ε_s, 1]``.

    ``σ(t) = √(exp(½β_d t² + β_min t) − 1)`` with ``β_d, β_min`` fitted so that ``σ(ε_s) = σ_min``
    and ``σ(1) = σ_max``; ``t_i = (1 + i/K (ε_s^{1/ρ} − 1))^ρ`` (diff-sampler's ``time_uniform``).
    """
    _check_steps(steps)
    beta_d, beta_min = _vp_beta_fit(sigma_min, sigma_max, eps_s)
    i = torch.arange(steps + 1, dtype=torch.float64) / steps
    t = (1 + i * (eps_s ** (1 / rho) - 1)) ** rho
    return _finish((torch.exp(0.5 * beta_d * t ** 2 + beta_min * t) - 1).sqrt(), append_zero)


def vp_timesteps(steps: int, num_train_timesteps: int = 1000, spacing: str = "leading",
                 steps_offset: int = 0) -> torch.Tensor:
    """Integer timesteps of a discrete VP model, newest (noisiest) first, as diffusers spaces them.

    Parameters
    ----------
    steps : int
        Number of sampling steps.
    num_train_timesteps : int
        T of the model.
    spacing : {'leading', 'trailing', 'linspace'}
        ``leading``: ``arange(K)·(T//K) + offset`` (DDIM default); ``trailing``:
        ``round(arange(T, 0, −T/K)) − 1``; ``linspace``: ``round(linspace(0, T−1, K))``.
    steps_offset : int
        Offset added with ``leading`` spacing.

    Returns
    -------
    torch.Tensor
        int64 tensor of ``steps`` timesteps in decreasing order.
    """
    _check_steps(steps)
    T = num_train_timesteps
    if steps > T:
        raise ValueError(f"steps ({steps}) cannot exceed num_train_timesteps ({T})")
    if spacing == "leading":
        ts = (torch.arange(steps, dtype=torch.float64) * (T // steps)).round() + steps_offset
    elif spacing == "trailing":
        ts = torch.arange(T, 0, -T / steps, dtype=torch.float64).round() - 1
    elif spacing == "linspace":
        ts = torch.linspace(0, T - 1, steps, dtype=torch.float64).round()
    else:
        raise ValueError(f"unknown timestep spacing {spacing!r}; available: ['leading', 'trailing', 'linspace']")
    return ts.to(torch.int64).sort(descending=True).values


def vp_sigmas(alphas_cumprod: torch.Tensor, steps: int, spacing: str = "leading",
              steps_offset: int = 0, final: str = "zero") -> torch.Tensor:
    """EDM-space grid of a discrete VP model at DDIM timesteps.

    Parameters
    ----------
    alphas_cumprod : torch.Tensor
        ``(T,)`` ᾱ table of the model.
    steps : int
        Number of solver steps K.
    spacing, steps_offset
        See :func:`vp_timesteps`.
    final : {'zero', 'alpha0', 'none'}
        Last grid point: σ = 0 (``set_alpha_to_one=True``: the last step denoises fully), the σ of
        timestep 0 (``set_alpha_to_one=False``), or none (the grid ends at the last timestep, K − 1
        steps).

    Returns
    -------
    torch.Tensor
        Float64 σ̃ grid ``√((1−ᾱ)/ᾱ)`` at the timesteps, followed by the final point.
    """
    ac = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
    ts = vp_timesteps(steps, len(ac), spacing, steps_offset)
    sig = ((1 - ac[ts]) / ac[ts]).sqrt()
    if final == "zero":
        return torch.cat([sig, sig.new_zeros(1)])
    if final == "alpha0":
        return torch.cat([sig, ((1 - ac[:1]) / ac[:1]).sqrt()])
    if final == "none":
        return sig
    raise ValueError(f"unknown final {final!r}; available: ['zero', 'alpha0', 'none']")


def flow_shift(t, shift: float):
    """The static time shift of flow-matching models, ``t ↦ s·t/(1 + (s−1)·t)`` (SD3/SANA/FLUX
    ``shift``), on numbers, numpy arrays or tensors alike."""
    return shift * t / (1 + (shift - 1) * t)


def flow_times(steps: int, shift: float = 1.0, t_max: float = 1.0, t_min: float = 0.0) -> torch.Tensor:
    """Flow-matching times ``linspace(t_max, t_min)`` with a static shift, then a final 0.

    The shift maps ``t ↦ s·t/(1 + (s−1)·t)`` (SD3/SANA/FLUX ``shift``); ``t_min > 0`` keeps the
    last time off zero, as SANA's ``linspace(0.999, 0)`` grids do before the appended 0.

    Returns
    -------
    torch.Tensor
        Float64 tensor of ``steps + 1`` decreasing times ending at 0.
    """
    _check_steps(steps)
    t = flow_shift(torch.linspace(t_max, t_min, steps + 1, dtype=torch.float64)[:-1], shift)
    return torch.cat([t, t.new_zeros(1)])


def flow_sigmas(steps: int, shift: float = 1.0, t_max: float = 0.999, t_min: float = 0.0) -> torch.Tensor:
    """EDM-space ``σ̃ = t/(1−t)`` of :func:`flow_times`; ``t_max < 1`` keeps σ̃ finite."""
    t = flow_times(steps, shift, t_max, t_min)
    if t[0] >= 1:
        raise ValueError("flow_sigmas needs t_max < 1 (σ̃ = t/(1−t) is infinite at t = 1)")
    return t / (1 - t)


SCHEDULES: dict[str, Callable[..., torch.Tensor]] = {
    "edm": edm_sigmas,
    "polynomial": edm_sigmas,
    "logsnr": logsnr_sigmas,
    "time_uniform": time_uniform_sigmas,
    "flow": flow_sigmas,
}


def get_schedule(name: str) -> Callable[..., torch.Tensor]:
    """Look up a σ-grid function by name (``edm``/``polynomial``, ``logsnr``, ``time_uniform``, ``flow``).

    Raises
    ------
    ValueError
        For an unknown name, listing the available ones.
    """
    return lookup(SCHEDULES, "schedule", name)
