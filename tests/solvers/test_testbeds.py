"""The analytic test beds against dense linear algebra and scipy's integrator."""

import numpy as np
import pytest
import torch

from nowcast.solvers.testbeds import (GaussianRandomField, GRFMixture, integrate_logsigma,
                                      make_testbed, power_law_spectrum)

scipy = pytest.importorskip("scipy")
from scipy.integrate import solve_ivp  # noqa: E402
from scipy.stats import multivariate_normal  # noqa: E402


def _dense_cov(P: np.ndarray) -> np.ndarray:
    """Σ = F^H diag(P) F with the unitary 2-D DFT matrix, built explicitly (an independent route)."""
    H, W = P.shape
    Fh = np.exp(-2j * np.pi * np.outer(np.arange(H), np.arange(H)) / H) / np.sqrt(H)
    Fw = np.exp(-2j * np.pi * np.outer(np.arange(W), np.arange(W)) / W) / np.sqrt(W)
    F = np.kron(Fh, Fw)
    S = F.conj().T @ np.diag(P.ravel()) @ F
    assert np.abs(S.imag).max() < 1e-12
    return S.real


def _grf(size=4, beta=2.0, mean=0.3):
    return GaussianRandomField(power_law_spectrum(size, beta, variance=0.2), mean)


def test_grf_denoiser_is_the_gaussian_posterior_mean():
    g = _grf()
    S = _dense_cov(g.spectrum[0].numpy())
    mu = g.mean[0].numpy().ravel()
    x = np.random.default_rng(0).normal(size=(3, 16)) * 2
    for sigma in (0.05, 1.0, 20.0):
        expect = mu + (S @ np.linalg.solve(S + sigma ** 2 * np.eye(16), (x - mu).T)).T
        got = g(torch.from_numpy(x).reshape(3, 1, 4, 4), torch.tensor(sigma, dtype=torch.float64))
        np.testing.assert_allclose(got.reshape(3, 16).numpy(), expect, rtol=1e-10, atol=1e-12)


def test_grf_sample_covariance():
    g = _grf(size=4, mean=0.0)
    x = g.sample_data(40000, torch.Generator().manual_seed(0)).reshape(40000, 16).numpy()
    np.testing.assert_allclose(np.cov(x.T), _dense_cov(g.spectrum[0].numpy()), atol=0.01)


def test_grf_exact_solution_matches_scipy_integration():
    g = _grf()
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 30

    def rhs(s, y):
        xt = torch.from_numpy(y).reshape(1, 1, 4, 4)
        return ((xt - g(xt, torch.tensor(s, dtype=torch.float64))) / s).numpy().ravel()

    sol = solve_ivp(rhs, (30.0, 0.01), x.numpy().ravel(), method="DOP853", rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(g.exact_solution(x, 30.0, 0.01).numpy().ravel(), sol.y[:, -1],
                               rtol=1e-7, atol=1e-8)


def _mixture():
    c1 = GaussianRandomField(power_law_spectrum(4, 2.0, variance=0.1), 0.5)
    c2 = GaussianRandomField(power_law_spectrum(4, 3.0, variance=0.3), -0.4)
    return GRFMixture([c1, c2], weights=[0.3, 0.7])


def test_mixture_denoiser_matches_dense_posterior():
    m = _mixture()
    comps = [(0.3, 0.5, _dense_cov(m.components[0].spectrum[0].numpy())),
             (0.7, -0.4, _dense_cov(m.components[1].spectrum[0].numpy()))]
    x = np.random.default_rng(1).normal(size=(4, 16))
    for sigma in (0.1, 0.7, 5.0):
        logs, means = [], []
        for w, mu, S in comps:
            C = S + sigma ** 2 * np.eye(16)
            logs.append(np.log(w) + multivariate_normal(np.full(16, mu), C).logpdf(x))
            means.append(mu + (S @ np.linalg.solve(C, (x - mu).T)).T)
        logs = np.stack(logs, 1)
        r = np.exp(logs - logs.max(1, keepdims=True))
        r /= r.sum(1, keepdims=True)
        expect = r[:, 0:1] * means[0] + r[:, 1:2] * means[1]
        got = m(torch.from_numpy(x).reshape(4, 1, 4, 4), torch.tensor(sigma, dtype=torch.float64))
        np.testing.assert_allclose(got.reshape(4, 16).numpy(), expect, rtol=1e-7, atol=1e-8)


def test_mixture_teacher_matches_scipy_and_second_tolerance():
    m = _mixture()
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 80

    def rhs(u, y):  # dx/du = x − D(x, eᵘ)
        xt = torch.from_numpy(y).reshape(2, 1, 4, 4)
        return (xt - m(xt, torch.tensor(np.exp(u), dtype=torch.float64))).numpy().ravel()

    sol = solve_ivp(rhs, (np.log(80), np.log(0.002)), x.numpy().ravel(), method="DOP853",
                    rtol=1e-11, atol=1e-11)
    teacher = m.teacher(x, 80.0, 0.002, steps=256, check=True)
    np.testing.assert_allclose(teacher.numpy().ravel(), sol.y[:, -1], rtol=1e-6, atol=1e-6)
    with pytest.raises(RuntimeError, match="not converged"):
        m.teacher(x, 80.0, 0.002, steps=4, check=True)


def test_integrate_logsigma_rejects_zero_sigma():
    with pytest.raises(ValueError):
        integrate_logsigma(_mixture(), torch.zeros(1, 1, 4, 4), 1.0, 0.0)


def test_named_testbeds():
    tb = make_testbed("grf-mixture", size=8, channels=2)
    assert tb.shape == (2, 8, 8)
    x = tb.sample_data(5, torch.Generator().manual_seed(0))
    assert x.shape == (5, 2, 8, 8) and torch.isfinite(x).all()
    with pytest.raises(ValueError, match="available"):
        make_testbed("cifar")
