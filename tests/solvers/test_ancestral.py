"""Ancestral DDPM against diffusers' DDPMScheduler with the same noise stream."""

import pytest
import torch

from nowcast.solvers import VPDenoiser
from nowcast.solvers.ancestral import sample_ddpm

diffusers = pytest.importorskip("diffusers")


@pytest.mark.parametrize("steps", [None, 50])
def test_ddpm_matches_diffusers(steps, toy_eps, x_T):
    sched = diffusers.DDPMScheduler(beta_schedule="scaled_linear", beta_start=1e-4, beta_end=2e-2,
                                    variance_type="fixed_small", clip_sample=False)
    sched.alphas_cumprod = sched.alphas_cumprod.to(torch.float64)
    sched.set_timesteps(steps or 1000)
    g = torch.Generator().manual_seed(7)
    ref = x_T.clone()
    for t in sched.timesteps:
        ref = sched.step(toy_eps(ref, t.double().expand(ref.shape[0])), t, ref, generator=g).prev_sample
    den = VPDenoiser(toy_eps, sched.alphas_cumprod)
    out = sample_ddpm(den, x_T, steps=steps, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(out, ref, rtol=1e-8, atol=1e-8)
