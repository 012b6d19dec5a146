"""The optional first guess: a Lagrangian extrapolation fed to a guide UNet beside the noisy latents."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from nowcast.models.ldm import DiffusionConfig, LatentDiffusion
from nowcast.models.unet import SpaceTimeUNet
from nowcast.models.vae import FrameVAE

pytest.importorskip("pysteps")


@pytest.fixture
def guided_ldm(tiny_vae_cfg, tiny_unet_cfg):      # 3 context, 2 target frames; 32×32 → 4×4 latents
    torch.manual_seed(0)
    return LatentDiffusion(FrameVAE(tiny_vae_cfg), SpaceTimeUNet(replace(tiny_unet_cfg, guide=True)),
                           DiffusionConfig(first_guess="pysteps")).eval()


def _moving_blobs(n_frames: int, size: int = 64, u: float = 1.5, v: float = -1.0) -> torch.Tensor:
    """Frames in [0, 1] of two elongated Gaussian echoes moving (u, v) pixels per frame in (x, y)."""
    y, x = np.mgrid[:size, :size].astype(float)
    frames = []
    for k in range(n_frames):
        f = np.zeros((size, size))
        for cx, cy, a in ((20 + u * k, 34 + v * k, 0.8), (38 + u * k, 22 + v * k, 0.6)):
            f += a * np.exp(-((x - cx) ** 2 / 30.0 + (y - cy) ** 2 / 12.0))
        frames.append(f)
    return torch.from_numpy(np.stack(frames)[None].astype(np.float32)).clamp(0, 1)


def _centroid(frame: np.ndarray) -> np.ndarray:
    w = np.clip(frame, 0, None)
    y, x = np.mgrid[:frame.shape[0], :frame.shape[1]]
    return np.array([(w * x).sum(), (w * y).sum()]) / w.sum()


def test_the_first_guess_moves_the_echoes_on_along_their_motion(guided_ldm):
    n_lead = guided_ldm.unet.cfg.target_frames
    u, v = 1.5, -1.0
    ctx = _moving_blobs(3, u=u, v=v)
    guess = guided_ldm.first_guess_frames(ctx)
    assert guess.shape == (1, n_lead, 64, 64) and guess.dtype == torch.float32
    last = _centroid(ctx[0, -1].numpy())
    for k in range(n_lead):
        # the analytic answer: the last frame's echoes displaced by (k + 1)·(u, v)
        np.testing.assert_allclose(_centroid(guess[0, k].numpy()) - last, [(k + 1) * u, (k + 1) * v], atol=0.35)


def test_the_condition_carries_the_encoded_first_guess(guided_ldm):
    ctx = _moving_blobs(3, size=32, u=1.0, v=0.5)
    cond = guided_ldm.encode_context(ctx)
    c, t = guided_ldm.unet.cfg.context_frames, guided_ldm.unet.cfg.target_frames
    assert cond.shape == (1, c + t, guided_ldm.unet.cfg.latent_channels, 4, 4)
    torch.testing.assert_close(cond[:, :c], guided_ldm.encode_frames(ctx))
    torch.testing.assert_close(cond[:, c:], guided_ldm.encode_frames(guided_ldm.first_guess_frames(ctx)))
    fc = guided_ldm.forecast(ctx, seeds=(0, 1), solver="ddim", steps=3)
    assert fc.shape == (1, 2, t, 32, 32)


def test_the_guide_unet_reads_the_first_guess(tiny_unet_cfg):
    torch.manual_seed(1)
    cfg = replace(tiny_unet_cfg, guide=True)
    net = SpaceTimeUNet(cfg).eval()
    c, t, lc = cfg.context_frames, cfg.target_frames, cfg.latent_channels
    z_t, z_c = torch.randn(2, t, lc, 4, 4), torch.randn(2, c + t, lc, 4, 4)
    other = z_c.clone()
    other[:, c:] += 1.0                       # the same context, another first guess
    with torch.no_grad():
        assert not torch.allclose(net(z_t, torch.tensor([10.0, 500.0]), z_c), net(z_t, torch.tensor([10.0, 500.0]), other))
    with pytest.raises(ValueError, match="context \\+ first-guess"):
        net(z_t, torch.tensor([1.0]), z_c[:, :c])


def test_a_first_guess_needs_a_guide_unet_and_back(tiny_vae_cfg, tiny_unet_cfg):
    vae = FrameVAE(tiny_vae_cfg)
    with pytest.raises(ValueError, match="guide"):
        LatentDiffusion(vae, SpaceTimeUNet(tiny_unet_cfg), DiffusionConfig(first_guess="pysteps"))
    with pytest.raises(ValueError, match="guide"):
        LatentDiffusion(vae, SpaceTimeUNet(replace(tiny_unet_cfg, guide=True)), DiffusionConfig())
    plain = LatentDiffusion(vae, SpaceTimeUNet(tiny_unet_cfg), DiffusionConfig())
    with pytest.raises(ValueError, match="no first guess"):
        plain.first_guess_frames(torch.zeros(1, 3, 32, 32))
