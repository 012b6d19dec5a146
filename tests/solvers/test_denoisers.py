"""Denoiser adapters against independent formulas and diffusers."""

import pytest
import torch

from nowcast.solvers import (CFGDenoiser, EDMPrecond, Euler, FlowDenoiser, VPDenoiser, edm_scalings,
                             flow_times, make_betas, rollout)
from nowcast.solvers.denoisers import flow_t_to_sigma

S2 = 0.3  # data variance of the Gaussian oracle N(0, S2·I)


def gaussian_D(x, sigma):
    """Exact EDM-space denoiser of N(0, S2·I): S2/(S2+σ²)·x."""
    return S2 / (S2 + sigma ** 2) * x


@pytest.mark.parametrize("kind,diff_name", [("linear", "linear"), ("sqrt_linear", "scaled_linear"),
                                            ("scaled_linear", "scaled_linear"), ("cosine", "squaredcos_cap_v2")])
def test_betas_match_diffusers(kind, diff_name):
    diffusers = pytest.importorskip("diffusers")
    s = diffusers.DDPMScheduler(beta_schedule=diff_name, beta_start=1e-4, beta_end=2e-2)
    torch.testing.assert_close(make_betas(kind).float(), s.betas, rtol=1e-5, atol=1e-7)


def test_edm_scalings_match_diffusers():
    diffusers = pytest.importorskip("diffusers")
    s = diffusers.EDMEulerScheduler(sigma_data=0.5)
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    F = torch.randn_like(x)
    for sigma in (0.002, 0.7, 80.0):
        sg = torch.tensor(sigma, dtype=torch.float64)
        c_skip, c_out, c_in, c_noise = edm_scalings(sg, 0.5)
        torch.testing.assert_close(c_in * x, s.precondition_inputs(x, sg))
        torch.testing.assert_close(c_noise, s.precondition_noise(sg).reshape(()).to(torch.float64))
        torch.testing.assert_close(c_skip * x + c_out * F, s.precondition_outputs(x, F, sg))


def test_edm_precond_wraps_raw_network():
    calls = {}

    def net(x_in, c_noise, cond):
        calls["c_noise"] = c_noise
        return torch.ones_like(x_in)

    den = EDMPrecond(net, sigma_data=0.5)
    x = torch.randn(2, 1, 3, 3, dtype=torch.float64)
    out = den(x, torch.tensor([1.0, 2.0], dtype=torch.float64))
    s = torch.tensor([1.0, 2.0], dtype=torch.float64).reshape(2, 1, 1, 1)
    torch.testing.assert_close(out, 0.25 / (s ** 2 + 0.25) * x + s * 0.5 / (s ** 2 + 0.25).sqrt())
    torch.testing.assert_close(calls["c_noise"], torch.log(torch.tensor([1.0, 2.0], dtype=torch.float64)) / 4)


class _ExactVP(torch.nn.Module):
    """The exact ε/v/x₀ predictions of Gaussian data under a VP table (an analytic model)."""

    def __init__(self, ac, prediction):
        super().__init__()
        self.ac, self.prediction = ac, prediction

    def forward(self, x, t, cond=None):
        a = self.ac[t.round().long()].reshape(-1, 1, 1, 1)
        alpha, s_vp = a.sqrt(), (1 - a).sqrt()
        x0 = alpha * S2 / (a * S2 + (1 - a)) * x        # E[x0 | x_vp]
        eps = (x - alpha * x0) / s_vp
        return {"epsilon": eps, "v": alpha * eps - s_vp * x0, "sample": x0}[self.prediction]


@pytest.mark.parametrize("prediction", ["epsilon", "v", "sample"])
def test_vp_denoiser_recovers_gaussian_posterior_mean(prediction):
    ac = torch.cumprod(1 - make_betas("sqrt_linear"), 0)
    den = VPDenoiser(_ExactVP(ac, prediction), ac, prediction=prediction)
    x = torch.randn(4, 1, 4, 4, dtype=torch.float64) * 3
    for t in (0, 10, 500, 999):
        sigma = ((1 - ac[t]) / ac[t]).sqrt()
        torch.testing.assert_close(den(x, sigma), gaussian_D(x, sigma), rtol=1e-8, atol=1e-8)
        assert abs(float(den.sigma_to_t(sigma.reshape(1))) - t) < 1e-6


def _flow_gaussian_v(x, t, cond=None):
    """Exact flow-matching velocity of N(0, S2·I) data (reference §4.4)."""
    t = t.reshape(-1, 1, 1, 1).to(x.dtype)
    return x * (t - (1 - t) * S2) / ((1 - t) ** 2 * S2 + t ** 2)


def test_flow_denoiser_is_exact_on_gaussian():
    den = FlowDenoiser(_flow_gaussian_v)
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    for sigma in (0.01, 1.0, 50.0):
        s = torch.tensor(sigma, dtype=torch.float64)
        torch.testing.assert_close(den(x, s), gaussian_D(x, s), rtol=1e-10, atol=1e-10)


def test_flow_euler_in_t_space_equals_euler_in_sigma_space():
    ts = flow_times(8, shift=3.0, t_max=0.995, t_min=0.0)[:-1]  # stop before t = 0 (σ̃ = 0)
    x_t = torch.randn(2, 1, 5, 5, dtype=torch.float64)
    ref = x_t.clone()
    for t, t_next in zip(ts[:-1], ts[1:]):  # FM Euler: x ← x + (t' − t) v(x, t)
        ref = ref + (t_next - t) * _flow_gaussian_v(ref, t.reshape(1))
    sig = flow_t_to_sigma(ts)
    out = rollout(FlowDenoiser(_flow_gaussian_v), x_t / (1 - ts[0]), sig, Euler()).x
    torch.testing.assert_close(out * (1 - ts[-1]), ref, rtol=1e-12, atol=1e-12)


def test_flow_euler_matches_diffusers_flow_scheduler():
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=1.0)
    ts = [0.99, 0.8, 0.55, 0.3, 0.1]
    sched.set_timesteps(sigmas=ts)
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    ref = x.clone()
    for t in sched.timesteps:
        ref = sched.step(_flow_gaussian_v(ref, (t / 1000).reshape(1).double()), t, ref).prev_sample
    grid = torch.tensor(ts, dtype=torch.float64)
    out = rollout(FlowDenoiser(_flow_gaussian_v), x / (1 - grid[0]), flow_t_to_sigma(grid),
                  Euler()).x * (1 - grid[-1])
    # diffusers' last step goes to t = 0 (x̂₀): finish ours the same way with one more Euler step
    last = out + (0 - grid[-1]) * _flow_gaussian_v(out, grid[-1:])
    torch.testing.assert_close(last, ref, rtol=1e-5, atol=1e-5)


class _CondEps(torch.nn.Module):
    def forward(self, x, t, cond):
        return torch.tanh(x + cond) * (1 + t.reshape(-1, 1, 1, 1) / 1000)


@pytest.mark.parametrize("batched", [True, False])
def test_cfg_equals_guidance_in_eps_space(batched):
    ac = torch.cumprod(1 - make_betas("sqrt_linear"), 0)
    model = _CondEps()
    inner = VPDenoiser(model, ac)
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    cond, uncond = torch.full_like(x, 0.7), torch.zeros_like(x)
    w = 3.5
    cfg = CFGDenoiser(inner, w, uncond if batched else 0.0)
    sigma = ((1 - ac[400]) / ac[400]).sqrt()
    x_in = x / (1 + sigma ** 2).sqrt()
    t = inner.sigma_to_t(sigma.expand(2))
    eps_u = model(x_in, t, uncond)
    eps_c = model(x_in, t, cond)
    expected = x - sigma * (eps_u + w * (eps_c - eps_u))
    torch.testing.assert_close(cfg(x, sigma, cond), expected, rtol=1e-10, atol=1e-10)


def test_vp_denoiser_rejects_unknown_prediction():
    with pytest.raises(ValueError, match="prediction"):
        VPDenoiser(_CondEps(), torch.ones(10) * 0.5, prediction="score")
