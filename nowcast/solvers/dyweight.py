"""DyWeight-style learned scalar solver: a weight table over the velocity buffer plus time scales.

Parameterisation (independent re-derivation of Zhu et al., CVPR 2026, §1.2 of the solver notes):
a lower-triangular table ``W`` (row n = step n, column j = buffered velocity ``d_j``; only the
last ``window`` columns of each row are free) and per-step time scales ``s``. The solver tracks a
"true" noise level τ:

* the denoiser is queried at ``s_n·τ_n`` but ``d_n = (x_n − D)/τ_n``;
* ``x_{n+1} = x_n + (t_{n+1} − τ_n)·Σ_j W[n, j] d_j``;
* ``τ_{n+1} = τ_n + (Σ_j W[n, j])·(t_{n+1} − τ_n)``: a row sum ≠ 1 shortens or lengthens the step.

Initialised to iPNDM (Adams–Bashforth rows, order ``min(n+1, window)``) with ``s = 1``, it is
exactly iPNDM with ``max_order = window`` (a test checks this).
"""

from __future__ import annotations

import torch
from torch import nn

from .core import Solver, Step, StepContext
from .multistep import AB_COEFFS

__all__ = ["DyWeight"]


class DyWeight(Solver):
    """Learned lower-triangular weight table with time scales, initialised to iPNDM.

    Parameters
    ----------
    num_steps : int
        Number of steps K the table is built for (rows).
    window : int
        Velocities each row may combine (``max_history_steps``; 3 ⇒ iPNDM order 3 at init).
    time_scale : bool
        Learn the per-step time scales ``s`` (else fixed at 1).
    """

    name = "dyweight"

    def __init__(self, num_steps: int, window: int = 3, time_scale: bool = True):
        super().__init__()
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        if window not in AB_COEFFS:
            raise ValueError(f"window must be 1 to 4 (the AB orders), got {window}")
        self.num_steps, self.window, self.learn_time_scale = num_steps, window, time_scale
        W = torch.zeros(num_steps, num_steps, dtype=torch.float64)
        mask = torch.zeros(num_steps, num_steps, dtype=torch.bool)
        for n in range(num_steps):
            p = min(n + 1, window)
            for k, c in enumerate(AB_COEFFS[p]):
                W[n, n - k] = c
            mask[n, max(0, n - window + 1): n + 1] = True
        # W = W_init + ΔW with ΔW learned (float64, zero at start): at initialisation the update and
        # the row sums are iPNDM's to the bit; the AB fractions (23/12, …) are kept exactly.
        self.register_buffer("init_table", W)
        self.register_buffer("mask", mask)
        self.delta = nn.Parameter(torch.zeros_like(W))
        self.log_time_scale = nn.Parameter(torch.zeros(num_steps, dtype=torch.float64),
                                           requires_grad=time_scale)

    def config(self) -> dict:  # noqa: D102
        return {"num_steps": self.num_steps, "window": self.window,
                "time_scale": self.learn_time_scale}

    def table(self) -> torch.Tensor:
        """The weight table ``W = W_init + ΔW`` (K × K, masked to the window)."""
        return (self.init_table + self.delta) * self.mask

    def time_scales(self) -> torch.Tensor:
        """Per-step time scales ``s`` (1 at initialisation)."""
        return self.log_time_scale.exp()

    def eval_sigma(self, n: int, sigma: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return sigma * self.time_scales()[n].to(sigma.dtype)

    def step(self, ctx: StepContext) -> Step:  # noqa: D102
        n = ctx.n
        if ctx.num_steps != self.num_steps:
            raise ValueError(f"this DyWeight table was built for {self.num_steps} steps, "
                             f"the grid has {ctx.num_steps}")
        lo = max(0, n - self.window + 1)
        cols = range(n, lo - 1, -1)  # newest velocity first, as iPNDM sums
        w0, dw = self.init_table[n], self.delta[n] * self.mask[n]
        u = sum(w0[j].to(ctx.x.dtype) * ctx.buffer[j].d for j in cols)
        u = u + sum(dw[j].to(ctx.x.dtype) * ctx.buffer[j].d for j in cols)
        tau = ctx.sigma
        h = ctx.sigma_next - tau
        # τ_{n+1} = τ_n + (Σ_j W[n, j])·h = t_{n+1} + (Σ_j ΔW[n, j])·h  (the AB rows sum to one)
        tau_next = ctx.sigma_next + dw[lo:n + 1].sum().to(tau.dtype) * h
        # keep τ positive so the next evaluation stays on the model's σ range
        tau_next = torch.maximum(tau_next, 1e-3 * ctx.sigma_next)
        return Step(ctx.x, u, h, tau_next)
