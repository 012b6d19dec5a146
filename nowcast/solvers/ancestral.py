"""Ancestral DDPM sampling: the stochastic reference sampler of discrete VP models.

Ho et al. (2020), as PreDiff's ``p_sample_loop`` and diffusers' ``DDPMScheduler`` with
``variance_type='fixed_small'``: from ``z_t``, predict ``ẑ₀``, take the posterior mean
``μ = (√ᾱ_{t'} β̂_t/(1−ᾱ_t)) ẑ₀ + (√α̂_t (1−ᾱ_{t'})/(1−ᾱ_t)) z_t`` with ``α̂_t = ᾱ_t/ᾱ_{t'}``,
``β̂_t = 1 − α̂_t`` (``t'`` the next timestep, ᾱ = 1 after the last), and add
``√β̃_t·n``, ``β̃_t = β̂_t (1−ᾱ_{t'})/(1−ᾱ_t)`` (clipped at 1e-20), except at the last step.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from .denoisers import VPDenoiser
from .schedules import vp_timesteps

__all__ = ["sample_ddpm"]


@torch.no_grad()
def sample_ddpm(denoiser: VPDenoiser, x_T: torch.Tensor, *, steps: Optional[int] = None,
                spacing: str = "leading", cond: Any = None,
                generator: Optional[torch.Generator] = None,
                noise_fn: Optional[Callable[[torch.Size], torch.Tensor]] = None,
                progress: bool = False, return_nfe: bool = False):
    """Ancestral sampling in VP space (``z_T ~ N(0, I)`` in, ``z_0`` out).

    Parameters
    ----------
    denoiser : VPDenoiser
        A discrete VP model adapted to σ-space; its ᾱ table defines the chain.
    x_T : torch.Tensor
        Initial VP-space state ``z_T`` (standard normal noise).
    steps : int, optional
        Number of steps (default: all T timesteps); fewer steps use ``spacing``.
    spacing : str
        Timestep spacing for ``steps < T`` (see :func:`~.schedules.vp_timesteps`).
    cond : Any
        Conditioning for the model.
    generator : torch.Generator, optional
        Source of the per-step noise (drawn with ``torch.randn`` in step order, none at the last
        step, as diffusers).
    noise_fn : callable, optional
        ``noise_fn(shape) -> tensor`` overriding ``generator`` (e.g. per-member generators).
    progress : bool
        Show a tqdm bar.
    return_nfe : bool
        Also return the number of denoiser evaluations.

    Returns
    -------
    torch.Tensor
        ``z_0`` in ``x_T``'s dtype (and the NFE when ``return_nfe``).
    """
    ac = denoiser.alphas_cumprod.to(torch.float64)
    T = len(ac)
    ts = vp_timesteps(steps or T, T, spacing)
    z = x_T.to(torch.float64)
    iterator = range(len(ts))
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(iterator, desc="ddpm", leave=False)
    for i in iterator:
        t = int(ts[i])
        a_t = ac[t]
        a_prev = ac[int(ts[i + 1])] if i + 1 < len(ts) else torch.ones((), dtype=torch.float64)
        sigma = ((1 - a_t) / a_t).sqrt()
        x0 = denoiser((z / a_t.sqrt()).to(x_T.dtype), sigma, cond).to(torch.float64)
        alpha_hat = a_t / a_prev
        beta_hat = 1 - alpha_hat
        mean = (a_prev.sqrt() * beta_hat / (1 - a_t)) * x0 + (alpha_hat.sqrt() * (1 - a_prev) / (1 - a_t)) * z
        if i + 1 < len(ts):
            var = (beta_hat * (1 - a_prev) / (1 - a_t)).clamp(min=1e-20)
            n = noise_fn(z.shape) if noise_fn is not None else torch.randn(
                z.shape, generator=generator, dtype=x_T.dtype, device=x_T.device)
            z = mean + var.sqrt() * n.to(torch.float64)
        else:
            z = mean
    return (z.to(x_T.dtype), len(ts)) if return_nfe else z.to(x_T.dtype)
