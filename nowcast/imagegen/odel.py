"""A length-adaptive DiT denoiser: ODE_t(ODE_l) — shortcuts in time and in network depth.

The network is a DiT (patch embedding with fixed 2-D sine-cosine positions, adaLN-zero blocks, an
adaLN final layer) whose blocks are **rewired** as an ODE in depth (ODE_l; Gudovskiy et al.,
WACV 2026, arXiv 2506.21714):

* the blocks are split into groups of ``group`` blocks; a state ``x_0`` starts at the patch embedding;
* group k runs its blocks as a residual stack on the group's input state, and its output
  ``v_k = G_k(x_{k−1}, c)`` is one explicit Euler step in depth, ``x_k = x_{k−1} + v_k``, and is summed
  into the accumulator ``a_k = a_{k−1} + v_k`` (the last group may be shorter);
* the **accumulator** (not the last state) goes to the final layer, which predicts the velocity;
* a call at depth ``b`` runs the first ``b`` blocks: blocks past it are masked per sample (identity
  for the state, nothing for the accumulator), and skipped altogether when the whole batch stops
  there — one set of weights runs at any depth;
* the depth is embedded (a learned table of ``blocks + 1`` rows) and added to the conditioning,
  beside the noise level ``t``, the shortcut step size ``dt`` (ODE_t, Frans et al. 2024) and the
  class label (row ``classes`` = no label).

Flow matching convention: ``x_t = (1 − t)·x_0 + t·ε`` with ``t ∈ [0, 1]`` (``t = 1`` is noise), and the
network predicts the velocity ``dx_t/dt = ε − x_0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..foundation.config import DictRoundTrip

__all__ = ["ODELConfig", "LengthAdaptiveDiT", "timestep_embedding", "sincos_positions"]


@dataclass
class ODELConfig(DictRoundTrip):
    """Shape of a length-adaptive DiT.

    Attributes
    ----------
    shape : tuple
        ``(C, H, W)`` of the images.
    patch : int
        Patch size (H and W must be multiples of it).
    width : int
        Token width.
    heads : int
        Attention heads.
    blocks : int
        Transformer blocks (the full depth).
    group : int
        Blocks per Euler step of the depth ODE (the last group holds what is left).
    mlp_ratio : float
        MLP hidden width over ``width``.
    classes : int
        Class labels (0: unconditional).
    """

    shape: tuple = (1, 16, 16)
    patch: int = 2
    width: int = 64
    heads: int = 4
    blocks: int = 12
    group: int = 4
    mlp_ratio: float = 4.0
    classes: int = 10

    def __post_init__(self):
        self.shape = tuple(int(v) for v in self.shape)
        c, h, w = self.shape
        if h % self.patch or w % self.patch:
            raise ValueError(f"image size {h}×{w} is not a multiple of the patch size {self.patch}")
        if self.blocks < 1 or self.group < 1:
            raise ValueError(f"blocks ({self.blocks}) and group ({self.group}) must be ≥ 1")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not a multiple of heads {self.heads}")


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``(B, dim)`` of scalars ``t`` (``(B,)``), scaled by 1000 as DiT does."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1) if dim % 2 else emb


def sincos_positions(dim: int, gh: int, gw: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding ``(gh·gw, dim)`` (MAE/DiT layout: half for rows, half
    for columns)."""
    def one(d, pos):
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2))
        out = pos.double().reshape(-1)[:, None] * omega[None]
        return torch.cat([torch.sin(out), torch.cos(out)], dim=1)

    gy, gx = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    return torch.cat([one(dim // 2, gy), one(dim // 2, gx)], dim=1).float()


class _Embedder(nn.Module):
    """Scalar → conditioning vector (sinusoidal features, then a 2-layer MLP)."""

    def __init__(self, width: int, freq: int = 64):
        super().__init__()
        self.freq = freq
        self.mlp = nn.Sequential(nn.Linear(freq, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(v, self.freq).to(self.mlp[0].weight.dtype))


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    """adaLN-zero transformer block: ``x + g₁·Attn(mod(LN x)) + g₂·MLP(mod(LN x))``; zero gates at init."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        s1, sc1, g1, s2, sc2, g2 = self.ada(c).chunk(6, dim=-1)
        h = _modulate(self.norm1(x), s1, sc1)
        x = x + g1[:, None] * self.attn(h, h, h, need_weights=False)[0]
        return x + g2[:, None] * self.mlp(_modulate(self.norm2(x), s2, sc2))


class FinalLayer(nn.Module):
    """adaLN then a linear map of each token to its patch of pixels (zero at init)."""

    def __init__(self, width: int, patch: int, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.linear = nn.Linear(width, patch * patch * channels)
        for m in (self.ada[1], self.linear):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.ada(c).chunk(2, dim=-1)
        return self.linear(_modulate(self.norm(x), shift, scale))


class LengthAdaptiveDiT(nn.Module):
    """The ODE_l-rewired DiT (see the module docstring).

    Parameters
    ----------
    cfg : ODELConfig
        Its shape.
    """

    def __init__(self, cfg: ODELConfig):
        super().__init__()
        self.cfg = cfg
        c, h, w = cfg.shape
        p = cfg.patch
        self.grid = (h // p, w // p)
        self.patch_embed = nn.Conv2d(c, cfg.width, kernel_size=p, stride=p)
        self.register_buffer("pos", sincos_positions(cfg.width, *self.grid)[None], persistent=False)
        self.t_embed = _Embedder(cfg.width)
        self.dt_embed = _Embedder(cfg.width)
        self.depth_embed = nn.Embedding(cfg.blocks + 1, cfg.width)        # rows 0 … blocks
        self.y_embed = nn.Embedding(cfg.classes + 1, cfg.width) if cfg.classes else None   # last row: no label
        self.blocks = nn.ModuleList(DiTBlock(cfg.width, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.blocks))
        self.final = FinalLayer(cfg.width, p, c)

    # -- pieces shared with the tests' reference computation ---------------------------------------
    def depths(self, depth, batch: int, device) -> torch.Tensor:
        """Per-sample depths ``(B,)`` (default: full depth), checked against ``1 … blocks``."""
        if depth is None:
            depth = self.cfg.blocks
        d = torch.as_tensor(depth, device=device, dtype=torch.long).reshape(-1)
        d = d.expand(batch) if d.numel() == 1 else d
        if d.numel() != batch or int(d.min()) < 1 or int(d.max()) > self.cfg.blocks:
            raise ValueError(f"depth must be 1 … {self.cfg.blocks} (one value or one per sample), got {depth}")
        return d

    def conditioning(self, t: torch.Tensor, dt: torch.Tensor, depth: torch.Tensor, y=None) -> torch.Tensor:
        """``c = emb(t) + emb(dt) + depth_table[depth] (+ label_table[y])``."""
        c = self.t_embed(t) + self.dt_embed(dt) + self.depth_embed(depth)
        if self.y_embed is not None:
            if y is None:
                y = torch.full_like(depth, self.cfg.classes)
            c = c + self.y_embed(y)
        return c

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens ``(B, N, width)`` with positions."""
        return self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos

    def unpatchify(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, N, p·p·C)`` → ``(B, C, H, W)``."""
        c, h, w = self.cfg.shape
        p, (gh, gw) = self.cfg.patch, self.grid
        x = tokens.reshape(-1, gh, gw, p, p, c)
        return torch.einsum("bhwpqc->bchpwq", x).reshape(-1, c, h, w)

    # -- forward --------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, t: torch.Tensor, dt: torch.Tensor | None = None, depth=None,
                y: torch.Tensor | None = None) -> torch.Tensor:
        """The velocity at ``x`` (``(B, C, H, W)``), noise level ``t`` (``(B,)`` in [0, 1]), shortcut step
        ``dt`` (``(B,)``; default 0, the instantaneous velocity) and ``depth`` blocks (an int or ``(B,)``;
        default: all)."""
        b = x.shape[0]
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1).expand(b)
        dt = torch.zeros_like(t) if dt is None else torch.as_tensor(dt, dtype=x.dtype, device=x.device).reshape(-1).expand(b)
        d = self.depths(depth, b, x.device)
        c = self.conditioning(t, dt, d, y)
        state = self.embed(x)
        acc = torch.zeros_like(state)
        deepest = int(d.max())
        g = self.cfg.group
        for k in range(0, deepest, g):                           # groups that any sample reaches
            h = state
            for j in range(k, min(k + g, deepest)):
                out = self.blocks[j](h, c)
                keep = (j < d).to(h.dtype)[:, None, None]        # blocks past a sample's depth: identity
                h = keep * out + (1 - keep) * h
            v = (k < d).to(h.dtype)[:, None, None] * h           # the group's output; nothing past the depth
            state = state + v                                    # one explicit Euler step in depth
            acc = acc + v
        return self.unpatchify(self.final(acc, c))

    def block_count(self, depth=None) -> int:
        """Blocks one call at ``depth`` runs (its cost in block-evaluations)."""
        return int(self.cfg.blocks if depth is None else depth)
