"""Analytic test beds: exact denoisers with known (or accurately computable) PF-ODE solutions.

All live in EDM/VE space (``x_σ = x₀ + σε``) on periodic ``(C, H, W)`` grids.

:class:`PointMass`
    ``D ≡ μ``; the exact path is the straight line ``x(σ) = μ + (σ/σ₀)(x₀ − μ)``.
:class:`GaussianRandomField`
    Stationary Gaussian data, diagonal in the unitary 2-D DFT with power spectrum ``P(k)``:
    ``D = μ + F⁻¹(P/(P+σ²) ⊙ F(x−μ))`` and the exact flow
    ``x(σ₁) = μ + F⁻¹(√((P+σ₁²)/(P+σ₀²)) ⊙ F(x(σ₀)−μ))``.
:class:`GRFMixture`
    A mixture of GRFs with different means and spectra: the denoiser is exact and nonlinear
    (softmax responsibilities); the ODE has no closed form, so :func:`integrate_logsigma`
    computes the teacher with classical RK4 in ``u = ln σ`` in float64 (``dx/du = x − D``, which
    is not stiff), checked against a second step count by :meth:`GRFMixture.teacher`.
:func:`power_law_spectrum`
    ``P(k) ∝ (|k|² + k₀²)^{−β/2}`` normalised to a given per-pixel variance.

Reference: the solver notes §7 (Wiener filter, Gaussian-mixture posterior means).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from ..foundation.registry import lookup
from .denoisers import Denoiser, expand_sigma

__all__ = ["PointMass", "GaussianRandomField", "GRFMixture", "power_law_spectrum",
           "integrate_logsigma", "make_testbed", "TESTBEDS"]


def _fft(x: torch.Tensor) -> torch.Tensor:
    return torch.fft.fft2(x, norm="ortho")


def _ifft(X: torch.Tensor) -> torch.Tensor:
    return torch.fft.ifft2(X, norm="ortho").real


def power_law_spectrum(size: int, beta: float = 2.5, k0: float | None = None,
                       variance: float = 0.25, channels: int = 1) -> torch.Tensor:
    """An isotropic power-law spectrum ``(|k|² + k₀²)^{−β/2}`` on a ``size × size`` grid.

    Parameters
    ----------
    size : int
        Grid side H = W.
    beta : float
        Spectral slope (≈ 2–2.5 for natural images; larger is smoother).
    k0 : float, optional
        Low-frequency cut-off in cycles per pixel (default ``1/size``).
    variance : float
        Per-pixel variance ``mean_k P(k)``.
    channels : int
        Number of identical channels.

    Returns
    -------
    torch.Tensor
        Float64 ``(channels, size, size)`` spectrum, real, even and positive.
    """
    k0 = 1.0 / size if k0 is None else k0
    f = torch.fft.fftfreq(size, dtype=torch.float64)
    k2 = f[:, None] ** 2 + f[None, :] ** 2
    P = (k2 + k0 ** 2) ** (-beta / 2)
    P = P * variance / P.mean()
    return P.expand(channels, size, size).clone()


class PointMass(Denoiser):
    """Data concentrated at one point μ: ``D(x, σ) = μ``."""

    def __init__(self, mu: torch.Tensor):
        super().__init__()
        self.register_buffer("mu", torch.as_tensor(mu))

    def forward(self, x, sigma, cond=None):  # noqa: D102
        return self.mu.to(x.dtype).expand_as(x)

    def exact_solution(self, x: torch.Tensor, sigma0, sigma1) -> torch.Tensor:
        """``μ + (σ₁/σ₀)(x − μ)``."""
        mu = self.mu.to(x.dtype)
        return mu + (float(sigma1) / float(sigma0)) * (x - mu)


class GaussianRandomField(Denoiser):
    """Stationary Gaussian random field with spectrum ``P`` and mean ``μ`` (exact denoiser and flow).

    Parameters
    ----------
    spectrum : torch.Tensor
        ``(C, H, W)`` power spectrum in the unitary-DFT basis (per-pixel variance = its mean).
    mean : torch.Tensor or float
        Mean field ``(C, H, W)`` or a scalar.
    """

    def __init__(self, spectrum: torch.Tensor, mean: torch.Tensor | float = 0.0):
        super().__init__()
        P = torch.as_tensor(spectrum, dtype=torch.float64)
        self.register_buffer("spectrum", P)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float64).expand_as(P).clone())
        self.sigma_data = float(P.mean().sqrt())

    @property
    def shape(self) -> tuple:
        """Per-sample shape ``(C, H, W)``."""
        return tuple(self.spectrum.shape)

    def sample_data(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` samples ``μ + F⁻¹(√P ⊙ F z)`` (float64)."""
        z = torch.randn((n,) + self.shape, generator=generator, dtype=torch.float64)
        return self.mean + _ifft(self.spectrum.sqrt() * _fft(z))

    def forward(self, x, sigma, cond=None):  # noqa: D102
        s2 = expand_sigma(sigma, x).to(torch.float64) ** 2
        xm = x.to(torch.float64) - self.mean
        gain = self.spectrum / (self.spectrum + s2)
        return (self.mean + _ifft(gain * _fft(xm))).to(x.dtype)

    def exact_solution(self, x: torch.Tensor, sigma0, sigma1) -> torch.Tensor:
        """Exact PF-ODE map from σ₀ to σ₁ (two FFTs, float64 inside)."""
        P = self.spectrum
        gain = ((P + float(sigma1) ** 2) / (P + float(sigma0) ** 2)).sqrt()
        return (self.mean + _ifft(gain * _fft(x.to(torch.float64) - self.mean))).to(x.dtype)

    def log_likelihood_terms(self, x: torch.Tensor, s2: torch.Tensor):
        """Gaussian log-density of the noisy marginal ``N(μ, Σ + σ²I)`` up to the 2π constant.

        Returns
        -------
        tuple
            ``(log_density (B,), centred FFT of x − μ)``.
        """
        X = _fft(x - self.mean)
        V = self.spectrum + s2
        quad = (X.abs() ** 2 / V).flatten(1).sum(1)
        logdet = torch.log(V).expand_as(X.real).flatten(1).sum(1)
        return -0.5 * (quad + logdet), X


class GRFMixture(Denoiser):
    """Mixture of Gaussian random fields: exact, nonlinear, image-like denoiser.

    ``D(x, σ) = Σ_k w_k(x, σ)·[μ_k + F⁻¹(P_k/(P_k+σ²) ⊙ F(x − μ_k))]`` with responsibilities
    ``w_k ∝ π_k N(x; μ_k, Σ_k + σ²I)`` computed by log-sum-exp.

    Parameters
    ----------
    components : sequence of GaussianRandomField
        The mixture components (same shape).
    weights : sequence of float, optional
        Mixture weights π_k (default uniform).
    """

    def __init__(self, components: Sequence[GaussianRandomField], weights: Sequence[float] | None = None):
        super().__init__()
        if not components:
            raise ValueError("a mixture needs at least one component")
        shapes = {c.shape for c in components}
        if len(shapes) != 1:
            raise ValueError(f"all components must have the same shape, got {sorted(shapes)}")
        self.components = torch.nn.ModuleList(components)
        w = torch.ones(len(components)) if weights is None else torch.as_tensor(weights)
        self.register_buffer("log_weights", torch.log(w / w.sum()).to(torch.float64))
        second = sum(float(wk) * (c.sigma_data ** 2 + float(c.mean.pow(2).mean()))
                     for wk, c in zip(w / w.sum(), components))
        self.sigma_data = math.sqrt(second)

    @property
    def shape(self) -> tuple:
        """Per-sample shape ``(C, H, W)``."""
        return self.components[0].shape

    def sample_data(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` samples from the mixture (float64)."""
        k = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        out = torch.empty((n,) + self.shape, dtype=torch.float64)
        for j, comp in enumerate(self.components):
            idx = (k == j).nonzero().flatten()
            if len(idx):
                out[idx] = comp.sample_data(len(idx), generator)
        return out

    def responsibilities(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """Posterior component probabilities ``w_k(x, σ)``, shape ``(B, K)``."""
        s2 = expand_sigma(sigma, x).to(torch.float64) ** 2
        x64 = x.to(torch.float64)
        logp = torch.stack([c.log_likelihood_terms(x64, s2)[0] for c in self.components], 1)
        return torch.softmax(logp + self.log_weights, dim=1)

    def forward(self, x, sigma, cond=None):  # noqa: D102
        s2 = expand_sigma(sigma, x).to(torch.float64) ** 2
        x64 = x.to(torch.float64)
        logps, means = [], []
        for c in self.components:
            logp, X = c.log_likelihood_terms(x64, s2)
            logps.append(logp)
            means.append(c.mean + _ifft(c.spectrum / (c.spectrum + s2) * X))
        w = torch.softmax(torch.stack(logps, 1) + self.log_weights, dim=1)
        view = (x.shape[0], -1) + (1,) * (x.ndim - 1)
        D = (w.reshape(view) * torch.stack(means, 1)).sum(1)
        return D.to(x.dtype)

    def teacher(self, x: torch.Tensor, sigma0: float, sigma1: float, steps: int = 256,
                check: bool = False) -> torch.Tensor:
        """High-accuracy PF-ODE solution from σ₀ to σ₁ (RK4 in ln σ, float64).

        Parameters
        ----------
        x : torch.Tensor
            States at σ₀.
        sigma0, sigma1 : float
            Start and end noise levels (σ₁ > 0).
        steps : int
            RK4 steps.
        check : bool
            Also integrate with half the steps and raise if the two differ by more than 1e-6
            RMS (relative to the data scale).

        Returns
        -------
        torch.Tensor
            States at σ₁ in ``x``'s dtype.
        """
        out = integrate_logsigma(self, x, sigma0, sigma1, steps)
        if check:
            coarse = integrate_logsigma(self, x, sigma0, sigma1, steps // 2)
            err = (out - coarse).pow(2).mean().sqrt().item() / self.sigma_data
            if err > 1e-6:
                raise RuntimeError(f"teacher not converged: RK4 {steps} vs {steps // 2} steps differ by "
                                   f"{err:.2e} (relative RMS); use more steps")
        return out.to(x.dtype)


def integrate_logsigma(denoiser: Callable, x: torch.Tensor, sigma0: float, sigma1: float,
                       steps: int = 256, cond=None) -> torch.Tensor:
    """Classical RK4 on ``dx/du = x − D(x, eᵘ)`` (``u = ln σ``) in float64.

    In log-σ time the PF-ODE is not stiff near σ → 0, so fixed-step RK4 converges at 4th order
    all the way down to σ_min.

    Parameters
    ----------
    denoiser : callable
        ``denoiser(x, sigma, cond)``.
    x : torch.Tensor
        State at σ₀.
    sigma0, sigma1 : float
        Positive start and end noise levels.
    steps : int
        Number of RK4 steps (4 evaluations each).
    cond : Any
        Conditioning for the denoiser.

    Returns
    -------
    torch.Tensor
        Float64 state at σ₁.
    """
    if sigma0 <= 0 or sigma1 <= 0:
        raise ValueError("integrate_logsigma needs positive noise levels")
    u0, u1 = math.log(sigma0), math.log(sigma1)
    du = (u1 - u0) / steps
    y = x.to(torch.float64)

    def f(y, u):
        s = torch.tensor(math.exp(u), dtype=torch.float64)
        return y - denoiser(y, s, cond).to(torch.float64)

    for i in range(steps):
        u = u0 + i * du
        k1 = f(y, u)
        k2 = f(y + 0.5 * du * k1, u + 0.5 * du)
        k3 = f(y + 0.5 * du * k2, u + 0.5 * du)
        k4 = f(y + du * k3, u + du)
        y = y + du / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return y


def _blob_mean(size: int, channels: int, centre: tuple, width: float, amplitude: float) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float64),
                            torch.arange(size, dtype=torch.float64), indexing="ij")
    r2 = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2
    return (amplitude * torch.exp(-r2 / (2 * width ** 2))).expand(channels, size, size).clone()


def grf_mixture(size: int = 16, channels: int = 1) -> GRFMixture:
    """The benchmark's nonlinear test bed: three image-like GRF components.

    Component means and spectra differ: a bright smooth blob on a rough background (β = 2), a
    dark stripe-free field with a smooth spectrum (β = 3.5), and a fine-textured field with a
    negative offset (β = 1.5). Pixel scale ≈ 0.5, like images in [−1, 1].
    """
    c1 = GaussianRandomField(power_law_spectrum(size, 2.0, variance=0.12, channels=channels),
                             _blob_mean(size, channels, (size / 3, size / 3), size / 6, 0.8) - 0.2)
    c2 = GaussianRandomField(power_law_spectrum(size, 3.5, variance=0.25, channels=channels), 0.1)
    c3 = GaussianRandomField(power_law_spectrum(size, 1.5, variance=0.15, channels=channels),
                             -0.3 + _blob_mean(size, channels, (2 * size / 3, size / 2), size / 5, -0.4))
    return GRFMixture([c1, c2, c3], weights=[0.4, 0.35, 0.25])


def gaussian_field(size: int = 16, channels: int = 1) -> GaussianRandomField:
    """A single natural-image-like GRF (β = 2.5, per-pixel variance 0.25)."""
    return GaussianRandomField(power_law_spectrum(size, 2.5, variance=0.25, channels=channels))


TESTBEDS: dict[str, Callable[..., Denoiser]] = {
    "grf": gaussian_field,
    "grf-mixture": grf_mixture,
}


def make_testbed(name: str, size: int = 16, channels: int = 1) -> Denoiser:
    """Build a named analytic test bed (``grf`` or ``grf-mixture``).

    Raises
    ------
    ValueError
        For an unknown name.
    """
    return lookup(TESTBEDS, "test bed", name)(size=size, channels=channels)
