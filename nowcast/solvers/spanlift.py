"""SpanLift: a learned spatial residual operator on top of any base solver.

``x_{n+1} = x_n + h_n·(α_n·u_base + β_n·ρ_n·R_θ(z_n, c_n))`` where

* ``u_base`` is the base solver's direction (any :class:`~.core.Solver`, learned ones included);
* ``z_n`` stacks the state and the velocity buffer ``(x_n, d_n, d_{n−1}, …)`` along channels, each
  normalised by its per-sample RMS (missing history is zero);
* ``c_n = (ln σ_n, logSNR_n = −2 ln σ_n, h_n/σ_n)`` conditions the operator through FiLM; with
  ``depth_conditioned`` a fourth feature, the share ``b_n/B`` of the network the step's
  evaluation ran (a length-adaptive denoiser run for a schedule of (σ_n, blocks_n)), is added;
* ``ρ_n = RMS(d_n)·min(1, σ_data/σ_n)`` (per sample): the operator predicts a correction in units
  of the current velocity, damped where σ_n exceeds the data scale. A perturbation made at a
  large σ_n through a step of length |h_n| ≈ σ_n reaches the endpoint almost undamped in the
  data-dominated (low-frequency) directions, so without the damping one unit of R would move
  the endpoint ~|h_n| at σ ≈ 80 but ~0.002 at σ ≈ 0.002; with it the endpoint sensitivity of
  each step is ≈ |h_n/σ_n|·min(σ_n, σ_data), comparable across the rollout, and early and late
  steps train alike;
* ``α_n`` stays 1 on a step that starts at ``σ_n ≥ 10⁴`` (:data:`ALPHA_PIN_SIGMA`; a flow model's
  ``t = 1`` start, ``σ = t/(1−t)`` clipped to 10⁹): there ``x_n + α_n·h_n·u`` cancels two terms
  of size ``σ_n`` and any ``α_n ≠ 1`` leaves ``(1 − α_n)·σ_n`` of noise in the state (a step of
  Adam at rate 10⁻³ took the endpoint error from 0.02 to 6·10¹⁰). The operator's correction
  is damped by ``σ_data/σ_n`` and keeps learning there;
* ``R_θ`` is a shallow CNN (1×1 stem, FiLM residual blocks with depthwise k×k convolutions, 3×3
  head), over 2-D ``(B, C, H, W)`` or 3-D ``(B, C, T, H, W)`` states.

The head is zero-initialised, so at initialisation SpanLift reproduces its base exactly, and the
operator never calls the denoiser: NFE is unchanged (tests check both).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .core import Solver, Step, StepContext

__all__ = ["SpanLift", "ResidualOperator", "step_condition", "ALPHA_PIN_SIGMA"]

COND_DIM = 3
ALPHA_PIN_SIGMA = 1e4


def step_condition(sigma: torch.Tensor, h: torch.Tensor, depth_fraction: float | None = None) -> torch.Tensor:
    """Conditioning features ``(ln σ, logSNR, h/σ)`` of a step, as a float32 vector of length 3, or
    ``(ln σ, logSNR, h/σ, b/B)`` (length 4) when the step's depth fraction ``b/B`` is given."""
    s = sigma.to(torch.float64)
    log_s = torch.log(s)
    feats = [log_s, -2 * log_s, h.to(torch.float64) / s]
    if depth_fraction is not None:
        feats.append(torch.as_tensor(float(depth_fraction), dtype=torch.float64, device=s.device))
    return torch.stack(feats).to(torch.float32)


def _rms(t: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    dims = tuple(range(1, t.ndim))
    return t.pow(2).mean(dim=dims, keepdim=True).add(eps).sqrt()


class _FiLMBlock(nn.Module):
    def __init__(self, width: int, emb: int, conv: type, kernel_size: int, padding_mode: str):
        super().__init__()
        groups = 8 if width % 8 == 0 else 1
        self.norm = nn.GroupNorm(groups, width, affine=False)
        self.film = nn.Linear(emb, 2 * width)
        self.dw = conv(width, width, kernel_size, padding=kernel_size // 2, groups=width,
                       padding_mode=padding_mode)
        self.pw1 = conv(width, 2 * width, 1)
        self.pw2 = conv(2 * width, width, 1)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(e).chunk(2, dim=-1)
        view = (x.shape[0], -1) + (1,) * (x.ndim - 2)
        y = self.norm(x) * (1 + scale.reshape(view)) + shift.reshape(view)
        y = self.pw2(F.silu(self.pw1(self.dw(y))))
        return x + y


class ResidualOperator(nn.Module):
    """FiLM-conditioned shallow CNN ``R_θ(z, c)``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of ``z`` and of the correction.
    hidden : int
        Width (≈ 64 in the paper).
    blocks : int
        Number of FiLM residual blocks (2 in the paper).
    spatial_dims : {2, 3}
        Rank of the spatial shape: images/frames (2) or time × space (3).
    kernel_size : int
        Depthwise kernel size.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
        Padding of the spatial convolutions ('circular' for periodic domains).
    cond_dim : int
        Length of the condition vector (3, or 4 with the step's depth fraction).
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 64, blocks: int = 2,
                 spatial_dims: int = 2, kernel_size: int = 3, padding_mode: str = "zeros",
                 cond_dim: int = COND_DIM):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.spatial_dims = spatial_dims
        self.cond_dim = cond_dim
        self.embed = nn.Sequential(nn.Linear(cond_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.stem = conv(in_channels, hidden, 1)
        self.blocks = nn.ModuleList(_FiLMBlock(hidden, hidden, conv, kernel_size, padding_mode)
                                    for _ in range(blocks))
        self.head = conv(hidden, out_channels, 3, padding=1, padding_mode=padding_mode)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Correction for input ``z`` (``(B, C_in, *S)``) and condition ``c`` (``(B, cond_dim)`` or
        ``(cond_dim,)``)."""
        if z.ndim != self.spatial_dims + 2:
            raise ValueError(f"expected a {self.spatial_dims + 2}-D input (B, C, *S), got shape "
                             f"{tuple(z.shape)}")
        e = self.embed(c.expand(z.shape[0], self.cond_dim) if c.ndim == 1 else c)
        h = self.stem(z)
        for block in self.blocks:
            h = block(h, e)
        return self.head(F.silu(h))


class SpanLift(Solver):
    """A base solver plus a learned spatial residual operator (no extra NFE).

    Parameters
    ----------
    base : Solver
        Any base solver; its parameters are frozen unless ``train_base``.
    num_steps : int
        Steps K of the rollouts it is trained for (length of α, β).
    channels : int
        Channels C of the state ``(B, C, *S)``.
    history : int
        Buffered velocities fed to the operator (``d_n … d_{n−history+1}``).
    hidden, blocks, spatial_dims, kernel_size, padding_mode
        Operator shape (see :class:`ResidualOperator`).
    train_base : bool
        Also train the base solver's parameters (e.g. a DyWeight table).
    scalar_lr_scale : float
        Learning-rate multiplier of the per-step scalars α, β (and a trained base) relative to
        the operator's.
    sigma_data : float
        Data scale of the state (0.5 for images in [−1, 1]) used by the residual scaling.
    channel_axis : int
        Axis of the state that holds channels (1 for ``(B, C, *S)``; 2 for sequences of latents
        ``(B, T, C, H, W)``, which the operator then sees as ``(B, C, T, H, W)``).
    depth_conditioned : bool
        Also condition the operator on the share of the network each step ran (for a
        length-adaptive denoiser sampled with a schedule of blocks per step).
    """

    name = "spanlift"

    def __init__(self, base: Solver, num_steps: int, channels: int, history: int = 3,
                 hidden: int = 64, blocks: int = 2, spatial_dims: int = 2, kernel_size: int = 3,
                 padding_mode: str = "zeros", train_base: bool = False, scalar_lr_scale: float = 1.0,
                 sigma_data: float = 0.5, channel_axis: int = 1, depth_conditioned: bool = False):
        super().__init__()
        if channel_axis < 1:
            raise ValueError(f"channel_axis must be >= 1 (axis 0 is the batch), got {channel_axis}")
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        self.base = base
        self.evals_per_step = base.evals_per_step
        self.num_steps, self.channels, self.history = num_steps, channels, history
        self.shape_kwargs = {"hidden": hidden, "blocks": blocks, "spatial_dims": spatial_dims,
                             "kernel_size": kernel_size, "padding_mode": padding_mode}
        self.train_base = train_base
        self.scalar_lr_scale = scalar_lr_scale
        self.sigma_data = sigma_data
        self.channel_axis = channel_axis
        self.depth_conditioned = bool(depth_conditioned)
        for p in base.parameters():
            p.requires_grad_(train_base)
        self.alpha = nn.Parameter(torch.ones(num_steps))
        self.beta = nn.Parameter(torch.ones(num_steps))
        self.operator = ResidualOperator(channels * (1 + history), channels, **self.shape_kwargs,
                                         cond_dim=COND_DIM + int(self.depth_conditioned))

    def config(self) -> dict:  # noqa: D102
        return {"base": {"name": self.base.name, **self.base.config()}, "num_steps": self.num_steps,
                "channels": self.channels, "history": self.history, "train_base": self.train_base,
                "scalar_lr_scale": self.scalar_lr_scale, "sigma_data": self.sigma_data,
                "channel_axis": self.channel_axis, "depth_conditioned": self.depth_conditioned,
                **self.shape_kwargs}

    def param_groups(self, lr: float) -> list:
        """The operator at ``lr``; α, β (and a trained base) at ``lr·scalar_lr_scale``."""
        scalars = [self.alpha, self.beta]
        if self.train_base:
            scalars += [p for p in self.base.parameters() if p.requires_grad]
        return [{"params": list(self.operator.parameters()), "lr": lr},
                {"params": scalars, "lr": lr * self.scalar_lr_scale}]

    def eval_sigma(self, n: int, sigma: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.base.eval_sigma(n, sigma)

    def operator_input(self, x: torch.Tensor, buffer: list) -> torch.Tensor:
        """``z_n``: the state and the last ``history`` velocities, each RMS-normalised per sample,
        stacked along channels in the operator's ``(B, C, *S)`` layout."""
        ax = self.channel_axis
        parts = [(x / _rms(x)).movedim(ax, 1)]
        for k in range(1, self.history + 1):
            if k <= len(buffer):
                d = buffer[-k].d
                parts.append((d / _rms(d)).movedim(ax, 1))
            else:
                parts.append(torch.zeros_like(parts[0]))
        return torch.cat(parts, dim=1)

    def step(self, ctx: StepContext) -> Step:  # noqa: D102
        n = ctx.n
        if n >= self.num_steps:
            raise ValueError(f"this SpanLift was built for {self.num_steps} steps; step {n} is out of range")
        res = self.base.step(ctx)
        d = ctx.buffer[-1].d
        op_dtype = self.operator.stem.weight.dtype
        z = self.operator_input(res.x, ctx.buffer).to(op_dtype)
        c = step_condition(ctx.sigma, res.h, ctx.depth_fraction if self.depth_conditioned else None).to(z.device, op_dtype)
        r = self.operator(z, c).to(res.u.dtype).movedim(1, self.channel_axis)
        damping = min(1.0, self.sigma_data / float(ctx.sigma))
        correction = self.beta[n].to(r.dtype) * (damping * _rms(d)) * r
        alpha = self.alpha[n] if float(ctx.sigma) < ALPHA_PIN_SIGMA else torch.ones_like(self.alpha[n])
        u = alpha.to(res.u.dtype) * res.u + correction
        extra = dict(res.extra, correction=correction, u_base=res.u)
        return Step(res.x, u, res.h, res.sigma_next, extra)
