"""Denoiser adapters: every model family mapped into EDM σ-space.

The solver core integrates one ODE, ``dx/dσ = (x − D(x, σ))/σ`` with ``x = x₀ + σ·ε``. A
:class:`Denoiser` returns ``D(x, σ, cond) ≈ E[x₀ | x]`` in that space. This module adapts

* EDM-preconditioned networks ``F(c_in·x, c_noise)`` (:class:`EDMPrecond`),
* discrete VP/DDPM models predicting ε, v or x₀ (:class:`VPDenoiser`; PreDiff, LDM, SD),
* flow-matching velocity models in ``(x_t, t)`` (:class:`FlowDenoiser`; SANA, FLUX),
* classifier-free guidance (:class:`CFGDenoiser`),

and provides the β schedules of discrete diffusion models (:func:`make_betas`).

Conventions: ``sigma`` is a scalar tensor, a float, or a tensor of shape ``(B,)``; outputs have the
dtype of ``x``. Changes of variables (reference: Karras et al. 2022, App. B):

* VP: ``x̃ = x/√ᾱ``, ``σ̃ = √((1−ᾱ)/ᾱ)``, model input ``x̃/√(1+σ̃²)``.
* flow matching: ``σ̃ = t/(1−t)``, ``x̃ = x_t/(1−t)``, ``D = x_t − t·v``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = [
    "Denoiser",
    "EDMPrecond",
    "VPDenoiser",
    "FlowDenoiser",
    "CFGDenoiser",
    "edm_scalings",
    "make_betas",
    "BETA_SCHEDULES",
    "sigma_to_flow_t",
    "flow_t_to_sigma",
    "vp_t_to_sigma",
]


def expand_sigma(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """Broadcast ``sigma`` (scalar or ``(B,)``) against ``x`` of shape ``(B, ...)``.

    Parameters
    ----------
    sigma : torch.Tensor or float
        Noise level(s).
    x : torch.Tensor
        Batch the noise levels apply to.

    Returns
    -------
    torch.Tensor
        ``sigma`` with shape ``(B, 1, ..., 1)`` (or a 0-d tensor), on ``x``'s device, float64
        when ``x`` is float64 and float32 otherwise.
    """
    s = torch.as_tensor(sigma, dtype=_time_dtype(x), device=x.device)
    if s.ndim == 0:
        return s
    return s.reshape(s.shape[0], *([1] * (x.ndim - 1)))


def _time_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def batch_sigma(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """Return ``sigma`` as a ``(B,)`` tensor for a batch ``x``."""
    s = torch.as_tensor(sigma, dtype=_time_dtype(x), device=x.device)
    if s.ndim == 0:
        s = s.expand(x.shape[0])
    return s.reshape(x.shape[0])


class Denoiser(nn.Module):
    """Base class of every denoiser the solvers integrate.

    Subclasses implement :meth:`forward` ``(x, sigma, cond=None) -> x̂₀`` in EDM σ-space and set
    ``sigma_min``, ``sigma_max`` (the range the model was trained on) and ``sigma_data``.
    """

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, cond: Any = None) -> torch.Tensor:  # noqa: D102
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# EDM preconditioning
# --------------------------------------------------------------------------------------------

def edm_scalings(sigma: torch.Tensor, sigma_data: float = 0.5):
    """EDM preconditioning coefficients (Karras et al. 2022, Table 1).

    Parameters
    ----------
    sigma : torch.Tensor
        Noise levels.
    sigma_data : float
        Standard deviation of the data.

    Returns
    -------
    tuple of torch.Tensor
        ``(c_skip, c_out, c_in, c_noise)`` with ``c_skip = σd²/(σ²+σd²)``,
        ``c_out = σσd/√(σ²+σd²)``, ``c_in = 1/√(σ²+σd²)``, ``c_noise = ¼ ln σ``.
    """
    sd2 = sigma_data ** 2
    c_skip = sd2 / (sigma ** 2 + sd2)
    c_out = sigma * sigma_data / (sigma ** 2 + sd2).sqrt()
    c_in = 1.0 / (sigma ** 2 + sd2).sqrt()
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


class EDMPrecond(Denoiser):
    """``D(x, σ) = c_skip·x + c_out·F(c_in·x, c_noise, cond)`` around a raw network ``F``.

    Parameters
    ----------
    net : nn.Module
        Called as ``net(x_in, c_noise, cond)`` with ``c_noise`` of shape ``(B,)``.
    sigma_data, sigma_min, sigma_max : float
        Data standard deviation and trained σ range.
    """

    def __init__(self, net: nn.Module, sigma_data: float = 0.5, sigma_min: float = 0.002,
                 sigma_max: float = 80.0):
        super().__init__()
        self.net = net
        self.sigma_data, self.sigma_min, self.sigma_max = sigma_data, sigma_min, sigma_max

    def forward(self, x, sigma, cond=None):  # noqa: D102
        s = expand_sigma(sigma, x)
        c_skip, c_out, c_in, c_noise = edm_scalings(s, self.sigma_data)
        f = self.net((c_in * x).to(x.dtype), c_noise.reshape(-1).expand(x.shape[0]), cond)
        return (c_skip * x + c_out * f.to(c_out.dtype)).to(x.dtype)


# --------------------------------------------------------------------------------------------
# Discrete VP (DDPM / LDM) models
# --------------------------------------------------------------------------------------------

def _cosine_betas(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    t = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)


BETA_SCHEDULES = ("linear", "sqrt_linear", "scaled_linear", "cosine")


def make_betas(kind: str, num_steps: int = 1000, beta_start: float = 1e-4,
               beta_end: float = 2e-2) -> torch.Tensor:
    """β schedule of a discrete diffusion model, in float64.

    Parameters
    ----------
    kind : {'linear', 'sqrt_linear', 'scaled_linear', 'cosine'}
        ``linear``: β linear from ``beta_start`` to ``beta_end`` (DDPM; diffusers ``linear``).
        ``sqrt_linear``: √β linear, i.e. ``linspace(√β₀, √β₁)²``; this is what CompVis LDM and
        PreDiff call "linear" and diffusers calls ``scaled_linear`` (an alias here).
        ``cosine``: Nichol & Dhariwal's squared-cosine ᾱ (``beta_start``/``beta_end`` unused).
    num_steps : int
        Number of training timesteps T.
    beta_start, beta_end : float
        End points of the schedule.

    Returns
    -------
    torch.Tensor
        ``(num_steps,)`` float64 betas.
    """
    kind = kind.lower()
    if kind == "linear":
        return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
    if kind in ("sqrt_linear", "scaled_linear"):
        return torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_steps, dtype=torch.float64) ** 2
    if kind == "cosine":
        return _cosine_betas(num_steps)
    raise ValueError(f"unknown beta schedule {kind!r}; available: {list(BETA_SCHEDULES)}")


def vp_t_to_sigma(log_sigmas: torch.Tensor, t) -> torch.Tensor:
    """σ̃ of a (fractional) timestep index of a discrete VP table, log-linear between entries.

    Parameters
    ----------
    log_sigmas : torch.Tensor
        ``(T,)`` ln σ̃_t = ln √((1 − ᾱ_t)/ᾱ_t), float64.
    t : torch.Tensor or float
        Timestep indices in ``[0, T − 1]``.

    Returns
    -------
    torch.Tensor
        σ̃ (float64), the inverse of :meth:`VPDenoiser.sigma_to_t`.
    """
    t = torch.as_tensor(t, dtype=torch.float64, device=log_sigmas.device)
    lo = t.floor().long().clamp(0, len(log_sigmas) - 1)
    hi = (lo + 1).clamp(max=len(log_sigmas) - 1)
    w = t - lo
    return ((1 - w) * log_sigmas[lo] + w * log_sigmas[hi]).exp()


class VPDenoiser(Denoiser):
    """A discrete VP model (ε-, v- or x₀-prediction) as an EDM-space denoiser.

    ``D(x̃, σ̃) = x̂₀`` where the model sees ``x = x̃/√(1+σ̃²)`` at the (fractional) timestep whose
    σ̃ matches, found by linear interpolation of the timestep index against ``ln σ̃`` (as
    k-diffusion's discrete wrappers).

    Parameters
    ----------
    model : nn.Module
        Called as ``model(x, t, cond)`` with ``t`` a float tensor ``(B,)`` of timestep indices.
    alphas_cumprod : torch.Tensor
        ``(T,)`` cumulative products ᾱ_t.
    prediction : {'epsilon', 'v', 'sample'}
        What the model predicts.
    quantize : bool
        Round the timestep to the nearest integer before calling the model.
    """

    def __init__(self, model: nn.Module, alphas_cumprod: torch.Tensor, prediction: str = "epsilon",
                 quantize: bool = False):
        super().__init__()
        if prediction not in ("epsilon", "v", "sample"):
            raise ValueError(f"unknown prediction {prediction!r}; available: ['epsilon', 'v', 'sample']")
        self.model = model
        self.prediction = prediction
        self.quantize = quantize
        ac = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
        self.register_buffer("alphas_cumprod", ac, persistent=False)
        self.register_buffer("sigmas", ((1 - ac) / ac).sqrt(), persistent=False)
        self.register_buffer("log_sigmas", self.sigmas.log(), persistent=False)
        self.sigma_min = float(self.sigmas[0])
        self.sigma_max = float(self.sigmas[-1])
        self.sigma_data = 1.0

    @classmethod
    def from_betas(cls, model: nn.Module, kind: str = "sqrt_linear", num_steps: int = 1000,
                   beta_start: float = 1e-4, beta_end: float = 2e-2, **kwargs) -> "VPDenoiser":
        """Build from a named β schedule (see :func:`make_betas`); defaults are PreDiff's."""
        betas = make_betas(kind, num_steps, beta_start, beta_end)
        return cls(model, torch.cumprod(1 - betas, 0), **kwargs)

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional timestep index for σ̃ (linear in ln σ̃ between table entries)."""
        log_sigma = sigma.to(torch.float64).log()
        ls = self.log_sigmas
        idx = torch.searchsorted(ls, log_sigma.contiguous()).clamp(1, len(ls) - 1)
        lo, hi = ls[idx - 1], ls[idx]
        w = ((log_sigma - lo) / (hi - lo)).clamp(0, 1)
        t = (idx - 1).to(torch.float64) + w
        return t.round() if self.quantize else t

    def forward(self, x, sigma, cond=None):  # noqa: D102
        s = batch_sigma(sigma, x).to(torch.float64)
        t = self.sigma_to_t(s)
        se = expand_sigma(s, x).to(torch.float64)
        alpha = 1 / (1 + se ** 2).sqrt()
        x_in = (x * alpha).to(x.dtype)
        out = self.model(x_in, t.to(_time_dtype(x)), cond)
        out = out.to(torch.float64)
        if self.prediction == "epsilon":
            d = x.to(torch.float64) - se * out
        elif self.prediction == "v":
            s_vp = se * alpha  # √(1−ᾱ);  x₀ = √ᾱ·x − √(1−ᾱ)·v
            d = alpha * x_in.to(torch.float64) - s_vp * out
        else:
            d = out
        return d.to(x.dtype)


# --------------------------------------------------------------------------------------------
# Flow matching
# --------------------------------------------------------------------------------------------

def sigma_to_flow_t(sigma):
    """Flow-matching time ``t = σ̃/(1+σ̃)`` for an EDM-space noise level."""
    return sigma / (1 + sigma)


def flow_t_to_sigma(t):
    """EDM-space noise level ``σ̃ = t/(1−t)`` for a flow-matching time."""
    return t / (1 - t)


class FlowDenoiser(Denoiser):
    """A flow-matching velocity model ``v(x_t, t)`` (``x_t = (1−t)x₀ + tε``, ``v = ε − x₀``).

    In EDM space ``x_t = x̃/(1+σ̃)``, ``t = σ̃/(1+σ̃)`` and ``D = x_t − t·v``.

    Parameters
    ----------
    model : nn.Module
        Called as ``model(x_t, t, cond)`` with ``t`` of shape ``(B,)`` in ``[0, 1]``.
    time_scale : float
        Multiplier applied to ``t`` before the call (e.g. 1000 for SANA/FLUX transformers).
    """

    def __init__(self, model: nn.Module, time_scale: float = 1.0, sigma_min: float = 1e-3,
                 sigma_max: float = 1e3):
        super().__init__()
        self.model = model
        self.time_scale = time_scale
        self.sigma_min, self.sigma_max, self.sigma_data = sigma_min, sigma_max, 1.0

    def forward(self, x, sigma, cond=None, **kwargs):  # noqa: D102
        s = batch_sigma(sigma, x).to(torch.float64)
        t = sigma_to_flow_t(s)
        te = expand_sigma(t, x).to(torch.float64)
        x_t = x.to(torch.float64) * (1 - te)
        v = self.velocity(x_t.to(x.dtype), t, cond, **kwargs)
        return (x_t - te * v.to(torch.float64)).to(x.dtype)

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        """The model's velocity at ``x_t`` and flow times ``t`` (``(B,)``, float64).

        Subclasses override it for models with other inputs (a step size, a depth); keyword
        arguments given to :meth:`forward` are passed on here.
        """
        return self.model(x_t, self.model_time(t).to(_time_dtype(x_t)), cond)

    def model_time(self, t: torch.Tensor) -> torch.Tensor:
        """The model's time input for flow times ``t`` (``(B,)``, float64): ``t·time_scale``.

        Subclasses override it to reproduce how a stock pipeline rounds its timesteps.
        """
        return t * self.time_scale


# --------------------------------------------------------------------------------------------
# Classifier-free guidance
# --------------------------------------------------------------------------------------------

class CFGDenoiser(Denoiser):
    """Classifier-free guidance ``D = D_u + w·(D_c − D_u)``.

    Guidance is linear, so mixing x̂₀ predictions equals mixing ε, v or F predictions of the
    wrapped model. The conditional and unconditional passes run as one batch of size 2B.

    Parameters
    ----------
    denoiser : Denoiser
        The wrapped denoiser; it receives ``cond`` for the conditional half and ``uncond`` for the
        unconditional half, concatenated along the batch when both are tensors.
    scale : float
        Guidance weight w (1 = no guidance).
    uncond : Any
        Unconditional conditioning (e.g. null embedding); ``None`` passes ``None``.
    """

    def __init__(self, denoiser: Denoiser, scale: float, uncond: Any = None):
        super().__init__()
        self.inner = denoiser
        self.scale = scale
        self.uncond = uncond
        self.sigma_min, self.sigma_max = denoiser.sigma_min, denoiser.sigma_max
        self.sigma_data = denoiser.sigma_data

    def forward(self, x, sigma, cond=None):  # noqa: D102
        s = batch_sigma(sigma, x)
        if torch.is_tensor(cond) and torch.is_tensor(self.uncond):
            both = self.inner(torch.cat([x, x]), torch.cat([s, s]), torch.cat([self.uncond, cond]))
            d_u, d_c = both.chunk(2)
        else:
            d_u = self.inner(x, s, self.uncond)
            d_c = self.inner(x, s, cond)
        return d_u + self.scale * (d_c - d_u)
