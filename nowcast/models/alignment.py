"""Knowledge alignment: steer sampling toward an anticipated average intensity (PreDiff-KA).

The constraint is ``F(x)`` = the spatial mean of each target frame (in [0, 1]). An alignment
network ``U_φ(z_t, t)`` predicts it from the *noisy* target latents and is trained with
``MSE(U_φ(z_t, t), F(x))`` on ``z_t = q_sample(z_0, t)``, ``z_0`` a VAE posterior sample, using the
diffusion model's β schedule.

At sampling time the user gives the anticipated intensity ``a*`` (never taken from the ground
truth). PreDiff shifts each ancestral mean by ``−σ_t·λ·∇_z‖mean_T U(z_t, t) − a*‖``; here the same
gradient enters the ε-prediction as classifier guidance, ``ε̃ = ε̂ + λ·√(1 − ᾱ_t)·∇_z‖…‖``, which
every solver of the core (ODE or ancestral) can use. Unlike PreDiff, the norm is taken per forecast
(not over the whole batch), so a member's forecast does not depend on the batch it is drawn in.
Off by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..foundation.config import DictRoundTrip
from .unet import (
    AxialAttentionBlock,
    PatchMerging,
    TimeEmbedResBlock,
    timestep_embedding,
)

__all__ = ["AlignmentConfig", "AlignmentNet", "frame_intensity", "alignment_loss", "AlignedEps"]


@dataclass(frozen=True)
class AlignmentConfig(DictRoundTrip):
    """Alignment network (defaults: PreDiff's ``NoisyCuboidTransformerEncoder``)."""

    latent_channels: int = 64
    target_frames: int = 6
    height: int = 16
    width: int = 16
    base_units: int = 128
    depth: tuple = (1, 1)
    heads: int = 4
    dropout: float = 0.0
    norm_groups: int = 32


def frame_intensity(frames: torch.Tensor) -> torch.Tensor:
    """``F(x)``: the mean of each frame of ``(B, T, H, W)`` → ``(B, T)``."""
    return frames.mean(dim=(-2, -1))


class AlignmentNet(nn.Module):
    """``U_φ(z_t, t)``: per-frame mean intensity from noisy target latents ``(B, Tt, L, h, w)``."""

    def __init__(self, cfg: AlignmentConfig = AlignmentConfig()):
        super().__init__()
        self.cfg = cfg
        c0 = cfg.base_units
        temb_dim = 4 * c0
        self.time_embed = nn.Sequential(nn.Linear(c0, temb_dim), nn.SiLU(), nn.Linear(temb_dim, temb_dim))
        self.first_proj = TimeEmbedResBlock(cfg.latent_channels, c0, None, cfg.dropout, cfg.norm_groups)
        self.res, self.attn, self.merge = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        dim, h, w = c0, cfg.height, cfg.width
        for level, n in enumerate(cfg.depth):
            if level:
                self.merge.append(PatchMerging(dim))
                dim, h, w = 2 * dim, h // 2, w // 2
            for _ in range(n):
                self.res.append(TimeEmbedResBlock(dim, dim, temb_dim, cfg.dropout, cfg.norm_groups))
                self.attn.append(AxialAttentionBlock(dim, cfg.heads, (cfg.target_frames, h, w), 4, cfg.dropout))
        self.levels = list(cfg.depth)
        self.norm = nn.GroupNorm(1, dim)
        self.pool = nn.MultiheadAttention(dim, cfg.heads, batch_first=True)
        self.head = nn.Linear(dim, 1)

    def forward(self, z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``(B, Tt)`` predicted frame intensities."""
        b = z_t.shape[0]
        t = torch.as_tensor(t, device=z_t.device).reshape(-1).expand(b)
        temb = self.time_embed(timestep_embedding(t, self.cfg.base_units).to(z_t.dtype))
        x = self.first_proj(z_t.transpose(1, 2))                        # (B, C, T, h, w)
        k = 0
        for level, n in enumerate(self.levels):
            if level:
                x = self.merge[level - 1](x)
            for _ in range(n):
                x = self.attn[k](self.res[k](x, temb))
                k += 1
        x = F.silu(self.norm(x))
        c, tt = x.shape[1], x.shape[2]
        tokens = x.permute(0, 2, 3, 4, 1).reshape(b * tt, -1, c)        # per frame: (h·w, C)
        query = tokens.mean(dim=1, keepdim=True)                        # CLIP-style: the mean token asks
        pooled, _ = self.pool(query, tokens, tokens, need_weights=False)
        return self.head(pooled).reshape(b, tt)


def alignment_loss(align: AlignmentNet, ldm, target: torch.Tensor, generator: torch.Generator | None = None,
                   t: torch.Tensor | None = None) -> torch.Tensor:
    """``MSE(U_φ(z_t, t), F(target))`` with ``z_t`` from the diffusion model's forward process.

    Parameters
    ----------
    align : AlignmentNet
    ldm : nowcast.models.ldm.LatentDiffusion
        Supplies the VAE and the β schedule.
    target : torch.Tensor
        ``(B, Tt, H, W)`` future frames in [0, 1].
    """
    z0 = ldm.encode_target(target, generator)
    b = z0.shape[0]
    if t is None:
        t = torch.randint(0, ldm.cfg.timesteps, (b,), generator=generator)
    t = t.to(z0.device)
    ac = ldm.alphas_cumprod[t].view(b, 1, 1, 1, 1).to(z0.dtype)
    noise = torch.randn(z0.shape, generator=generator).to(z0.device, z0.dtype)
    z_t = ac.sqrt() * z0 + (1 - ac).sqrt() * noise
    return F.mse_loss(align(z_t, t.float()), frame_intensity(target.to(z0.dtype)))


class AlignedEps(nn.Module):
    """An ε-model with alignment guidance toward ``a*``: ``model(z, t, cond) → ε̃``.

    Parameters
    ----------
    eps_model : nn.Module
        ``eps_model(z, t, cond)``.
    align : callable
        ``align(z, t) → (B, Tt)`` predicted frame intensities (an :class:`AlignmentNet`).
    alphas_cumprod : torch.Tensor
        ᾱ table of the diffusion model.
    a_star : torch.Tensor
        ``(B,)`` anticipated mean intensity over the forecast, in [0, 1], one per forecast in the
        batch the solver integrates (contexts × members).
    scale : float
        Guidance strength λ (PreDiff: 50).
    """

    def __init__(self, eps_model, align, alphas_cumprod: torch.Tensor, a_star: torch.Tensor, scale: float = 50.0):
        super().__init__()
        self.eps_model, self.align, self.scale = eps_model, align, scale
        self.register_buffer("alphas_cumprod", torch.as_tensor(alphas_cumprod, dtype=torch.float64),
                             persistent=False)
        self.register_buffer("a_star", torch.as_tensor(a_star, dtype=torch.float64).reshape(-1), persistent=False)

    def guidance(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``∇_z ‖mean_T U(z, t) − a*‖`` per forecast."""
        with torch.enable_grad():
            zg = z.detach().requires_grad_(True)
            u = self.align(zg, t).mean(dim=1)
            dist = (u - self.a_star.to(u.dtype)).abs()          # per-forecast norm of a scalar
            (grad,) = torch.autograd.grad(dist.sum(), zg)
        return grad

    def forward(self, z, t, cond):  # noqa: D102
        eps = self.eps_model(z, t, cond)
        tt = torch.as_tensor(t, dtype=torch.float64).reshape(-1).expand(z.shape[0])
        lo = tt.floor().long().clamp(0, len(self.alphas_cumprod) - 1)
        s = (1 - self.alphas_cumprod[lo]).sqrt().to(z.dtype).view(-1, *([1] * (z.ndim - 1)))
        return eps + self.scale * s * self.guidance(z, t)
