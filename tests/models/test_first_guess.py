"""The optional first guess: a Lagrangian extrapolation fed to a guide UNet beside the noisy latents."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from nowcast.models.ldm import DiffusionConfig, LatentDiffusion, member_noise
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


class _NoCorrection(torch.nn.Module):
    """The exact ε of a residual model whose correction is always zero: ``ε = u/√(1 − ᾱ_t)`` for
    the UNet input ``u = √(1 − ᾱ_t)·ε`` (ᾱ at fractional t log-linear in σ, computed here with numpy)."""

    def __init__(self, alphas_cumprod):
        super().__init__()
        ac = alphas_cumprod.double().numpy()
        self.log_sigmas = np.log(np.sqrt((1 - ac) / ac))

    def forward(self, u, t, cond):
        sigma = np.exp(np.interp(t.double().numpy(), np.arange(len(self.log_sigmas)), self.log_sigmas))
        one_minus_ac = torch.from_numpy(sigma ** 2 / (1 + sigma ** 2)).view(-1, *([1] * (u.dim() - 1)))
        return (u.double() / one_minus_ac.sqrt()).to(u.dtype)


class _GaussianCorrection(_NoCorrection):
    """The exact ε of corrections ``r ~ N(0, s²I)``: ``E[ε | u] = √(1 − ᾱ)·u / (ᾱ s² + 1 − ᾱ)``."""

    def __init__(self, alphas_cumprod, s: float):
        super().__init__(alphas_cumprod)
        self.s = s

    def forward(self, u, t, cond):
        sigma = np.exp(np.interp(t.double().numpy(), np.arange(len(self.log_sigmas)), self.log_sigmas))
        ac = torch.from_numpy(1 / (1 + sigma ** 2)).view(-1, *([1] * (u.dim() - 1)))
        return ((1 - ac).sqrt() * u.double() / (ac * self.s ** 2 + 1 - ac)).to(u.dtype)


@pytest.fixture
def residual_ldm(tiny_vae_cfg, tiny_unet_cfg):
    torch.manual_seed(0)
    return LatentDiffusion(FrameVAE(tiny_vae_cfg), SpaceTimeUNet(replace(tiny_unet_cfg, guide=True)),
                           DiffusionConfig(first_guess="pysteps", residual=True)).eval()


@pytest.mark.parametrize("solver, steps", [("ddim", 10), ("heun", 4), ("ddpm", 20)])
def test_a_residual_model_with_no_correction_forecasts_its_first_guess(residual_ldm, solver, steps):
    """Analytic oracle: when the correction's distribution is a point mass at zero, every sampler
    lands on the first guess, whatever the member's noise."""
    residual_ldm.eps_model.unet = _NoCorrection(residual_ldm.alphas_cumprod)
    ctx = _moving_blobs(3, size=32, u=1.0, v=0.5)
    z_c = residual_ldm.encode_context(ctx)
    z = residual_ldm.sample_latents(z_c, seeds=[0, 1, 2], solver=solver, steps=steps)
    g = z_c[:, residual_ldm.unet.cfg.context_frames:]
    for m in range(3):
        torch.testing.assert_close(z[:, m], g, rtol=1e-4, atol=1e-4)


def test_the_residual_loss_is_zero_for_no_correction_when_the_future_is_the_first_guess(residual_ldm):
    residual_ldm.eps_model.unet = _NoCorrection(residual_ldm.alphas_cumprod)
    residual_ldm.logvar.data.zero_()
    z_c = residual_ldm.encode_context(_moving_blobs(3, size=32))
    z_c = z_c.expand(4, *z_c.shape[1:])
    g = z_c[:, residual_ldm.unet.cfg.context_frames:]
    t = torch.tensor([0, 10, 400, 999])
    loss, _ = residual_ldm.loss_latents(z_c, g.clone(), torch.Generator().manual_seed(0), t)
    assert loss.item() < 1e-8
    shifted, _ = residual_ldm.loss_latents(z_c, g + 0.5, torch.Generator().manual_seed(0), t)
    assert shifted.item() > 1e-3


def test_a_residual_model_needs_a_first_guess_and_its_start_needs_the_condition(tiny_vae_cfg, tiny_unet_cfg,
                                                                                residual_ldm):
    with pytest.raises(ValueError, match="first_guess"):
        LatentDiffusion(FrameVAE(tiny_vae_cfg), SpaceTimeUNet(tiny_unet_cfg), DiffusionConfig(residual=True))
    noise = torch.randn(1, *residual_ldm.latent_shape())
    with pytest.raises(ValueError, match="condition"):
        residual_ldm.prior_state(noise, residual_ldm.solver_grid(5))


def test_a_residual_model_flows_gaussian_corrections_around_its_first_guess(residual_ldm):
    """Analytic oracle: for futures ``g + N(0, s²)`` the probability-flow ODE from the prior start
    ``x_T = g + √(1 + σ_T²)·n`` ends at ``g + √(1 + σ_T²)·n·s/√(s² + σ_T²)``."""
    s = 0.5
    residual_ldm.eps_model.unet = _GaussianCorrection(residual_ldm.alphas_cumprod, s)
    z_c = residual_ldm.encode_context(_moving_blobs(3, size=32, u=1.0, v=0.5)).double()
    g = z_c[:, residual_ldm.unet.cfg.context_frames:]
    seeds = [3, 4]
    z = residual_ldm.sample_latents(z_c, seeds=seeds, solver="heun", steps=60)
    sigma_T = residual_ldm.solver_grid(60)[0].double()
    noise = member_noise(residual_ldm.latent_shape(), seeds, torch.float64)
    expected = g[:, None] + noise[None] * (1 + sigma_T ** 2).sqrt() * s / (s ** 2 + sigma_T ** 2).sqrt()
    torch.testing.assert_close(z, expected, rtol=0, atol=2e-3)     # Heun-60's error; 250 steps: 2.3e-4
    # a start without the first guess would end g·s/√(s² + σ_T²) away: far outside the tolerance
    assert float((g * s / (s ** 2 + sigma_T ** 2).sqrt()).abs().max()) > 5e-3


class _AsV(torch.nn.Module):
    """The exact v of an exact-ε network: ``v = (ε − √(1 − ᾱ)·u)/√ᾱ`` for the UNet input ``u``
    (the inverse of ε = √ᾱ·v + √(1 − ᾱ)·u; ᾱ at fractional t computed here with numpy)."""

    def __init__(self, eps_net):
        super().__init__()
        self.eps_net = eps_net

    def forward(self, u, t, cond):
        sigma = np.exp(np.interp(t.double().numpy(), np.arange(len(self.eps_net.log_sigmas)),
                                 self.eps_net.log_sigmas))
        ac = torch.from_numpy(1 / (1 + sigma ** 2)).view(-1, *([1] * (u.dim() - 1)))
        eps = self.eps_net(u, t, cond).double()
        return ((eps - (1 - ac).sqrt() * u.double()) / ac.sqrt()).to(u.dtype)


@pytest.fixture
def residual_v_ldm(tiny_vae_cfg, tiny_unet_cfg):
    torch.manual_seed(0)
    return LatentDiffusion(FrameVAE(tiny_vae_cfg), SpaceTimeUNet(replace(tiny_unet_cfg, guide=True)),
                           DiffusionConfig(first_guess="pysteps", residual=True, prediction="v")).eval()


def test_a_v_prediction_residual_model_flows_gaussian_corrections_around_its_first_guess(residual_v_ldm):
    """The Gaussian-correction oracle above with a UNet that predicts the exact v instead of ε: the
    sampler sees the same ε-model, so it ends at the same analytic point."""
    s, m = 0.5, residual_v_ldm
    m.eps_model.unet = _AsV(_GaussianCorrection(m.alphas_cumprod, s))
    z_c = m.encode_context(_moving_blobs(3, size=32, u=1.0, v=0.5)).double()
    g = z_c[:, m.unet.cfg.context_frames:]
    z = m.sample_latents(z_c, seeds=[3, 4], solver="heun", steps=60)
    sigma_T = m.solver_grid(60)[0].double()
    noise = member_noise(m.latent_shape(), [3, 4], torch.float64)
    expected = g[:, None] + noise[None] * (1 + sigma_T ** 2).sqrt() * s / (s ** 2 + sigma_T ** 2).sqrt()
    torch.testing.assert_close(z, expected, rtol=0, atol=2e-3)


def test_the_v_loss_is_zero_for_the_exact_v_and_the_estimate_falls_back_on_the_first_guess(residual_v_ldm):
    """v-prediction of the correction: the exact v of a zero correction has zero loss (a shifted future
    does not), and at high noise a network that outputs v̂ = 0 estimates x̂₀ ≈ g (the error an
    ε-network's ε̂ = 0 makes instead is √((1−ᾱ)/ᾱ) times the noise)."""
    m = residual_v_ldm
    m.logvar.data.zero_()
    z_c = m.encode_context(_moving_blobs(3, size=32)).expand(4, -1, -1, -1, -1)
    g = z_c[:, m.unet.cfg.context_frames:]
    t = torch.tensor([0, 10, 400, 999])
    m.eps_model.unet = _AsV(_NoCorrection(m.alphas_cumprod))
    loss, _ = m.loss_latents(z_c, g.clone(), torch.Generator().manual_seed(0), t)
    assert loss.item() < 1e-8
    shifted, _ = m.loss_latents(z_c, g + 0.5, torch.Generator().manual_seed(0), t)
    assert shifted.item() > 1e-3

    class _Zero(torch.nn.Module):
        def forward(self, u, t, cond):
            return torch.zeros_like(u)

    m.eps_model.unet = _Zero()
    ac = float(m.alphas_cumprod[950])
    sigma = torch.tensor([((1 - ac) / ac) ** 0.5], dtype=torch.float64)
    noise = torch.randn(g[:1].shape, generator=torch.Generator().manual_seed(1))
    x = g[:1] + sigma.float() * noise                         # σ-space state of a zero correction
    x0 = m.denoiser()(x, sigma, cond=z_c[:1])
    a, s = ac ** 0.5, (1 - ac) ** 0.5                         # v̂ = 0: x̂₀ = g + √ᾱ·√(1−ᾱ)·n exactly
    torch.testing.assert_close(x0, g[:1] + a * s * noise, rtol=0, atol=1e-4)
    assert a * s < 0.1 < float(sigma)                         # an ε-network's ε̂ = 0 leaves x̂₀ = g + σ·n
    with pytest.raises(ValueError, match="prediction"):
        LatentDiffusion(m.vae, m.unet, DiffusionConfig(first_guess="pysteps", residual=True, prediction="x0"))


def _growing_blob(n_frames: int, size: int = 64, u: float = 1.5, v: float = -1.0, amps=None) -> np.ndarray:
    """``(1, T, H, W)`` VIL bytes of one echo moving (u, v) pixels per frame with peak bytes ``amps[k]``."""
    y, x = np.mgrid[:size, :size].astype(float)
    frames = [a * np.exp(-((x - 24 - u * k) ** 2 + (y - 36 - v * k) ** 2) / 40.0) for k, a in enumerate(amps)]
    return np.rint(np.stack(frames)[None]).astype(np.uint8)


def test_the_lagrangian_history_lands_every_context_frame_on_the_lead_times():
    """Analytic oracle: for an echo in uniform motion, context frame −h+j moved on lands where the echo
    will be at each lead time (centroid = last centroid + lead·(u, v)) and keeps its own intensity,
    so the rows side by side carry the echo's growth; the last row is the plain extrapolation."""
    from nowcast.baselines import get_baseline

    u, v, amps, n_lead = 1.5, -1.0, [80, 120, 160, 200], 3
    ctx = _growing_blob(4, u=u, v=v, amps=amps)
    base = get_baseline("pysteps")
    hist = base.lagrangian_history(ctx, n_lead, 3)
    assert hist.shape == (1, 3, n_lead, 64, 64) and hist.dtype == np.uint8
    np.testing.assert_array_equal(hist[:, -1:], base.forecast(ctx, n_lead))
    last = _centroid(ctx[0, -1].astype(float))
    for j in range(3):
        for k in range(n_lead):
            np.testing.assert_allclose(_centroid(hist[0, j, k].astype(float)) - last, [(k + 1) * u, (k + 1) * v],
                                       atol=0.35)
        peak = amps[len(amps) - 3 + j]       # the intensity of the context frame row j started from
        assert abs(int(hist[0, j].max()) - peak) <= 0.05 * peak
    with pytest.raises(ValueError, match="history"):
        base.lagrangian_history(ctx, n_lead, 5)


@pytest.fixture
def history_ldm(tiny_vae_cfg, tiny_unet_cfg):
    torch.manual_seed(0)
    return LatentDiffusion(FrameVAE(tiny_vae_cfg), SpaceTimeUNet(replace(tiny_unet_cfg, guide=True, guide_stacks=2)),
                           DiffusionConfig(first_guess="pysteps", first_guess_history=2, residual=True)).eval()


def test_the_condition_carries_the_history_with_the_first_guess_last(history_ldm):
    ctx = _moving_blobs(3, size=32, u=1.0, v=0.5)
    c, t = history_ldm.unet.cfg.context_frames, history_ldm.unet.cfg.target_frames
    cond = history_ldm.encode_context(ctx)
    assert cond.shape == (1, c + 2 * t, history_ldm.unet.cfg.latent_channels, 4, 4)
    ctx_bytes = np.rint(ctx.numpy() * 255).astype(np.uint8)
    from nowcast.baselines import get_baseline

    nowcast = torch.from_numpy(get_baseline("pysteps").forecast(ctx_bytes, t)[:, 0].astype(np.float32) / 255)
    torch.testing.assert_close(cond[:, -t:], history_ldm.encode_frames(nowcast))   # the residual's g
    assert history_ldm.forecast(ctx, seeds=(0, 1), steps=3).shape == (1, 2, t, 32, 32)


def test_the_guide_unet_reads_every_history_stack(tiny_unet_cfg):
    torch.manual_seed(1)
    cfg = replace(tiny_unet_cfg, guide=True, guide_stacks=3)
    net = SpaceTimeUNet(cfg).eval()
    c, t, lc = cfg.context_frames, cfg.target_frames, cfg.latent_channels
    z_t, z_c = torch.randn(2, t, lc, 4, 4), torch.randn(2, c + 3 * t, lc, 4, 4)
    tt = torch.tensor([10.0, 500.0])
    with torch.no_grad():
        ref = net(z_t, tt, z_c)
        for j in range(3):
            other = z_c.clone()
            other[:, c + j * t:c + (j + 1) * t] += 1.0
            assert not torch.allclose(ref, net(z_t, tt, other))
    with pytest.raises(ValueError, match="context \\+ first-guess"):
        net(z_t, tt, z_c[:, :c + t])
    with pytest.raises(ValueError, match="guide_stacks"):
        SpaceTimeUNet(replace(cfg, guide_stacks=0))


def test_a_history_needs_as_many_guide_stacks_and_a_lagrangian_first_guess(tiny_vae_cfg, tiny_unet_cfg):
    vae = FrameVAE(tiny_vae_cfg)
    with pytest.raises(ValueError, match="guide_stacks"):
        LatentDiffusion(vae, SpaceTimeUNet(replace(tiny_unet_cfg, guide=True)),
                        DiffusionConfig(first_guess="pysteps", first_guess_history=2))
    eulerian = LatentDiffusion(vae, SpaceTimeUNet(replace(tiny_unet_cfg, guide=True, guide_stacks=2)),
                               DiffusionConfig(first_guess="persistence", first_guess_history=2))
    with pytest.raises(ValueError, match="Lagrangian history"):
        eulerian.first_guess_frames(torch.zeros(1, 3, 32, 32))


def test_a_pixel_first_guess_model_with_no_correction_forecasts_the_extrapolation_itself(tiny_vae_cfg,
                                                                                       tiny_unet_cfg):
    """Oracle: pysteps' own nowcast. With no correction, the latent residual model forecasts the VAE
    reconstruction of the first guess; with ``first_guess_pixels`` every member is the extrapolation."""
    from nowcast.baselines import get_baseline

    torch.manual_seed(0)
    vae, unet = FrameVAE(tiny_vae_cfg), SpaceTimeUNet(replace(tiny_unet_cfg, guide=True))
    ctx = _moving_blobs(3, size=32, u=1.0, v=0.5)
    ctx_bytes = np.rint(ctx.numpy() * 255).astype(np.uint8)
    t = tiny_unet_cfg.target_frames
    nowcast = torch.from_numpy(get_baseline("pysteps").forecast(ctx_bytes, t).astype(np.float32) / 255)
    out = {}
    for pixels in (False, True):
        ldm = LatentDiffusion(vae, unet, DiffusionConfig(first_guess="pysteps", residual=True,
                                                         first_guess_pixels=pixels)).eval()
        ldm.eps_model.unet = _NoCorrection(ldm.alphas_cumprod)
        out[pixels] = ldm.forecast(ctx, seeds=(0, 1), solver="ddim", steps=10)
    torch.testing.assert_close(out[True], nowcast.expand_as(out[True]), rtol=0, atol=1e-4)
    assert (out[False] - nowcast).abs().max() > 1e-2          # the untrained VAE's reconstruction error
    with pytest.raises(ValueError, match="residual"):
        LatentDiffusion(vae, unet, DiffusionConfig(first_guess="pysteps", first_guess_pixels=True))
