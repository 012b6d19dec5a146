"""Earthformer-UNet-style space-time denoiser (PreDiff's stage-2 network).

Input: context latents ``z_c (B, Tc, L, h, w)`` and noisy target latents ``z_t (B, Tt, L, h, w)``,
concatenated along time, plus one observed/future indicator channel (1 on context frames, 0 on
target frames). With ``guide`` on, the condition also carries, after the context latents, the
latents of a first-guess forecast of the target frames (e.g. a Lagrangian extrapolation), or of
``guide_stacks`` such sequences (the Lagrangian history: the last context frames each moved on to the
target times): they are fed as ``guide_stacks·L`` extra channels of the target frames (zeros on the
context frames), so the network learns the forecast as a correction of the first guess. Path:

* ``first_proj``: a residual block of 3×3×3 convolutions (no time embedding) to ``base_units``,
  then a learned additive position embedding (time + height + width);
* the timestep: sinusoidal embedding → Linear → SiLU → Linear (width ``base_units·time_embed_mult``);
* per level, ``depth[i]`` × [residual 3-D conv block with the time embedding added → axial
  self-attention block (attention along T, then H, then W, each with a relative position bias and
  each followed by a feed-forward layer)]; 2×2 patch merging between levels (channels ×2), nearest
  ×2 + 3×3 convolution back up, with the level's activation added (additive skip);
* a LayerNorm and a linear projection to ``L`` channels of the target frames only → ε̂.

Tensors are ``(B, C, T, H, W)`` between blocks (channels first, as Conv3d wants).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..foundation.config import DictRoundTrip

__all__ = ["UNetConfig", "SpaceTimeUNet", "TIME_PADDINGS", "timestep_embedding", "AxialAttentionBlock", "TimeEmbedResBlock",
           "PatchMerging", "Upsample"]


@dataclass(frozen=True)
class UNetConfig(DictRoundTrip):
    """Architecture (defaults: PreDiff's SEVIR-LR Earthformer-UNet)."""

    latent_channels: int = 64
    context_frames: int = 7
    target_frames: int = 6
    height: int = 16
    width: int = 16
    base_units: int = 256
    depth: tuple = (4, 4)
    heads: int = 4
    time_embed_mult: int = 4
    ffn_mult: int = 4
    dropout: float = 0.1
    norm_groups: int = 32
    guide: bool = False       # the condition carries first-guess latents of the target frames too
    guide_stacks: int = 1     # first-guess sequences it carries (Lagrangian history, the latest last)
    time_padding: str = "zeros"  # 3-D convolutions' time edges: "zeros" (PreDiff) or "replicate"


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``[cos(t·f_k), sin(t·f_k)]`` of float timesteps ``(B,)`` → ``(B, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


def _groups(channels: int, groups: int) -> int:
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return g


TIME_PADDINGS = ("zeros", "replicate")


class TimeEmbedResBlock(nn.Module):
    """GN → SiLU → Conv3d(3) (+ Linear(temb)) → GN → SiLU → Dropout → Conv3d(3), residual.

    ``time_padding`` sets what the convolutions see past the first and last frame: ``"zeros"``
    (PreDiff's, and every model before it existed) or ``"replicate"`` (the edge frame repeated), under
    which a sequence that does not change in time stays unchanged at its ends too: the last target frame
    is not told, by zeros after it, that the field ends there. Space is always zero-padded.
    """

    def __init__(self, c_in: int, c_out: int, temb_dim: int | None, dropout: float, groups: int,
                 time_padding: str = "zeros"):
        super().__init__()
        if time_padding not in TIME_PADDINGS:
            raise ValueError(f"time_padding must be one of {TIME_PADDINGS}, got {time_padding!r}")
        self.pad_time = time_padding == "replicate"
        pad = (0, 1, 1) if self.pad_time else 1
        self.norm1 = nn.GroupNorm(_groups(c_in, groups), c_in)
        self.conv1 = nn.Conv3d(c_in, c_out, 3, padding=pad)
        self.temb = nn.Linear(temb_dim, c_out) if temb_dim else None
        self.norm2 = nn.GroupNorm(_groups(c_out, groups), c_out)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv3d(c_out, c_out, 3, padding=pad)
        self.skip = nn.Conv3d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def _time_edges(self, x):
        return F.pad(x, (0, 0, 0, 0, 1, 1), mode="replicate") if self.pad_time else x

    def forward(self, x, temb=None):  # noqa: D102
        h = self.conv1(self._time_edges(F.silu(self.norm1(x))))
        if self.temb is not None:
            h = h + self.temb(F.silu(temb))[:, :, None, None, None]
        h = self.conv2(self._time_edges(self.drop(F.silu(self.norm2(h)))))
        return self.skip(x) + h


class AxialAttention(nn.Module):
    """Multi-head self-attention along one axis of ``(B, T, H, W, C)`` with a relative position bias."""

    def __init__(self, dim: int, heads: int, length: int, axis: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"{dim} channels do not split into {heads} heads")
        self.heads, self.axis, self.length, self.dropout = heads, axis, length, dropout
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rel_bias = nn.Parameter(torch.zeros(2 * length - 1, heads))
        idx = torch.arange(length)
        self.register_buffer("rel_index", idx[:, None] - idx[None] + length - 1, persistent=False)

    def forward(self, x):  # noqa: D102
        # bring the attended axis next to channels: (..., L, C)
        xa = x.movedim(self.axis, -2)
        lead_shape, (n, c) = xa.shape[:-2], xa.shape[-2:]
        if n != self.length:
            raise ValueError(f"axis {self.axis} has length {n}, the block was built for {self.length}")
        t = self.norm(xa).reshape(-1, n, c)
        q, k, v = self.qkv(t).reshape(-1, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        bias = self.rel_bias[self.rel_index].permute(2, 0, 1).to(q.dtype)          # (heads, n, n)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias,
                                           dropout_p=self.dropout if self.training else 0.0)
        a = self.proj(a.transpose(1, 2).reshape(-1, n, c)).reshape(*lead_shape, n, c)
        return x + a.movedim(-2, self.axis)


class FeedForward(nn.Module):
    """Pre-norm GELU MLP, residual."""

    def __init__(self, dim: int, mult: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, mult * dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(mult * dim, dim), nn.Dropout(dropout))

    def forward(self, x):  # noqa: D102
        return x + self.net(x)


class AxialAttentionBlock(nn.Module):
    """Attention along T, H and W in turn (the "axial" cuboid pattern), each followed by an FFN."""

    def __init__(self, dim: int, heads: int, shape: tuple, ffn_mult: int, dropout: float):
        super().__init__()
        layers = []
        for axis, length in zip((1, 2, 3), shape):
            layers += [AxialAttention(dim, heads, length, axis, dropout), FeedForward(dim, ffn_mult, dropout)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        """``(B, C, T, H, W)`` → same."""
        return self.layers(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


class PatchMerging(nn.Module):
    """Merge 2×2 spatial patches: ``(B, C, T, H, W)`` → ``(B, 2C, T, H/2, W/2)``."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduce = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):  # noqa: D102
        b, c, t, h, w = x.shape
        x = x.permute(0, 2, 3, 4, 1).reshape(b, t, h // 2, 2, w // 2, 2, c)
        x = x.permute(0, 1, 2, 4, 3, 5, 6).reshape(b, t, h // 2, w // 2, 4 * c)
        return self.reduce(self.norm(x)).permute(0, 4, 1, 2, 3)


class Upsample(nn.Module):
    """Nearest ×2 in space (not time) and a 3×3 convolution per frame: ``2C → C`` channels."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)

    def forward(self, x):  # noqa: D102
        b, c, t, h, w = x.shape
        y = x.transpose(1, 2).reshape(b * t, c, h, w)
        y = self.conv(F.interpolate(y, scale_factor=2.0, mode="nearest"))
        return y.reshape(b, t, -1, 2 * h, 2 * w).transpose(1, 2)


class _Level(nn.Module):
    def __init__(self, dim: int, depth: int, temb_dim: int, shape: tuple, cfg: UNetConfig):
        super().__init__()
        self.res = nn.ModuleList(TimeEmbedResBlock(dim, dim, temb_dim, cfg.dropout, cfg.norm_groups,
                                                   cfg.time_padding) for _ in range(depth))
        self.attn = nn.ModuleList(AxialAttentionBlock(dim, cfg.heads, shape, cfg.ffn_mult, cfg.dropout)
                                  for _ in range(depth))

    def forward(self, x, temb):  # noqa: D102
        for res, attn in zip(self.res, self.attn):
            x = attn(res(x, temb))
        return x


class SpaceTimeUNet(nn.Module):
    """ε-prediction network ``net(z_t, t, z_c) → ε̂`` on latent sequences ``(B, T, L, h, w)``."""

    def __init__(self, cfg: UNetConfig = UNetConfig()):
        super().__init__()
        self.cfg = cfg
        n_levels = len(cfg.depth)
        if cfg.height % 2 ** (n_levels - 1) or cfg.width % 2 ** (n_levels - 1):
            raise ValueError(f"latent size {cfg.height}×{cfg.width} does not halve {n_levels - 1} times")
        t_all, c0 = cfg.context_frames + cfg.target_frames, cfg.base_units
        temb_dim = c0 * cfg.time_embed_mult
        self.time_embed = nn.Sequential(nn.Linear(c0, temb_dim), nn.SiLU(), nn.Linear(temb_dim, temb_dim))
        if cfg.guide_stacks < 1:
            raise ValueError(f"guide_stacks must be at least 1, got {cfg.guide_stacks}")
        c_in = cfg.latent_channels * (1 + (cfg.guide_stacks if cfg.guide else 0)) + 1
        self.first_proj = TimeEmbedResBlock(c_in, c0, None, cfg.dropout, cfg.norm_groups, cfg.time_padding)
        self.pos_t = nn.Parameter(torch.zeros(1, c0, t_all, 1, 1))
        self.pos_h = nn.Parameter(torch.zeros(1, c0, 1, cfg.height, 1))
        self.pos_w = nn.Parameter(torch.zeros(1, c0, 1, 1, cfg.width))
        for p in (self.pos_t, self.pos_h, self.pos_w):
            nn.init.trunc_normal_(p, std=0.02)
        dims = [c0 * 2 ** i for i in range(n_levels)]
        shapes = [(t_all, cfg.height // 2 ** i, cfg.width // 2 ** i) for i in range(n_levels)]
        self.down = nn.ModuleList(_Level(d, n, temb_dim, s, cfg) for d, n, s in zip(dims, cfg.depth, shapes))
        self.merge = nn.ModuleList(PatchMerging(d) for d in dims[:-1])
        self.up = nn.ModuleList(_Level(d, n, temb_dim, s, cfg) for d, n, s in zip(dims, cfg.depth, shapes))
        self.upsample = nn.ModuleList(Upsample(dims[i + 1], dims[i]) for i in range(n_levels - 1))
        self.norm_out = nn.LayerNorm(c0)
        self.final_proj = nn.Linear(c0, cfg.latent_channels)

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, z_c: torch.Tensor) -> torch.Tensor:
        """ε̂ for the target frames.

        Parameters
        ----------
        z_t : torch.Tensor
            ``(B, Tt, L, h, w)`` noisy target latents (VP space).
        t : torch.Tensor
            ``(B,)`` or scalar (fractional) timesteps.
        z_c : torch.Tensor
            ``(B, Tc, L, h, w)`` context latents; with ``guide`` on, ``(B, Tc + K·Tt, L, h, w)``: the
            context latents followed by ``K = guide_stacks`` first-guess sequences of the target frames
            (each ``Tt`` frames long), which reach the target frames as ``K·L`` extra channels.
        """
        cfg = self.cfg
        b = z_t.shape[0]
        if z_c.shape[0] != b and z_c.shape[0] == 1:
            z_c = z_c.expand(b, *z_c.shape[1:])
        n_guide = cfg.guide_stacks * cfg.target_frames if cfg.guide else 0
        n_cond = cfg.context_frames + n_guide
        if z_c.shape[1] != n_cond or z_t.shape[1] != cfg.target_frames:
            what = "context + first-guess" if cfg.guide else "context"
            raise ValueError(f"expected {n_cond} {what} and {cfg.target_frames} target frames, "
                             f"got {z_c.shape[1]} and {z_t.shape[1]}")
        z_c = z_c.to(z_t.dtype)
        x = torch.cat([z_c[:, :cfg.context_frames], z_t], dim=1)          # (B, T, L, h, w)
        parts = [x]
        if cfg.guide:
            g = z_c[:, cfg.context_frames:].unflatten(1, (cfg.guide_stacks, cfg.target_frames))
            g = g.transpose(1, 2).flatten(2, 3)                               # (B, Tt, K·L, h, w)
            parts.append(torch.cat([g.new_zeros(b, cfg.context_frames, *g.shape[2:]), g], 1))
        ind = torch.zeros(b, x.shape[1], 1, *x.shape[3:], dtype=x.dtype, device=x.device)
        ind[:, : cfg.context_frames] = 1
        x = torch.cat([*parts, ind], dim=2).transpose(1, 2)                # (B, C_in, T, h, w)
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(b)
        temb = self.time_embed(timestep_embedding(t, cfg.base_units).to(x.dtype))
        x = self.first_proj(x) + self.pos_t + self.pos_h + self.pos_w
        skips = []
        for i, level in enumerate(self.down):
            x = level(x, temb)
            if i < len(self.merge):
                skips.append(x)
                x = self.merge[i](x)
        for i in reversed(range(len(self.up))):
            if i < len(self.upsample):
                x = self.upsample[i](x) + skips[i]
            x = self.up[i](x, temb)
        x = x[:, :, cfg.context_frames:].permute(0, 2, 3, 4, 1)            # (B, Tt, h, w, C)
        return self.final_proj(self.norm_out(x)).permute(0, 1, 4, 2, 3)
