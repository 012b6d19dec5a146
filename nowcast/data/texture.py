"""Radar-like small-scale structure for synthetic storms: an evolving, advected power-law random field.

Every Fourier mode ``k`` of a periodic Gaussian field is an independent Ornstein–Uhlenbeck process
in the frame moving with the wind (Lagrangian), with

* a power-law spectrum: stationary amplitude ``|k|^(−β/2)``, so the field's radially averaged power
  spectrum falls as ``|k|^(−β)`` (the form radar precipitation fields are found to have, the basis of
  STEPS' noise and cascade; Seed 2003, Bowler et al. 2006);
* a decorrelation time that grows with the mode's wavelength ``L = 1/|k|``:
  ``τ(L) = τ_ref · (L / L_ref)^z`` — large patterns live long, small ones die fast (the dynamic
  scaling of Venugopal et al. 1999, the scale-dependent Lagrangian lifetime of Germann & Zawadzki
  2002); over a step ``Δt`` a mode keeps ``φ = exp(−Δt/τ)`` of itself and takes ``√(1 − φ²)`` of
  fresh noise, so its variance stays put;
* advection: a shift by the wind's displacement, applied exactly as a phase ramp.

The field has zero mean and unit variance at every step. :mod:`nowcast.data.synthetic` uses it as
the log of a multiplicative modulation of the storms (a log-normal cascade), which gives the
intermittent, sharp-edged small-scale structure that smooth cells lack.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EvolvingNoise"]


class EvolvingNoise:
    """A unit-variance Gaussian field of ``size²`` periodic pixels that evolves and is advected.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the noise.
    size : int
        Grid side in pixels.
    beta : float
        Spectral exponent: the radially averaged power spectrum falls as ``|k|^(−beta)``.
    km_px : float
        Pixel size in km (turns wavenumbers into wavelengths).
    dt_min : float
        Minutes per :meth:`step`.
    tau_ref_min, ref_km, z : float
        Decorrelation time ``tau_ref_min`` (minutes) at wavelength ``ref_km`` and its scaling
        exponent: ``τ(L) = tau_ref_min · (L / ref_km)^z``.
    """

    def __init__(self, rng: np.random.Generator, size: int, beta: float, km_px: float, dt_min: float,
                 tau_ref_min: float = 30.0, ref_km: float = 16.0, z: float = 1.0):
        if size < 2 or beta < 0 or km_px <= 0 or dt_min <= 0 or tau_ref_min <= 0 or ref_km <= 0:
            raise ValueError("EvolvingNoise needs size ≥ 2 and positive beta, km_px, dt_min, tau_ref_min, ref_km")
        self.rng, self.size = rng, int(size)
        self.ky = np.fft.fftfreq(size)[:, None]                 # cycles per pixel
        self.kx = np.fft.rfftfreq(size)[None, :]
        k = np.hypot(self.ky, self.kx)
        k[0, 0] = np.inf                                          # no mean
        self.amplitude = k ** (-beta / 2.0)
        full = np.hypot(np.fft.fftfreq(size)[:, None], np.fft.fftfreq(size)[None, :])
        full[0, 0] = np.inf
        # the real field's variance: Σ over the full spectrum of amplitude² · size² / size⁴
        self.amplitude /= np.sqrt((full ** (-beta)).sum()) / size
        with np.errstate(divide="ignore"):
            self.tau = tau_ref_min * (km_px / k / ref_km) ** z  # minutes, per mode (the mean: 0, unused)
        self.tau[0, 0] = np.inf
        self.phi = np.exp(-dt_min / self.tau)
        self.fresh = np.sqrt(1.0 - self.phi ** 2) * self.amplitude
        self.state = self.amplitude * self._white()             # a draw from the stationary law

    def _white(self) -> np.ndarray:
        return np.fft.rfft2(self.rng.standard_normal((self.size, self.size)))

    def field(self) -> np.ndarray:
        """The current field (float32, zero mean, unit variance in expectation)."""
        return np.fft.irfft2(self.state, s=(self.size, self.size)).astype(np.float32)

    def step(self, dy: float = 0.0, dx: float = 0.0) -> np.ndarray:
        """Advance one step: advect by ``(dy, dx)`` pixels (periodic), evolve each mode, return the field."""
        ramp = np.exp(-2j * np.pi * (self.ky * dy + self.kx * dx))
        self.state = self.phi * ramp * self.state + self.fresh * self._white()
        return self.field()
