"""Solvers against analytic oracles: exact paths, closed forms, convergence orders, NFE counts."""

import math

import numpy as np
import pytest
import torch

from nowcast.solvers import (IPNDM, DPMSolverPP, DyWeight, Entry, SpanLift, StepContext, UniPC,
                             edm_sigmas, get_schedule, get_solver, rollout)
from nowcast.solvers.testbeds import PointMass, gaussian_field, grf_mixture

ALL_BASE = [("euler", {}), ("heun", {}), ("dpm2", {}), ("ipndm", {"max_order": 1}),
            ("ipndm", {"max_order": 2}), ("ipndm", {"max_order": 3}), ("ipndm", {"max_order": 4}),
            ("dpmpp-2m", {}), ("dpmpp-3m", {}), ("unipc-bh1", {"order": 2}), ("unipc-bh2", {"order": 3}),
            ("unipc-bh1", {"order": 3})]


def _all_solvers(steps):
    out = [get_solver(n, **kw) for n, kw in ALL_BASE]
    out.append(DyWeight(steps))
    out.append(SpanLift(get_solver("ipndm"), num_steps=steps, channels=2))
    out.append(SpanLift(DyWeight(steps), num_steps=steps, channels=2))
    return out


@pytest.mark.parametrize("steps", [1, 3, 6])
def test_every_solver_is_exact_on_a_point_mass(steps):
    mu = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    den = PointMass(mu)
    sig = edm_sigmas(steps)
    x = mu + 80 * torch.randn(3, 2, 5, 5, dtype=torch.float64)
    exact = den.exact_solution(x, sig[0], sig[-1])
    for solver in _all_solvers(steps):
        out = rollout(den, x, sig, solver).x
        # x ≈ 80 cancels down to ≈ 0.002·(x − μ)/80: allow the round-off of that cancellation
        torch.testing.assert_close(out, exact, rtol=1e-9, atol=1e-9, msg=solver.name)


def test_heun_matches_closed_form_on_scalar_gaussian():
    s2 = 0.25
    den = lambda x, sigma, cond=None: s2 / (s2 + sigma ** 2) * x  # noqa: E731
    a = lambda s: s / (s2 + s ** 2)  # d = a(σ)·x  # noqa: E731
    sig = edm_sigmas(7)
    x0 = torch.tensor([[1.3]], dtype=torch.float64) * 80
    # Heun's update is linear: x_{n+1} = x_n·(1 + h/2·(a_n + a_{n+1}(1 + h·a_n)))
    gain = 1.0
    s = sig.numpy()
    for n in range(7):
        h = s[n + 1] - s[n]
        gain *= 1 + h / 2 * (a(s[n]) + a(s[n + 1]) * (1 + h * a(s[n])))
    out = rollout(den, x0, sig, get_solver("heun"))
    assert out.nfe == 14
    torch.testing.assert_close(out.x, x0 * gain, rtol=1e-13, atol=0)


def _order(name, kwargs, schedule):
    tb = gaussian_field(8)
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 80
    errs = []
    for K in (32, 64, 128):
        sig = get_schedule(schedule)(K)
        out = rollout(tb, x, sig, get_solver(name, **kwargs)).x
        errs.append(float((out - tb.exact_solution(x, sig[0], sig[-1])).pow(2).mean().sqrt()))
    return math.log2(errs[0] / errs[2]) / 2


# Global orders observed between 32 and 128 steps. The multistep rules warm up with a first-order
# step, whose O(h²) local error caps iPNDM and DPM-Solver++(3M) at global order 2; UniPC's
# corrector lifts the warm-up too, so UniPC-p reaches order p + 1.
@pytest.mark.parametrize("name,kwargs,schedule,lo,hi", [
    ("euler", {}, "edm", 0.85, 1.15),
    ("heun", {}, "edm", 1.85, 2.2),
    ("dpm2", {}, "edm", 1.85, 2.2),
    ("dpmpp-2m", {}, "logsnr", 1.8, 2.3),
    ("ipndm", {}, "edm", 1.85, 2.6),
    ("dpmpp-3m", {"lower_order_final": False}, "logsnr", 1.8, 2.6),
    ("unipc-bh2", {"order": 3}, "edm", 3.4, 4.6),
    ("unipc-bh1", {"order": 2}, "edm", 2.6, 3.6),
])
def test_convergence_orders_on_gaussian_random_field(name, kwargs, schedule, lo, hi):
    p = _order(name, kwargs, schedule)
    assert lo <= p <= hi, f"{name}: observed order {p:.2f}"


@pytest.mark.parametrize("p", [1, 2, 3, 4])
def test_ipndm_step_is_exact_for_polynomial_velocity_on_uniform_grid(p):
    rng = np.random.default_rng(p)
    coef = rng.normal(size=p)  # d(σ) = Σ c_k σ^k, degree p − 1, independent of x
    d = lambda s: float(np.polyval(coef[::-1], s))  # noqa: E731
    integral = lambda a, b: float(np.polyval(np.polyint(coef[::-1]), b) - np.polyval(np.polyint(coef[::-1]), a))  # noqa: E731
    grid = torch.linspace(10.0, 4.0, 7, dtype=torch.float64)  # uniform σ grid
    n = 5
    x = torch.full((1, 1, 2, 2), 3.0, dtype=torch.float64)
    buf = [Entry(grid[j], x, x, torch.full_like(x, d(float(grid[j])))) for j in range(n - p + 1, n + 1)]
    step = IPNDM(max_order=p).step(StepContext(n, x, grid, buf, None, {}))
    exact = 3.0 + integral(float(grid[n]), float(grid[n + 1]))
    torch.testing.assert_close(step.x_next, torch.full_like(x, exact), rtol=1e-12, atol=1e-12)
    # and the fixed coefficients are not exact on a non-uniform grid (for p > 1)
    if p > 1:
        g2 = torch.tensor([10.0, 9.0, 7.5, 6.5, 5.0, 4.5, 3.0], dtype=torch.float64)
        buf2 = [Entry(g2[j], x, x, torch.full_like(x, d(float(g2[j])))) for j in range(n - p + 1, n + 1)]
        step2 = IPNDM(max_order=p).step(StepContext(n, x, g2, buf2, None, {}))
        exact2 = 3.0 + integral(float(g2[n]), float(g2[n + 1]))
        assert abs(float(step2.x_next.flatten()[0]) - exact2) > 1e-8


@pytest.mark.parametrize("name,kwargs,per_step", [
    ("euler", {}, 1), ("ipndm", {}, 1), ("dpmpp-3m", {}, 1), ("unipc", {}, 1), ("heun", {}, 2),
    ("dpm2", {}, 2)])
@pytest.mark.parametrize("afs", [False, True])
def test_nfe_counts(name, kwargs, per_step, afs):
    tb = grf_mixture(8)
    x = torch.randn(2, 1, 8, 8) * 80
    for K in (3, 5):
        res = rollout(tb, x, edm_sigmas(K), get_solver(name, **kwargs), afs=afs)
        assert res.nfe == per_step * K - int(afs)
        assert res.nfe == get_solver(name, **kwargs).nfe(K, afs)


def test_dyweight_at_initialisation_is_ipndm_order_3():
    tb = grf_mixture(8)
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64) * 80
    for K in (3, 4, 6):
        for afs in (False, True):
            sig = edm_sigmas(K)
            a = rollout(tb, x, sig, DyWeight(K, window=3), afs=afs)
            b = rollout(tb, x, sig, IPNDM(max_order=3), afs=afs)
            assert a.nfe == b.nfe == K - int(afs)
            assert torch.equal(a.x, b.x)


@pytest.mark.parametrize("base_name", ["euler", "heun", "ipndm", "dpmpp-3m", "unipc", "dyweight"])
@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_spanlift_with_zero_head_is_its_base_exactly(base_name, spatial_dims):
    K = 4
    shape = (3, 2, 6, 6) if spatial_dims == 2 else (3, 2, 3, 6, 6)
    mu = torch.randn((1,) + shape[1:])
    den = lambda x, s, c=None: torch.tanh(x / (1 + s)) + mu  # noqa: E731  a nonlinear denoiser
    base = get_solver(base_name, **({"num_steps": K} if base_name == "dyweight" else {}))
    sl = SpanLift(base, num_steps=K, channels=2, spatial_dims=spatial_dims)
    x = torch.randn(shape) * 80
    for afs in (False, True):
        a = rollout(den, x, edm_sigmas(K), base, afs=afs)
        b = rollout(den, x, edm_sigmas(K), sl, afs=afs)
        assert torch.equal(a.x, b.x)
        assert a.nfe == b.nfe


def test_spanlift_keeps_alpha_at_one_on_a_step_from_practically_infinite_noise():
    """A flow model's grid starts at σ = t/(1−t) clipped to 1e9: on that step Euler's ``x + h·u``
    cancels two terms of size 1e9, so α stays 1 there (SpanLift with a zero head is then its base,
    whatever α₀ holds, and α₀ gets no gradient); on the later steps α still acts."""
    mu = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    den = lambda x, s, c=None: torch.tanh(x / (1 + s)) + mu  # noqa: E731  a nonlinear denoiser
    sig = torch.tensor([1e9, 3.0, 1.0, 1 / 3, 0.0], dtype=torch.float64)
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64) * 1e9
    base = rollout(den, x, sig, get_solver("euler")).x
    sl = SpanLift(get_solver("euler"), num_steps=4, channels=2).double()
    with torch.no_grad():
        sl.alpha[0] = 1.7
    out = rollout(den, x, sig, sl).x
    torch.testing.assert_close(out, base, atol=1e-9, rtol=0)
    (out - mu).pow(2).sum().backward()
    assert sl.alpha.grad[0] == 0 and sl.alpha.grad[3] != 0
    with torch.no_grad():
        sl.alpha[0], sl.alpha[3] = 1.0, 1.7
    assert (rollout(den, x, sig, sl).x - base).abs().max() > 0.05


def test_spanlift_correction_adds_no_nfe():
    torch.manual_seed(0)
    K = 4
    sl = SpanLift(get_solver("ipndm"), num_steps=K, channels=1)
    torch.nn.init.normal_(sl.operator.head.weight, std=0.1)
    tb = grf_mixture(8)
    x = torch.randn(2, 1, 8, 8) * 80
    a = rollout(tb, x, edm_sigmas(K), sl, afs=True)
    b = rollout(tb, x, edm_sigmas(K), get_solver("ipndm"), afs=True)
    assert a.nfe == b.nfe == K - 1
    assert not torch.allclose(a.x, b.x)


def test_spanlift_on_time_major_states_equals_the_channel_first_layout():
    """A ``(B, T, C, H, W)`` state with ``channel_axis=2`` is the ``(B, C, T, H, W)`` state with the same
    operator weights, transposed — the denoiser acting on each layout alike."""
    torch.manual_seed(0)
    K = 3
    a = SpanLift(get_solver("ipndm"), num_steps=K, channels=2, spatial_dims=3, hidden=8)
    torch.nn.init.normal_(a.operator.head.weight, std=0.2)
    b = SpanLift(get_solver("ipndm"), num_steps=K, channels=2, spatial_dims=3, hidden=8, channel_axis=2)
    b.load_state_dict(a.state_dict())
    mu = torch.randn(1, 2, 3, 5, 5)
    den_cf = lambda x, s, c=None: torch.tanh(x / (1 + s)) + mu  # noqa: E731
    den_tm = lambda x, s, c=None: torch.tanh(x / (1 + s)) + mu.transpose(1, 2)  # noqa: E731
    x = torch.randn(2, 2, 3, 5, 5) * 80
    ya = rollout(den_cf, x, edm_sigmas(K), a).x
    yb = rollout(den_tm, x.transpose(1, 2), edm_sigmas(K), b).x
    torch.testing.assert_close(yb.transpose(1, 2), ya, rtol=1e-6, atol=1e-5)
    assert not torch.allclose(ya, rollout(den_cf, x, edm_sigmas(K), get_solver("ipndm")).x)
    with pytest.raises(ValueError, match="channel_axis"):
        SpanLift(get_solver("ipndm"), num_steps=K, channels=2, channel_axis=0)


def test_solver_errors():
    with pytest.raises(ValueError, match="available"):
        get_solver("rk45")
    with pytest.raises(ValueError):
        DPMSolverPP(order=4)
    with pytest.raises(ValueError):
        UniPC(variant="bh3")
    with pytest.raises(ValueError, match="built for 3 steps"):
        rollout(PointMass(torch.zeros(1, 1, 2, 2)), torch.randn(1, 1, 2, 2), edm_sigmas(4), DyWeight(3))
    with pytest.raises(ValueError, match="decreasing"):
        rollout(PointMass(torch.zeros(1, 1, 2, 2)), torch.randn(1, 1, 2, 2),
                torch.tensor([1.0, 2.0]), get_solver("euler"))
