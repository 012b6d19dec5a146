"""The radar-like texture and the field statistics, against analytic values and pysteps."""

import numpy as np
import pytest

from nowcast.data.fieldstats import (exceedance_fractions, lagrangian_correlation, octave_bands, radial_spectrum,
                                     spectral_slope)
from nowcast.data.synthetic import SyntheticConfig, generate_event
from nowcast.data.texture import EvolvingNoise


def test_radial_spectrum_is_pysteps_rapsd():
    spectral = pytest.importorskip("pysteps.utils.spectral")
    rng = np.random.default_rng(0)
    field = np.cumsum(np.cumsum(rng.normal(size=(64, 64)), 0), 1)
    k, ours = radial_spectrum(field)
    theirs = spectral.rapsd(field - field.mean(), fft_method=np.fft)          # ring 0 (the mean) first
    assert k[0] == 1 / 64 and len(ours) == 32
    ratio = ours[:-1] / theirs[1:]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)                     # the same up to normalisation


def test_evolving_noise_has_the_spectrum_and_variance_it_was_given():
    # the variance sits in the few largest modes: average over independent fields, not over time
    fields = [EvolvingNoise(np.random.default_rng(seed), 128, beta=3.0, km_px=1.0, dt_min=5.0).step(0.7, -1.3)
              for seed in range(60)]
    assert np.mean([f.var() for f in fields]) == pytest.approx(1.0, rel=0.1)
    assert abs(np.mean(fields)) < 0.05
    assert spectral_slope(np.stack(fields), 1.0, 4, 64) == pytest.approx(3.0, abs=0.1)


def test_lagrangian_correlation_recovers_the_decorrelation_times():
    """Each mode keeps φ = exp(−Δt/τ(L)) of itself per step in the moving frame: the measured band
    correlation is the power-weighted mean of φ over the band's modes (computed here directly)."""
    rng = np.random.default_rng(2)
    n, km_px, dt = 128, 2.0, 10.0
    noise = EvolvingNoise(rng, n, beta=2.5, km_px=km_px, dt_min=dt, tau_ref_min=30.0, ref_km=16.0, z=1.0)
    frames = [noise.field()]
    for _ in range(60):
        frames.append(noise.step(3.0, -2.0))                  # whole pixels: the shift is recovered exactly
    bands, rho = lagrangian_correlation(np.stack(frames), km_px)
    k = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :])
    with np.errstate(divide="ignore"):
        wavelength = km_px / k
        power = k ** -2.5
        phi = np.exp(-dt / (30.0 * (wavelength / 16.0)))
    for (lo, hi), got in zip(bands, rho):
        band = (wavelength >= lo) & (wavelength < hi)
        expected = (power[band] * phi[band]).sum() / power[band].sum()
        assert got == pytest.approx(expected, abs=0.06), (lo, hi)
    assert rho[0] < rho[-2]                                   # small scales decorrelate faster


def test_exceedance_fractions_and_bands():
    b = np.array([[0, 16, 74], [255, 133, 219]], dtype=np.uint8)
    np.testing.assert_allclose(exceedance_fractions(b, (16, 133)), [4 / 5, 2 / 5])
    assert octave_bands(128, 3.0) == [(6.0, 12.0), (12.0, 24.0), (24.0, 48.0), (48.0, 96.0), (96.0, 192.0),
                                      (192.0, 384.0)]


def test_radar_texture_has_more_small_scale_structure_than_smooth_cells():
    slopes = {}
    for texture in ("cells", "radar"):
        vil, _ = generate_event(np.random.default_rng(4), 96, 7, regime="squall", texture=texture)
        slopes[texture] = spectral_slope(vil[3], 4.0, 8.0, 32.0)
    assert slopes["radar"] < slopes["cells"] - 0.5
    with pytest.raises(ValueError, match="texture"):
        SyntheticConfig(texture="smooth")
