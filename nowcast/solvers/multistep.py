"""Multistep base solvers in EDM σ-space: iPNDM, DPM-Solver++ (2M/3M), UniPC (bh1/bh2).

All reuse the buffer of past evaluations instead of spending extra NFE:

* iPNDM: fixed Adams–Bashforth coefficients over the last ≤ 4 velocities ``d`` with warm start
  (order ``min(max_order, n+1)``); exact AB only on a uniform σ grid (Zhang & Chen 2023).
* DPM-Solver++ multistep in data-prediction form with log-SNR ``λ = −ln σ`` (Lu et al. 2022);
  ``lower_order_final`` uses order ``min(order, K − n)``; a step to σ = 0 is first order.
* UniPC with B(h) = h (``bh1``) or e^h − 1 (``bh2``), predictor and corrector of the same order as
  diffusers' ``UniPCMultistepScheduler(predict_x0=True)``; the corrector of step n−1 runs when
  step n's evaluation arrives, so it costs no NFE (Zhao et al. 2023).
"""

from __future__ import annotations


import torch

from .core import Solver, Step, StepContext

__all__ = ["IPNDM", "DPMSolverPP", "UniPC", "AB_COEFFS"]

#: Adams–Bashforth coefficients, newest velocity first.
AB_COEFFS = {
    1: (1.0,),
    2: (3 / 2, -1 / 2),
    3: (23 / 12, -16 / 12, 5 / 12),
    4: (55 / 24, -59 / 24, 37 / 24, -9 / 24),
}


def _order(requested: int, ctx: StepContext, lower_order_final: bool) -> int:
    p = min(requested, len(ctx.buffer))
    if lower_order_final:
        p = min(p, ctx.num_steps - ctx.n)
    if float(ctx.sigma_next) == 0.0:
        p = 1
    return max(p, 1)


def _lam(sigma: torch.Tensor) -> torch.Tensor:
    return -torch.log(sigma.to(torch.float64))


class IPNDM(Solver):
    """iPNDM: fixed-coefficient Adams–Bashforth of order ≤ ``max_order`` with warm start.

    Parameters
    ----------
    max_order : int
        1 to 4 (4 is the diff-sampler default; DyWeight's initialisation is order 3).
    """

    name = "ipndm"

    def __init__(self, max_order: int = 4):
        super().__init__()
        if max_order not in AB_COEFFS:
            raise ValueError(f"max_order must be 1, 2, 3 or 4, got {max_order}")
        self.max_order = max_order

    def config(self) -> dict:  # noqa: D102
        return {"max_order": self.max_order}

    def step(self, ctx: StepContext) -> Step:  # noqa: D102
        p = min(self.max_order, len(ctx.buffer))
        coeffs = AB_COEFFS[p]
        u = sum(c * e.d for c, e in zip(coeffs, reversed(ctx.buffer[-p:])))
        return Step(ctx.x, u, ctx.sigma_next - ctx.sigma, ctx.sigma_next)


class DPMSolverPP(Solver):
    """DPM-Solver++ multistep (data prediction), order 1, 2 (2M) or 3 (3M).

    Parameters
    ----------
    order : int
        1, 2 or 3.
    lower_order_final : bool
        Lower the order over the last steps (``min(order, K − n)``), as diff-sampler and diffusers
        do for few steps.
    """

    name = "dpmpp"

    def __init__(self, order: int = 3, lower_order_final: bool = True):
        super().__init__()
        if order not in (1, 2, 3):
            raise ValueError(f"order must be 1, 2 or 3, got {order}")
        self.order = order
        self.lower_order_final = lower_order_final

    def config(self) -> dict:  # noqa: D102
        return {"order": self.order, "lower_order_final": self.lower_order_final}

    def step(self, ctx: StepContext) -> Step:  # noqa: D102
        p = _order(self.order, ctx, self.lower_order_final)
        buf = ctx.buffer
        s, s_next = ctx.sigma.to(torch.float64), ctx.sigma_next
        ratio = s_next / s
        h = _lam(s_next) - _lam(s)
        D0 = buf[-1].denoised
        if p == 1:
            mix = D0
        elif p == 2:
            r = (_lam(s) - _lam(buf[-2].sigma)) / h
            mix = (1 + 1 / (2 * r)) * D0 - (1 / (2 * r)) * buf[-2].denoised
        else:
            h0 = _lam(s) - _lam(buf[-2].sigma)
            h1 = _lam(buf[-2].sigma) - _lam(buf[-3].sigma)
            r0, r1 = h0 / h, h1 / h
            delta0 = (D0 - buf[-2].denoised) / r0
            delta1 = (buf[-2].denoised - buf[-3].denoised) / r1
            D1 = delta0 + r0 / (r0 + r1) * (delta0 - delta1)
            D2 = (delta0 - delta1) / (r0 + r1)
            phi1 = torch.expm1(-h)
            phi2 = phi1 / h + 1
            phi3 = phi2 / h - 0.5
            x_next = ratio * ctx.x - phi1 * D0 + phi2 * D1 - phi3 * D2
            return _as_step(ctx, x_next)
        x_next = ratio * ctx.x + (1 - ratio) * mix
        return _as_step(ctx, x_next)


def _as_step(ctx: StepContext, x_next: torch.Tensor, x_start: torch.Tensor | None = None) -> Step:
    """Express an explicit ``x_next`` as ``x + h·u`` on the nominal grid."""
    x0 = ctx.x if x_start is None else x_start
    h = ctx.sigma_next - ctx.sigma
    u = (x_next.to(x0.dtype) - x0) / h.to(x0.dtype)
    return Step(x0, u, h, ctx.sigma_next)


def _unipc_system(rks: list, h: torch.Tensor, order: int, variant: str):
    """The UniPC linear system ``R ρ = b`` (Zhao et al. 2023, Alg. 2–3)."""
    hh = -h
    h_phi_1 = torch.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1
    factorial = 1
    B_h = hh if variant == "bh1" else torch.expm1(hh)
    r = torch.stack(list(rks) + [torch.ones((), dtype=torch.float64, device=h.device)])
    R, b = [], []
    for i in range(1, order + 1):
        R.append(r ** (i - 1))
        b.append(h_phi_k * factorial / B_h)
        factorial *= i + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    return torch.stack(R), torch.stack(b), h_phi_1, B_h


def _unipc_terms(entries: list, sigma0: torch.Tensor, h: torch.Tensor):
    """Past-node ratios r_k and differences Δ_k = (D_k − D_0)/r_k, newest past node first."""
    m0 = entries[-1].denoised
    rks, deltas = [], []
    for e in reversed(entries[:-1]):
        rk = (_lam(e.sigma) - _lam(sigma0)) / h
        rks.append(rk)
        deltas.append((e.denoised - m0) / rk.to(m0.dtype))
    return rks, deltas


class UniPC(Solver):
    """UniPC predictor–corrector (data prediction), ``bh1`` or ``bh2``.

    Parameters
    ----------
    order : int
        Maximum order (1 to 3 in practice).
    variant : {'bh1', 'bh2'}
        B(h) = h or e^h − 1 (bh2 is diffusers' default).
    lower_order_final : bool
        Lower the order over the last steps, as diffusers with < 15 steps.
    """

    name = "unipc"

    def __init__(self, order: int = 3, variant: str = "bh2", lower_order_final: bool = True):
        super().__init__()
        if variant not in ("bh1", "bh2"):
            raise ValueError(f"unknown UniPC variant {variant!r}; available: ['bh1', 'bh2']")
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        self.order, self.variant, self.lower_order_final = order, variant, lower_order_final

    def config(self) -> dict:  # noqa: D102
        return {"order": self.order, "variant": self.variant,
                "lower_order_final": self.lower_order_final}

    def _correct(self, ctx: StepContext) -> torch.Tensor:
        """Corrector of the previous step, using the evaluation just made at its prediction.

        The correction is applied as a difference to the current state, so that anything a
        wrapper (SpanLift) added on top of the predictor survives the correction.
        """
        p = ctx.scratch["order"]
        x_prev = ctx.scratch["x"]
        nodes = ctx.buffer[-p - 1:-1]
        s0, s_t = nodes[-1].sigma, ctx.sigma
        h = _lam(s_t) - _lam(s0)
        rks, deltas = _unipc_terms(nodes, s0, h)
        R, b, h_phi_1, B_h = _unipc_system(rks, h, p, self.variant)
        rho = torch.full((1,), 0.5, dtype=torch.float64) if p == 1 else torch.linalg.solve(R, b)
        m0 = nodes[-1].denoised
        x_base = (s_t / s0) * x_prev - h_phi_1 * m0
        corr = sum(rk * dk for rk, dk in zip(rho[:-1], deltas)) if deltas else 0
        x_corr = x_base - B_h * (corr + rho[-1] * (ctx.buffer[-1].denoised - m0))
        return ctx.x + (x_corr.to(ctx.x.dtype) - ctx.scratch["pred"])

    def step(self, ctx: StepContext) -> Step:  # noqa: D102
        x = self._correct(ctx) if "order" in ctx.scratch else ctx.x
        p = _order(self.order, ctx, self.lower_order_final)
        nodes = ctx.buffer[-p:]
        s0, s_t = ctx.sigma, ctx.sigma_next
        h = _lam(s_t) - _lam(s0)
        rks, deltas = _unipc_terms(nodes, s0, h)
        R, b, h_phi_1, B_h = _unipc_system(rks, h, p, self.variant)
        x_next = (s_t / s0) * x - h_phi_1 * nodes[-1].denoised
        if deltas:
            rho = (torch.full((1,), 0.5, dtype=torch.float64) if p == 2
                   else torch.linalg.solve(R[:-1, :-1], b[:-1]))
            x_next = x_next - B_h * sum(rk * dk for rk, dk in zip(rho, deltas))
        step = _as_step(ctx, x_next, x_start=x)
        ctx.scratch.update(order=p, x=x, pred=step.x_next)
        return step
