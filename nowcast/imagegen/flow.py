"""SANA and FLUX transformers from diffusers, driven by the solver core.

Flow-matching models (``x_t = (1−t)·x₀ + t·ε``, velocity ``v = ε − x₀``) are integrated in the
solver core's EDM space through :class:`~nowcast.solvers.denoisers.FlowDenoiser`
(``σ̃ = t/(1−t)``, ``x̃ = x_t/(1−t)``, ``D = x_t − t·v``). Euler there is exactly the stock
``FlowMatchEulerDiscreteScheduler`` step, and DPM-Solver++ (data prediction) is exactly
diffusers' flow ``DPMSolverMultistepScheduler`` (the exponential integrator is invariant under the
change of variables), so with the stock schedules below the package's loop reproduces the
pipelines; any other solver of the core — iPNDM, UniPC, DyWeight, SpanLift — runs on the same
model unchanged.

Numerics: with σ̃ up to ``t/(1−t) ≈ 10⁹`` the state ``x̃`` is kept in float64 (the network runs
in its own dtype); a schedule starting at ``t = 1`` exactly (FLUX) starts at ``t = 1 − 10⁻⁹``,
which the network cannot tell apart from 1 in float32.

Pieces
------
:class:`FlowGrid`, :func:`sana_grid`, :func:`flux_grid`
    The stock schedules: flow times as the schedulers hold them and the timesteps the pipelines
    pass to the transformer (SANA's DPM-Solver scheduler truncates ``σ·1000`` to integers).
:class:`SanaVelocity`, :class:`FluxVelocity`
    ``v(x_t, t, prompt)`` around ``SanaTransformer2DModel`` (classifier-free guidance as a batch
    ``[negative, positive]``) and ``FluxTransformer2DModel`` (2×2 packing of spatial latents into
    tokens, distilled guidance embedding, optional true CFG).
:class:`SanaPrompt`, :class:`FluxPrompt`
    Precomputed prompt embeddings (the text encoders are not needed to sample).
:func:`sample_flow`
    One call: noise → latents with any solver of the core, NFE counted.
:func:`decode_sana`, :func:`decode_flux`
    Latents → images in ``[0, 1]`` with the pipelines' VAE scaling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..solvers.core import Solver
from ..solvers.denoisers import FlowDenoiser, flow_t_to_sigma
from ..solvers.rollout import rollout
from ..solvers.schedules import flow_shift

__all__ = ["FlowGrid", "sana_grid", "flux_grid", "flux_shift_mu", "SanaPrompt", "FluxPrompt", "SanaVelocity",
           "FluxVelocity", "PipelineFlowDenoiser", "sample_flow", "decode_sana", "decode_flux",
           "pack_latents", "unpack_latents", "T_MAX"]

#: Largest flow time used as a start point (σ̃ = t/(1−t) must be finite).
T_MAX = 1.0 - 1e-9


@dataclass(frozen=True)
class FlowGrid:
    """A flow-matching schedule: K steps from ``t[0]`` to ``t[K]``.

    Attributes
    ----------
    t : torch.Tensor
        ``(K+1,)`` float64 flow times (descending), the values the stock scheduler steps with.
    timesteps : torch.Tensor
        ``(K,)`` float64 model time input at ``t[:K]`` as the stock pipeline passes it (before any
        ``timestep_scale`` of the model); ``t·1000`` unless the scheduler rounds it.
    """

    t: torch.Tensor
    timesteps: torch.Tensor

    @property
    def steps(self) -> int:
        """Number of steps K."""
        return len(self.t) - 1

    def sigmas(self) -> torch.Tensor:
        """The grid in EDM σ̃ (float64), ``t`` clamped to :data:`T_MAX`."""
        return flow_t_to_sigma(self.t.clamp(max=T_MAX))


def sana_grid(steps: int = 20, shift: float = 3.0, num_train_timesteps: int = 1000,
              integer_timesteps: bool = True) -> FlowGrid:
    """SANA's schedule: diffusers' flow ``DPMSolverMultistepScheduler`` (``use_flow_sigmas``).

    ``σ̃ = 1 − linspace(1, 1/T, K+1)``, shifted ``σ = sσ̃/(1 + (s−1)σ̃)``, reversed, last dropped,
    final 0 appended, stored as float32; the timesteps are ``σ·T`` truncated to integers (set
    ``integer_timesteps=False`` for the continuous time a custom solver should prefer).

    Parameters
    ----------
    steps : int
        Number of steps K (≥ 1).
    shift : float
        ``flow_shift`` (3.0 for SANA's 512/1024 px checkpoints, 6.0 at 4096 px).
    num_train_timesteps : int
    integer_timesteps : bool
        Reproduce the scheduler's ``int64`` timesteps.
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    alphas = np.linspace(1, 1 / num_train_timesteps, steps + 1)
    s = 1.0 - alphas
    s = np.flip(flow_shift(s, shift))[:-1].copy()
    ts = s * num_train_timesteps
    if integer_timesteps:
        ts = ts.astype(np.int64)
    t = np.concatenate([s, [0.0]]).astype(np.float32)
    return FlowGrid(torch.from_numpy(t).double(), torch.from_numpy(np.asarray(ts, dtype=np.float64)))


def flux_shift_mu(image_seq_len: int, base_seq_len: int = 256, max_seq_len: int = 4096,
                  base_shift: float = 0.5, max_shift: float = 1.15) -> float:
    """FLUX's resolution-dependent shift ``μ``, linear in the number of image tokens."""
    m = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return image_seq_len * m + base_shift - m * base_seq_len


def flux_grid(steps: int = 28, image_seq_len: int = 4096, *, mu: float | None = None,
              num_train_timesteps: int = 1000, **shift_kwargs) -> FlowGrid:
    """FLUX's schedule: ``FlowMatchEulerDiscreteScheduler`` with dynamic shifting.

    ``linspace(1, 1/K, K)`` in float32, shifted ``e^μ/(e^μ + (1/t − 1))``, final 0 appended;
    timesteps ``t·T`` (float32, as the pipeline casts them).

    Parameters
    ----------
    steps : int
        Number of steps K.
    image_seq_len : int
        Number of packed image tokens, ``(H/16)·(W/16)`` for an ``H × W`` image.
    mu : float, optional
        Shift; by default :func:`flux_shift_mu` of ``image_seq_len`` (``shift_kwargs`` passed on).
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    mu = flux_shift_mu(image_seq_len, **shift_kwargs) if mu is None else mu
    base = np.linspace(1.0, 1 / steps, steps).astype(np.float32)
    shifted = math.exp(mu) / (math.exp(mu) + (1 / base - 1) ** 1.0)
    t = torch.cat([torch.from_numpy(np.asarray(shifted)).float(), torch.zeros(1)])
    ts = (t[:-1] * num_train_timesteps).float()
    return FlowGrid(t.double(), ts.double())


class PipelineFlowDenoiser(FlowDenoiser):
    """:class:`FlowDenoiser` that passes the grid's own timesteps at the grid's noise levels.

    Off-grid evaluations (learned time scales, Heun midpoints) get the continuous ``t·1000``.
    """

    def __init__(self, model: nn.Module, grid: FlowGrid, time_scale: float = 1000.0):
        super().__init__(model, time_scale=time_scale)
        self.register_buffer("grid_t", grid.t[:-1].clamp(max=T_MAX).double(), persistent=False)
        self.register_buffer("grid_timesteps", grid.timesteps.double(), persistent=False)

    def model_time(self, t: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = t * self.time_scale
        if len(self.grid_t) == 0:
            return out
        gt = self.grid_t.to(t.device)
        dist, idx = (t.reshape(-1, 1) - gt.reshape(1, -1)).abs().min(dim=1)
        on_grid = dist <= 1e-9 * torch.clamp(gt[idx], min=1e-3)
        return torch.where(on_grid, self.grid_timesteps.to(t.device)[idx], out)


# --------------------------------------------------------------------------------------------
# Transformers
# --------------------------------------------------------------------------------------------

@dataclass
class SanaPrompt:
    """Precomputed SANA prompt embeddings (``SanaPipeline.encode_prompt`` output).

    Attributes
    ----------
    embeds, mask : torch.Tensor
        ``(B, L, D)`` positive embeddings and ``(B, L)`` attention mask.
    negative_embeds, negative_mask : torch.Tensor, optional
        The same for the negative prompt (``""`` in the pipeline); needed for guidance > 1.
    """

    embeds: torch.Tensor
    mask: torch.Tensor
    negative_embeds: torch.Tensor | None = None
    negative_mask: torch.Tensor | None = None


class SanaVelocity(nn.Module):
    """Velocity ``v(x_t, timestep, prompt)`` of a ``SanaTransformer2DModel`` with CFG.

    Parameters
    ----------
    transformer : diffusers.SanaTransformer2DModel
    guidance_scale : float
        ``v = v_u + g·(v_c − v_u)``; one NFE is one guided evaluation (a batch of 2B). At 1 no
        negative pass is made.
    """

    def __init__(self, transformer: nn.Module, guidance_scale: float = 4.5):
        super().__init__()
        self.transformer = transformer
        self.guidance_scale = float(guidance_scale)

    def forward(self, x_t: torch.Tensor, timestep: torch.Tensor, prompt: SanaPrompt) -> torch.Tensor:  # noqa: D102
        cfg = self.guidance_scale > 1.0
        dtype = self.transformer.dtype
        x = x_t.to(torch.float32)
        if cfg:
            if prompt.negative_embeds is None:
                raise ValueError("guidance_scale > 1 needs negative prompt embeddings")
            x = torch.cat([x, x])
            embeds = torch.cat([prompt.negative_embeds, prompt.embeds])
            mask = torch.cat([prompt.negative_mask, prompt.mask])
        else:
            embeds, mask = prompt.embeds, prompt.mask
        ts = timestep.to(torch.float32).expand(x_t.shape[0])
        ts = (torch.cat([ts, ts]) if cfg else ts) * self.transformer.config.timestep_scale
        out = self.transformer(x.to(dtype), encoder_hidden_states=embeds.to(dtype), encoder_attention_mask=mask,
                               timestep=ts, return_dict=False)[0].float()
        if cfg:
            v_u, v_c = out.chunk(2)
            out = v_u + self.guidance_scale * (v_c - v_u)
        if self.transformer.config.out_channels // 2 == x_t.shape[1]:   # learned-sigma checkpoints
            out = out.chunk(2, dim=1)[0]
        return out


def pack_latents(x: torch.Tensor) -> torch.Tensor:
    """FLUX 2×2 packing: ``(B, C, H, W)`` → ``(B, (H/2)(W/2), 4C)``."""
    b, c, h, w = x.shape
    return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_latents(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`pack_latents` for a latent grid of ``height × width``."""
    b, _, c4 = tokens.shape
    x = tokens.view(b, height // 2, width // 2, c4 // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c4 // 4, height, width)


def _image_ids(h2: int, w2: int, device, dtype) -> torch.Tensor:
    ids = torch.zeros(h2, w2, 3)
    ids[..., 1] += torch.arange(h2)[:, None]
    ids[..., 2] += torch.arange(w2)[None, :]
    return ids.reshape(h2 * w2, 3).to(device=device, dtype=dtype)


@dataclass
class FluxPrompt:
    """Precomputed FLUX prompt embeddings (``FluxPipeline.encode_prompt`` output).

    Attributes
    ----------
    embeds : torch.Tensor
        ``(B, L, D)`` T5 embeddings.
    pooled : torch.Tensor
        ``(B, P)`` pooled CLIP embeddings.
    negative_embeds, negative_pooled : torch.Tensor, optional
        For true classifier-free guidance (``true_cfg_scale > 1``).
    """

    embeds: torch.Tensor
    pooled: torch.Tensor
    negative_embeds: torch.Tensor | None = None
    negative_pooled: torch.Tensor | None = None


class FluxVelocity(nn.Module):
    """Velocity of a ``FluxTransformer2DModel`` on spatial latents ``(B, C, H, W)``.

    The latents are packed into 2×2 tokens for the call and unpacked after, so every solver of
    the core (SpanLift's convolutions included) sees the spatial layout.

    Parameters
    ----------
    transformer : diffusers.FluxTransformer2DModel
    guidance : float
        Distilled guidance value for ``guidance_embeds`` models (FLUX.1-dev: 3.5); ignored otherwise.
    true_cfg_scale : float
        Above 1, a second call with the negative prompt and ``v = v_n + s·(v_p − v_n)``.
    """

    def __init__(self, transformer: nn.Module, guidance: float = 3.5, true_cfg_scale: float = 1.0):
        super().__init__()
        self.transformer = transformer
        self.guidance = float(guidance)
        self.true_cfg_scale = float(true_cfg_scale)

    def _call(self, tokens, ts, embeds, pooled, img_ids, guidance):
        dtype = self.transformer.dtype
        txt_ids = torch.zeros(embeds.shape[1], 3, device=tokens.device, dtype=dtype)
        return self.transformer(hidden_states=tokens, timestep=ts / 1000, guidance=guidance,
                                pooled_projections=pooled.to(dtype), encoder_hidden_states=embeds.to(dtype),
                                txt_ids=txt_ids, img_ids=img_ids, return_dict=False)[0]

    def forward(self, x_t: torch.Tensor, timestep: torch.Tensor, prompt: FluxPrompt) -> torch.Tensor:  # noqa: D102
        b, _, h, w = x_t.shape
        dtype = self.transformer.dtype
        tokens = pack_latents(x_t.to(torch.float32)).to(dtype)
        ts = timestep.to(tokens.dtype).expand(b)
        guidance = (torch.full([b], self.guidance, device=x_t.device, dtype=torch.float32)
                    if self.transformer.config.guidance_embeds else None)
        img_ids = _image_ids(h // 2, w // 2, x_t.device, dtype)
        v = self._call(tokens, ts, prompt.embeds, prompt.pooled, img_ids, guidance)
        if self.true_cfg_scale > 1.0:
            if prompt.negative_embeds is None:
                raise ValueError("true_cfg_scale > 1 needs negative prompt embeddings")
            v_n = self._call(tokens, ts, prompt.negative_embeds, prompt.negative_pooled, img_ids, guidance)
            v = v_n + self.true_cfg_scale * (v - v_n)
        return unpack_latents(v, h, w).float()


# --------------------------------------------------------------------------------------------
# Sampling and decoding
# --------------------------------------------------------------------------------------------

def sample_flow(velocity: nn.Module, noise: torch.Tensor, grid: FlowGrid, solver: Solver, prompt: Any = None,
                *, afs: bool = False, pipeline_timesteps: bool = True, checkpoint: bool = False,
                return_nfe: bool = False):
    """Noise → latents with a solver of the core on a flow model.

    Parameters
    ----------
    velocity : nn.Module
        ``velocity(x_t, timestep, prompt) -> v`` (e.g. :class:`SanaVelocity`, :class:`FluxVelocity`).
    noise : torch.Tensor
        Initial latents at ``t[0]`` (standard normal, as the pipelines draw them).
    grid : FlowGrid
        Schedule (:func:`sana_grid`, :func:`flux_grid`, or built from any flow times).
    solver : Solver
        Any solver of the core (``get_solver('euler')`` / ``get_solver('dpmpp-2m')`` reproduce the
        stock schedulers; learned solvers run the same way).
    prompt : Any
        Conditioning passed to ``velocity``.
    afs : bool
        Analytic first step (saves one NFE).
    pipeline_timesteps : bool
        Pass the grid's stock timesteps at grid points (exact reproduction); otherwise ``t·1000``.
    checkpoint : bool
        Gradient-checkpoint each step (training learned solvers).
    return_nfe : bool
        Also return the number of velocity evaluations.

    Returns
    -------
    torch.Tensor or (torch.Tensor, int)
        Latents at ``t[K]`` in the dtype of ``noise``.
    """
    den = PipelineFlowDenoiser(velocity, grid) if pipeline_timesteps else FlowDenoiser(velocity, 1000.0)
    sig = grid.sigmas()
    t0 = float(grid.t[0].clamp(max=T_MAX))
    x0 = noise.to(torch.float64) / (1 - t0)
    res = rollout(den, x0, sig, solver, cond=prompt, afs=afs, checkpoint=checkpoint)
    t_end = float(grid.t[-1])
    out = (res.x * (1 - t_end)).to(noise.dtype)
    return (out, res.nfe) if return_nfe else out


def decode_sana(vae: nn.Module, latents: torch.Tensor) -> torch.Tensor:
    """SANA latents → images in ``[0, 1]`` (``AutoencoderDC``; ``latents / scaling_factor``)."""
    img = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
    return (img.float() / 2 + 0.5).clamp(0, 1)


def decode_flux(vae: nn.Module, latents: torch.Tensor) -> torch.Tensor:
    """FLUX latents → images in ``[0, 1]`` (``AutoencoderKL``; ``latents / scaling + shift``)."""
    z = latents.to(vae.dtype) / vae.config.scaling_factor + vae.config.shift_factor
    img = vae.decode(z, return_dict=False)[0]
    return (img.float() / 2 + 0.5).clamp(0, 1)
