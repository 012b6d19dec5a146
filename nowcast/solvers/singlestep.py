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


def _probe(ctx: StepContext, sigma_probe: torch.Tensor) -> torch.Tensor:
    """Velocity at ``x_n + (σ_probe − σ_n)·d_n``, σ_probe (one extra denoiser evaluation)."""
    d = ctx.buffer[-1].d
    x_probe = ctx.x + (sigma_probe - ctx.sigma).to(ctx.x.dtype) * d
    return (x_probe - ctx.denoise(x_probe, sigma_probe)) / sigma_probe.to(ctx.x.dtype)


class _ProbeSolver(Solver):
    """A second-order single-step rule: one probe evaluation, then a combined direction."""

    evals_per_step = 1

    def probe_sigma(self, ctx: StepContext) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def combine(self, d: torch.Tensor, d_probe: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def step(self, ctx: StepContext) -> Step:  # noqa: D102
        d, s_next = ctx.buffer[-1].d, ctx.sigma_next
        h = s_next - ctx.sigma
        if float(s_next) == 0.0:  # a step to σ = 0 is Euler (EDM)
            return Step(ctx.x, d, h, s_next)
        return Step(ctx.x, self.combine(d, _probe(ctx, self.probe_sigma(ctx))), h, s_next)


class Heun(_ProbeSolver):
    """Heun's second-order method (EDM Algorithm 2, without churn): probe at σ_{n+1}, average."""

    name = "heun"

    def probe_sigma(self, ctx):  # noqa: D102
        return ctx.sigma_next

    def combine(self, d, d_probe):  # noqa: D102
        return (d + d_probe) / 2


class DPM2(_ProbeSolver):
    """DPM-Solver-2: probe at the geometric midpoint √(σ_n σ_{n+1}) (r = ½), step with it."""

    name = "dpm2"

    def probe_sigma(self, ctx):  # noqa: D102
        return torch.sqrt(ctx.sigma * ctx.sigma_next)

    def combine(self, d, d_probe):  # noqa: D102
        return d_probe
