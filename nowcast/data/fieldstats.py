"""Statistics that say whether precipitation fields look like radar: spectrum, wet area, intensities,
Lagrangian decorrelation by scale.

* :func:`radial_spectrum` / :func:`spectral_slope`: the radially averaged power spectrum (as pysteps'
  ``rapsd``) and the exponent ``β`` of its power-law fit ``P(k) ∝ k^(−β)`` over a band of wavelengths;
* :func:`exceedance_fractions`: the fraction of valid pixels at or above each threshold (the wet-area
  fraction is the first SEVIR threshold's);
* :func:`lagrangian_correlation`: per octave band of wavelengths, the correlation of each frame with
  the previous one moved on by the domain's motion (one shift per frame pair, found by phase
  correlation) — the lag-one Lagrangian autocorrelation STEPS estimates per cascade level, and from
  it a decorrelation time ``τ = −Δt / ln ρ``.

Fields are 2-D arrays (or stacks of them) on a regular grid; missing pixels (NaN, or 255 for bytes)
are set to 0 before the spectra are taken, so give mostly valid fields.
"""

from __future__ import annotations

import numpy as np

__all__ = ["radial_spectrum", "spectral_slope", "exceedance_fractions", "lagrangian_correlation", "octave_bands"]


def _clean(field) -> np.ndarray:
    a = np.asarray(field)
    out = a.astype(np.float64)
    bad = ~np.isfinite(out) | ((a == 255) if a.dtype == np.uint8 else False)
    return np.where(bad, 0.0, out)


def radial_spectrum(field) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of a square 2-D field.

    Returns
    -------
    tuple of numpy.ndarray
        ``(k, power)``: wavenumbers ``1 … n/2`` in cycles per field side divided by the side (cycles per
        pixel) and the mean ``|F|²`` over the ring of integer radius ``k·n`` (the mean removed first).
    """
    f = _clean(field)
    if f.ndim != 2 or f.shape[0] != f.shape[1]:
        raise ValueError(f"radial_spectrum needs a square 2-D field, got shape {f.shape}")
    n = f.shape[0]
    power = np.abs(np.fft.fftshift(np.fft.fft2(f - f.mean()))) ** 2
    yy, xx = np.indices(power.shape) - n // 2
    ring = np.rint(np.hypot(yy, xx)).astype(int)
    sums = np.bincount(ring.ravel(), weights=power.ravel())
    counts = np.bincount(ring.ravel())
    r = np.arange(1, n // 2 + 1)
    return r / n, sums[r] / counts[r]


def spectral_slope(fields, km_px: float, lo_km: float, hi_km: float) -> float:
    """Exponent ``β`` of ``P(k) ∝ k^(−β)`` fitted (least squares in log–log) to the mean radial spectrum
    of ``fields`` over wavelengths ``lo_km … hi_km``.

    Parameters
    ----------
    fields : array-like
        One square field ``(H, W)`` or a stack ``(N, H, W)``.
    km_px : float
        Pixel size in km.
    lo_km, hi_km : float
        The wavelength band of the fit.
    """
    stack = np.asarray(fields)
    stack = stack[None] if stack.ndim == 2 else stack
    spectra = [radial_spectrum(f) for f in stack]
    k = spectra[0][0]
    power = np.mean([p for _, p in spectra], axis=0)
    wavelength = km_px / k
    use = (wavelength >= lo_km) & (wavelength <= hi_km) & (power > 0)
    if use.sum() < 2:
        raise ValueError(f"fewer than two wavenumbers between {lo_km} and {hi_km} km")
    return float(-np.polyfit(np.log(k[use]), np.log(power[use]), 1)[0])


def exceedance_fractions(values, thresholds, missing=255) -> np.ndarray:
    """Fraction of valid pixels ``>=`` each threshold (NaN, and ``missing`` for bytes, are not valid)."""
    a = np.asarray(values)
    ok = np.isfinite(a) if a.dtype.kind == "f" else (a != missing)
    v = a[ok]
    if v.size == 0:
        return np.full(len(thresholds), np.nan)
    return np.array([(v >= t).mean() for t in thresholds])


def octave_bands(n: int, km_px: float, min_km: float | None = None) -> list:
    """Octave wavelength bands ``(lo_km, hi_km)`` from twice the pixel (or ``min_km``) up to the domain."""
    lo = max(2 * km_px, min_km or 0.0)
    bands = []
    while lo * 2 <= n * km_px:
        bands.append((lo, lo * 2))
        lo *= 2
    return bands


def _shift_between(a: np.ndarray, b: np.ndarray) -> tuple:
    """Integer ``(dy, dx)`` (periodic) that moves ``a`` onto ``b`` best, by phase correlation."""
    fa, fb = np.fft.fft2(a - a.mean()), np.fft.fft2(b - b.mean())
    cross = fb * np.conj(fa)
    cross /= np.maximum(np.abs(cross), 1e-12)
    corr = np.fft.ifft2(cross).real
    dy, dx = np.unravel_index(int(np.argmax(corr)), corr.shape)
    n0, n1 = corr.shape
    return (dy - n0 if dy > n0 // 2 else dy), (dx - n1 if dx > n1 // 2 else dx)


def _band(field_hat: np.ndarray, wavelength: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.fft.ifft2(np.where((wavelength >= lo) & (wavelength < hi), field_hat, 0)).real


def lagrangian_correlation(frames, km_px: float, bands=None) -> tuple[list, np.ndarray]:
    """Lag-one Lagrangian correlation per wavelength band of a sequence of square fields.

    For every consecutive pair the earlier frame is shifted (periodically, by whole pixels) onto the
    later one by phase correlation, both are band-passed, and the correlation per band is taken over
    all pairs together.

    Parameters
    ----------
    frames : array-like
        ``(T, H, W)``, T ≥ 2, square.
    km_px : float
        Pixel size in km.
    bands : sequence of (float, float), optional
        Wavelength bands in km (default :func:`octave_bands`).

    Returns
    -------
    tuple
        ``(bands, rho)`` with ``rho`` one correlation per band (NaN where a band has no variance).
    """
    x = np.stack([_clean(f) for f in np.asarray(frames)])
    if x.ndim != 3 or x.shape[0] < 2 or x.shape[1] != x.shape[2]:
        raise ValueError(f"lagrangian_correlation needs (T ≥ 2, n, n) frames, got {x.shape}")
    n = x.shape[1]
    bands = list(bands or octave_bands(n, km_px))
    k = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :])
    with np.errstate(divide="ignore"):
        wavelength = km_px / k
    num, da, db = (np.zeros(len(bands)) for _ in range(3))
    for prev, cur in zip(x[:-1], x[1:]):
        moved = np.roll(prev, _shift_between(prev, cur), axis=(0, 1))
        ph, ch = np.fft.fft2(moved - moved.mean()), np.fft.fft2(cur - cur.mean())
        for i, (lo, hi) in enumerate(bands):
            a, b = _band(ph, wavelength, lo, hi), _band(ch, wavelength, lo, hi)
            num[i] += (a * b).sum()
            da[i] += (a * a).sum()
            db[i] += (b * b).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = num / np.sqrt(da * db)
    return bands, rho
