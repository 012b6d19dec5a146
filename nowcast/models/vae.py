"""Frame-wise KL autoencoder (PreDiff's stage 1, a diffusers-0.13-style AutoencoderKL).

Frames ``(N, C, H, W)`` in ``[0, 1]`` (VIL bytes / 255) are encoded to a diagonal Gaussian over
latents ``(N, latent_channels, H/8, W/8)``: conv_in, one down block per entry of
``block_out_channels`` (``layers_per_block`` ResNet blocks each, a stride-2 convolution after all
but the last), a mid block (ResNet, single-head self-attention, ResNet), GroupNorm + SiLU +
conv_out to mean and log-variance (clamped to [−30, 20]) and a 1×1 ``quant_conv``. The decoder
mirrors it (``layers_per_block + 1`` ResNets per up block, nearest ×2 + conv upsampling) and its
output is linear (no sigmoid, no clamp), as PreDiff's.

Loss (LDM's ``LPIPSWithDiscriminator`` with perceptual weight 0): ``Σ|x − x̂|/B + kl_weight·KL/B``
(KL summed over latent elements), plus, from ``disc_start`` on, ``d_w·(−mean D(x̂))`` with the
adaptive weight ``d_w = clamp(‖∇nll‖/(‖∇g‖ + 1e-4), 0, 1e4)·disc_weight`` taken at the decoder's
last convolution, and a hinge-loss PatchGAN discriminator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..foundation.config import DictRoundTrip

__all__ = ["VAEConfig", "DiagonalGaussian", "FrameVAE", "PatchDiscriminator", "vae_loss",
           "discriminator_loss"]


@dataclass(frozen=True)
class VAEConfig(DictRoundTrip):
    """Architecture and loss settings (defaults: PreDiff's SEVIR-LR VAE)."""

    in_channels: int = 1
    block_out_channels: tuple = (128, 256, 512, 512)
    layers_per_block: int = 2
    latent_channels: int = 64
    norm_groups: int = 32
    kl_weight: float = 1e-6
    disc_start: int = 50001          # first step with the GAN loss; negative: never
    disc_weight: float = 0.5
    disc_layers: int = 3
    disc_channels: int = 64

    @property
    def downsample_factor(self) -> int:
        """Spatial downsampling of the encoder."""
        return 2 ** (len(self.block_out_channels) - 1)


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, channels), channels, eps=1e-6)


class ResnetBlock(nn.Module):
    """GN → SiLU → conv → GN → SiLU → conv, with a 1×1 shortcut when the width changes."""

    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in, groups), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2, self.conv2 = _norm(c_out, groups), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x):  # noqa: D102
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.shortcut(x) + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over the H·W positions, residual."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = _norm(channels, groups)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x):  # noqa: D102
        b, c, h, w = x.shape
        t = self.norm(x).flatten(2).transpose(1, 2)               # (B, HW, C)
        q, k, v = self.qkv(t).chunk(3, dim=-1)
        a = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(a).transpose(1, 2).reshape(b, c, h, w)


class _Mid(nn.Sequential):
    def __init__(self, c: int, groups: int):
        super().__init__(ResnetBlock(c, c, groups), AttentionBlock(c, groups), ResnetBlock(c, c, groups))


class Encoder(nn.Module):
    """Frames → 2·latent_channels moments."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        chans, g = cfg.block_out_channels, cfg.norm_groups
        self.conv_in = nn.Conv2d(cfg.in_channels, chans[0], 3, padding=1)
        blocks, c_prev = [], chans[0]
        for i, c in enumerate(chans):
            for _ in range(cfg.layers_per_block):
                blocks.append(ResnetBlock(c_prev, c, g))
                c_prev = c
            if i < len(chans) - 1:
                blocks.append(nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(c, c, 3, stride=2)))
        self.down = nn.Sequential(*blocks)
        self.mid = _Mid(chans[-1], g)
        self.norm_out = _norm(chans[-1], g)
        self.conv_out = nn.Conv2d(chans[-1], 2 * cfg.latent_channels, 3, padding=1)

    def forward(self, x):  # noqa: D102
        h = self.mid(self.down(self.conv_in(x)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Latents → frames (linear output)."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        chans, g = tuple(reversed(cfg.block_out_channels)), cfg.norm_groups
        self.conv_in = nn.Conv2d(cfg.latent_channels, chans[0], 3, padding=1)
        self.mid = _Mid(chans[0], g)
        blocks, c_prev = [], chans[0]
        for i, c in enumerate(chans):
            for _ in range(cfg.layers_per_block + 1):
                blocks.append(ResnetBlock(c_prev, c, g))
                c_prev = c
            if i < len(chans) - 1:
                blocks.append(nn.Sequential(nn.Upsample(scale_factor=2.0, mode="nearest"),
                                            nn.Conv2d(c, c, 3, padding=1)))
        self.up = nn.Sequential(*blocks)
        self.norm_out = _norm(chans[-1], g)
        self.conv_out = nn.Conv2d(chans[-1], cfg.in_channels, 3, padding=1)

    def forward(self, z):  # noqa: D102
        h = self.up(self.mid(self.conv_in(z)))
        return self.conv_out(F.silu(self.norm_out(h)))


class DiagonalGaussian:
    """Posterior ``N(mean, exp(logvar))`` over latents ``(N, C, h, w)``."""

    def __init__(self, moments: torch.Tensor):
        self.mean, logvar = moments.chunk(2, dim=1)
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = (0.5 * self.logvar).exp()

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A draw ``mean + std·n``."""
        n = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * n

    def mode(self) -> torch.Tensor:
        """The mean."""
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL to N(0, I) per item, summed over latent elements: ``(N,)``."""
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar).sum(dim=(1, 2, 3))


class FrameVAE(nn.Module):
    """The frame autoencoder; sequences are encoded frame by frame."""

    def __init__(self, cfg: VAEConfig = VAEConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)
        two_l = 2 * cfg.latent_channels
        self.quant_conv = nn.Conv2d(two_l, two_l, 1)
        self.post_quant_conv = nn.Conv2d(cfg.latent_channels, cfg.latent_channels, 1)

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """Posterior of ``(N, C, H, W)`` frames in [0, 1]; H and W must be multiples of 8."""
        f = self.cfg.downsample_factor
        if x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(f"frame size {tuple(x.shape[-2:])} is not a multiple of {f}")
        return DiagonalGaussian(self.quant_conv(self.encoder(x)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Frames ``(N, C, H, W)`` from latents (linear output, roughly [0, 1])."""
        return self.decoder(self.post_quant_conv(z))

    def forward(self, x: torch.Tensor, sample: bool = True, generator=None):
        """Reconstruction and posterior."""
        post = self.encode(x)
        z = post.sample(generator) if sample else post.mode()
        return self.decode(z), post

    def encode_sequence(self, x: torch.Tensor, sample: bool = False, generator=None) -> torch.Tensor:
        """``(B, T, C, H, W)`` frames → ``(B, T, L, h, w)`` latents (posterior mode unless ``sample``)."""
        b, t = x.shape[:2]
        post = self.encode(x.reshape(b * t, *x.shape[2:]))
        z = post.sample(generator) if sample else post.mode()
        return z.reshape(b, t, *z.shape[1:])

    def decode_sequence(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, T, L, h, w)`` latents → ``(B, T, C, H, W)`` frames."""
        b, t = z.shape[:2]
        x = self.decode(z.reshape(b * t, *z.shape[2:]))
        return x.reshape(b, t, *x.shape[1:])


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix ``NLayerDiscriminator``): 4×4 convolutions, BatchNorm, LeakyReLU(0.2)."""

    def __init__(self, in_channels: int = 1, channels: int = 64, layers: int = 3):
        super().__init__()
        mods = [nn.Conv2d(in_channels, channels, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < layers else 1
            mods += [nn.Conv2d(channels * prev, channels * mult, 4, stride, 1, bias=False),
                     nn.BatchNorm2d(channels * mult), nn.LeakyReLU(0.2, True)]
        mods.append(nn.Conv2d(channels * mult, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x):  # noqa: D102
        return self.net(x)


def vae_loss(vae: FrameVAE, x: torch.Tensor, step: int, disc: PatchDiscriminator | None = None,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
    """Generator-side loss of a batch of frames ``(N, C, H, W)``.

    Returns
    -------
    loss : torch.Tensor
        ``nll + kl_weight·kl (+ d_w·g)`` (scalar).
    parts : dict
        Detached ``rec`` (mean |x − x̂|), ``nll``, ``kl``, ``g`` and ``d_weight`` and the
        reconstruction ``x_rec`` (detached) for the discriminator step.
    """
    cfg = vae.cfg
    x_rec, post = vae(x, sample=True, generator=generator)
    b = x.shape[0]
    rec = (x - x_rec).abs()
    nll = rec.sum() / b
    kl = post.kl().sum() / b
    loss = nll + cfg.kl_weight * kl
    g = d_weight = torch.zeros(())
    if disc is not None and 0 <= cfg.disc_start <= step:
        g = -disc(x_rec).mean()
        last = vae.decoder.conv_out.weight
        if torch.is_grad_enabled():
            gn = torch.autograd.grad(nll, last, retain_graph=True)[0].norm()
            gg = torch.autograd.grad(g, last, retain_graph=True)[0].norm()
            d_weight = (gn / (gg + 1e-4)).clamp(0, 1e4).detach() * cfg.disc_weight
        else:
            d_weight = torch.tensor(cfg.disc_weight)
        loss = loss + d_weight * g
    parts = {"rec": rec.mean().detach(), "nll": nll.detach(), "kl": kl.detach(), "g": g.detach(),
             "d_weight": torch.as_tensor(d_weight).detach(), "x_rec": x_rec.detach()}
    return loss, parts


def discriminator_loss(disc: PatchDiscriminator, x: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
    """Hinge loss ``½(mean relu(1 − D(x)) + mean relu(1 + D(x̂)))``."""
    return 0.5 * (F.relu(1.0 - disc(x)).mean() + F.relu(1.0 + disc(x_rec.detach())).mean())
