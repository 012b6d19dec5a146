"""Single-step base solvers in EDM σ-space: Euler (≡ DDIM η=0), Heun, DPM-Solver-2.

Formulas (reference: Karras et al. 2022, Alg. 1–2; Lu et al. 2022):

* Euler: ``x_{n+1} = x_n + h_n d_n``.
* Heun: ``x' = x_n + h_n d_n``, ``d' = d(x', σ_{n+1})``, ``x_{n+1} = x_n + h_n (d_n + d')/2``;
  every step is corrected (diff-sampler convention) except a step to σ = 0, which is Euler (EDM).
* DPM-Solver-2 (midpoint, r = ½): ``t_m = √(σ_n σ_{n+1})``, ``x_m = x_n + (t_m − σ_n) d_n``,
  ``x_{n+1} = x_n + h_n d(x_m, t_m)``.
"""

from __future__ import annotations

import torch

from .core import Solver, Step, StepContext

__all__ = ["Euler", "Heun", "DPM2"]


class Euler(Solver):
    """Euler's method; on a VP model's grid it is DDIM with η = 0, exactly."""

    name = "euler"

    def step(self, ctx: StepContext) -> Step:  # noqa: D102
        h = ctx.sigma_next - ctx.sigma
        return Step(ctx.x, ctx.buffer[-1].d, h, ctx.sigma_next)


class Heun(Solver):
    """Heun's second-order method (EDM Algorithm 2, without churn)."""

    name = "heun"
    evals_per_step = 1

    def step(self, ctx: StepContext) -> Step:  # noqa: D102
        d = ctx.buffer[-1].d
        s, s_next = ctx.sigma, ctx.sigma_next
        h = s_next - s
        if float(s_next) == 0.0:
            return Step(ctx.x, d, h, s_next)
        x_pred = ctx.x + h.to(ctx.x.dtype) * d
        d_pred = (x_pred - ctx.denoise(x_pred, s_next)) / s_next.to(ctx.x.dtype)
        return Step(ctx.x, (d + d_pred) / 2, h, s_next)


class DPM2(Solver):
    """DPM-Solver-2 with the geometric midpoint (r = ½)."""

    name = "dpm2"
    evals_per_step = 1

    def step(self, ctx: StepContext) -> Step:  # noqa: D102
        d = ctx.buffer[-1].d
        s, s_next = ctx.sigma, ctx.sigma_next
        h = s_next - s
        if float(s_next) == 0.0:
            return Step(ctx.x, d, h, s_next)
        t_mid = torch.sqrt(s * s_next)
        x_mid = ctx.x + (t_mid - s).to(ctx.x.dtype) * d
        d_mid = (x_mid - ctx.denoise(x_mid, t_mid)) / t_mid.to(ctx.x.dtype)
        return Step(ctx.x, d_mid, h, s_next)
