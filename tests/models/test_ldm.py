"""Latent diffusion: loss, DDIM against diffusers, per-member reproducibility, EMA."""

import pytest
import torch

from nowcast.models.ema import EMA


def _frames(b, t, seed=0):
    return torch.rand(b, t, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_forecast_layout_and_the_context_matters(tiny_ldm):
    ctx = _frames(2, 3)
    fc = tiny_ldm.forecast(ctx, seeds=(0, 1, 2), solver="ddim", steps=4)
    assert fc.shape == (2, 3, 2, 32, 32) and fc.min() >= 0 and fc.max() <= 1
    other = tiny_ldm.forecast(ctx.flip(-1), seeds=(0, 1, 2), solver="ddim", steps=4)
    assert not torch.allclose(fc, other)
    assert not torch.allclose(fc[:, 0], fc[:, 1])                 # members differ


def test_members_are_reproducible_whatever_the_batch(tiny_ldm):
    ctx = _frames(3, 3, seed=1)
    for solver, steps in (("ddim", 3), ("ipndm", 3), ("ddpm", 5)):
        full = tiny_ldm.forecast(ctx, seeds=(7, 8), solver=solver, steps=steps)
        alone = tiny_ldm.forecast(ctx[1:2], seeds=(8,), solver=solver, steps=steps)
        torch.testing.assert_close(alone[0, 0], full[1, 1], rtol=1e-4, atol=1e-4)


def test_ddim_1000_equals_diffusers_ddim_and_euler_on_the_discrete_grid(tiny_ldm):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=2e-2,
                                    beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=True)
    sched.set_timesteps(1000)
    tiny_ldm.double()          # float64 on both sides: 1000 steps compound float32 rounding
    z_c = tiny_ldm.encode_context(_frames(1, 3, seed=2).double())
    ours = tiny_ldm.sample_latents(z_c, seeds=(3,), solver="ddim", steps=1000)[0, 0]
    from nowcast.models.ldm import member_noise

    z = member_noise(tiny_ldm.latent_shape(), (3,), dtype=torch.float64)
    with torch.no_grad():
        for t in sched.timesteps:
            eps = tiny_ldm.unet(z, t.float().reshape(1), z_c)
            z = sched.step(eps, t, z).prev_sample
    # diffusers keeps its ᾱ table in float32: agreement to ~1e-5 is its precision
    torch.testing.assert_close(ours, z[0], rtol=1e-4, atol=1e-4)
    # and it is Euler on the 1000-point σ grid σ_t = √((1−ᾱ_t)/ᾱ_t), written out with the ε-network:
    # x ← x + (σ_next − σ)·ε(x/√(1+σ²), t), from x_T = z_T·√(1+σ_T²)
    ac = tiny_ldm.alphas_cumprod.double()
    sig = ((1 - ac) / ac).sqrt()
    x = member_noise(tiny_ldm.latent_shape(), (3,), dtype=torch.float64) * (1 + sig[-1] ** 2).sqrt()
    with torch.no_grad():
        for t in range(999, -1, -1):
            eps = tiny_ldm.unet(x / (1 + sig[t] ** 2).sqrt(), torch.tensor([float(t)], dtype=torch.float64), z_c)
            x = x + ((sig[t - 1] if t > 0 else 0.0) - sig[t]) * eps
    torch.testing.assert_close(ours, x[0], rtol=1e-9, atol=1e-9)


def test_a_few_training_steps_lower_the_loss_on_a_fixed_batch(tiny_ldm):
    ctx, tgt = _frames(4, 3, seed=3), _frames(4, 2, seed=4)
    params = [p for p in tiny_ldm.parameters() if p.requires_grad]
    assert not any(p.requires_grad for p in tiny_ldm.vae.parameters())
    opt = torch.optim.Adam(params, lr=3e-3)
    tiny_ldm.train()
    t = torch.tensor([100, 300, 500, 700])
    losses = []
    for _ in range(30):
        loss, parts = tiny_ldm.loss(ctx, tgt, generator=torch.Generator().manual_seed(0), t=t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    assert tiny_ldm.logvar.grad is not None and tiny_ldm.logvar.grad[t].abs().sum() > 0


def test_ema_warms_up_and_swaps_back():
    lin = torch.nn.Linear(2, 1)
    ema = EMA(lin, decay=0.9)
    w0 = lin.weight.detach().clone()
    with torch.no_grad():
        lin.weight.add_(1.0)
    ema.update(lin)                                   # n = 1: d = min(0.9, 2/11)
    d = 2 / 11
    torch.testing.assert_close(ema.shadow[0], w0 + (1 - d) * 1.0)
    with ema.swapped(lin):
        torch.testing.assert_close(lin.weight, ema.shadow[0])
    torch.testing.assert_close(lin.weight, w0 + 1.0)



def test_members_beyond_one_batch_run_in_turn_and_stay_the_same(tiny_ldm):
    """Members are sampled and decoded MEMBER_BATCH at a time (memory stays flat for any ensemble):
    member m of a large ensemble is member m forecast on its own."""
    from nowcast.models.ldm import MEMBER_BATCH

    ctx = _frames(1, 3, seed=2)
    seeds = list(range(MEMBER_BATCH + 2))
    full, nfe = tiny_ldm.forecast(ctx, seeds=seeds, solver="ddim", steps=2, return_nfe=True)
    assert full.shape[1] == MEMBER_BATCH + 2 and nfe == 2
    for m in (0, MEMBER_BATCH - 1, MEMBER_BATCH, MEMBER_BATCH + 1):
        alone = tiny_ldm.forecast(ctx, seeds=(m,), solver="ddim", steps=2)
        torch.testing.assert_close(alone[0, 0], full[0, m], rtol=1e-4, atol=1e-4)
