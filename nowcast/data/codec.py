"""SEVIR VIL encoding: bytes ⇄ kg m⁻², thresholds and model scaling.

SEVIR stores vertically integrated liquid (VIL) as ``uint8`` 0–254 with 255 meaning *missing*.
The decoding (SEVIR tutorial; NEXRAD Level-III digital VIL, product 134, hybrid linear/log) is

* ``X ≤ 5``: 0
* ``5 < X ≤ 18``: ``(X − 2)/90.66``
* ``18 < X ≤ 254``: ``exp((X − 83.9)/38.9)``

and the inverse (encoding) is ``X = 90.66·V + 2`` while that rounds to ≤ 18, else
``X = 38.9·ln V + 83.9``, rounded and clipped to [0, 254]. Models see ``byte/255``; metrics
threshold bytes with ``>=`` at :data:`SEVIR_THRESHOLDS`.

Radar quantities other than VIL reach the VIL scale through two documented relations:

* rain rate R (mm h⁻¹) ⇄ equivalent reflectivity factor Z (mm⁶ m⁻³, ``dBZ = 10·log10 Z``) by a
  Z–R law ``Z = a·R^b``, Marshall–Palmer ``a = 200, b = 1.6`` by default (sources give their own:
  MeteoSwiss 316/1.5, FMI 223/1.53, KNMI 200/1.6);
* reflectivity ⇄ VIL by the VIL definition of Greene & Clark (1972), ``VIL = 3.44·10⁻⁶ Σ Z^{4/7} Δh``
  (kg m⁻²), applied to a 2-D composite as a uniform column of depth ``D = 4.5 km`` — a *proxy*, as a
  composite has no vertical profile. With it a byte above 18 is linear in dBZ,
  ``X ≈ 5.12·dBZ − 78.2``, and the SEVIR thresholds 16/74/133/160/181/219 fall at ≈ 18/30/41/46/50/57
  dBZ, the boundaries of the classical VIP levels 1–6 (within ±1.5 dBZ); with Marshall–Palmer they
  fall at ≈ 0.5/2.6/14/30/53/155 mm h⁻¹.

No rain (R = 0) is −∞ dBZ and 0 kg m⁻²; NaN (no data) stays NaN through every conversion.
"""

from __future__ import annotations

import numpy as np

from ..foundation.tasks import MISSING, SEVIR_THRESHOLDS, VIL_LEVELS

__all__ = ["MISSING", "SEVIR_THRESHOLDS", "VIL_LEVELS", "decode_vil", "encode_vil", "to_unit",
           "from_unit", "MARSHALL_PALMER", "VIL_COLUMN_M", "rain_to_dbz", "dbz_to_rain", "dbz_to_vil",
           "vil_to_dbz"]

#: Marshall–Palmer Z–R law ``Z = 200·R^1.6`` (Z in mm⁶ m⁻³, R in mm h⁻¹).
MARSHALL_PALMER = (200.0, 1.6)
#: Depth of the uniform column that turns a reflectivity composite into a VIL proxy (m).
VIL_COLUMN_M = 4500.0
_VIL_COEF = 3.44e-6


_LIN_SCALE, _LIN_OFFSET = 90.66, 2.0
_LOG_SCALE, _LOG_OFFSET = 38.9, 83.9


def decode_vil(data) -> np.ndarray:
    """VIL bytes to kg m⁻² (float32); missing (255) becomes NaN.

    Parameters
    ----------
    data : array-like of uint8
        Encoded VIL bytes.

    Returns
    -------
    numpy.ndarray
        Physical VIL in kg m⁻².
    """
    x = np.asarray(data)
    if x.dtype.kind == "f" or (x.size and (x.min() < 0 or x.max() > 255)):
        raise ValueError("decode_vil expects VIL bytes (integers 0–255)")
    xf = x.astype(np.float64)
    out = np.where(xf <= 5, 0.0,
                   np.where(xf <= 18, (xf - _LIN_OFFSET) / _LIN_SCALE,
                            np.exp((xf - _LOG_OFFSET) / _LOG_SCALE)))
    out = np.where(xf == MISSING, np.nan, out)
    return out.astype(np.float32)


def encode_vil(vil) -> np.ndarray:
    """VIL in kg m⁻² to bytes (uint8); NaN becomes 255 (missing).

    Parameters
    ----------
    vil : array-like of float
        Physical VIL (kg m⁻², ≥ 0).

    Returns
    -------
    numpy.ndarray
        uint8 bytes 0–254, 255 where the input is NaN.
    """
    v = np.asarray(vil, dtype=np.float64)
    if np.any(v[np.isfinite(v)] < 0):
        raise ValueError("VIL must be non-negative (kg m⁻²)")
    with np.errstate(divide="ignore", invalid="ignore"):
        lin = _LIN_SCALE * v + _LIN_OFFSET
        log = _LOG_SCALE * np.log(np.maximum(v, 1e-300)) + _LOG_OFFSET
    # the linear branch covers bytes ≤ 18; choosing it while it rounds to ≤ 18 keeps the
    # round trip exact for float32 inputs sitting on the knee (18/90.66 rounds either way)
    x = np.where(lin < 18.5, lin, log)
    x = np.where(v <= 0, 0.0, x)
    out = np.clip(np.rint(x), 0, 254)
    out = np.where(np.isnan(v), MISSING, out)
    return out.astype(np.uint8)


def to_unit(data, keep_missing: bool = False) -> np.ndarray:
    """Bytes to the models' scale ``byte/255`` (float32).

    Parameters
    ----------
    data : array-like
        VIL bytes (255 = missing).
    keep_missing : bool
        Keep missing pixels as 1.0 (for a caller that masks them separately); by default they
        become 0, which is what the models are given where there is no data.

    Returns
    -------
    numpy.ndarray
        float32 in ``[0, 1]``.
    """
    x = np.asarray(data)
    if not keep_missing:
        x = np.where(x == MISSING, 0, x)
    return x.astype(np.float32) / 255.0


def from_unit(x) -> np.ndarray:
    """The models' ``[0, 1]`` scale back to bytes 0–254 (rounded, clipped; never 255)."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 255.0), 0, 254).astype(np.uint8)


def _floats(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def rain_to_dbz(rate, zr=MARSHALL_PALMER) -> np.ndarray:
    """Rain rate (mm h⁻¹) → reflectivity (dBZ) by ``Z = a·R^b``; 0 → −inf, NaN stays NaN.

    Parameters
    ----------
    rate : array-like
        Rain rate, mm h⁻¹ (≥ 0).
    zr : tuple of float
        ``(a, b)`` of the Z–R law (default Marshall–Palmer).
    """
    r = _floats(rate)
    if np.any(r[np.isfinite(r)] < 0):
        raise ValueError("rain rates must be non-negative (mm/h)")
    a, b = zr
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(a) + 10.0 * b * np.log10(r)


def dbz_to_rain(dbz, zr=MARSHALL_PALMER) -> np.ndarray:
    """Reflectivity (dBZ) → rain rate (mm h⁻¹): the inverse of :func:`rain_to_dbz`."""
    a, b = zr
    return (10.0 ** (_floats(dbz) / 10.0) / a) ** (1.0 / b)


def dbz_to_vil(dbz, depth_m: float = VIL_COLUMN_M) -> np.ndarray:
    """Reflectivity (dBZ) → VIL proxy (kg m⁻²): ``3.44·10⁻⁶ · Z^{4/7} · depth`` (a uniform column)."""
    return _VIL_COEF * (10.0 ** (_floats(dbz) / 10.0)) ** (4.0 / 7.0) * depth_m


def vil_to_dbz(vil, depth_m: float = VIL_COLUMN_M) -> np.ndarray:
    """VIL (kg m⁻²) → reflectivity (dBZ) of the uniform column: the inverse of :func:`dbz_to_vil`."""
    v = _floats(vil)
    if np.any(v[np.isfinite(v)] < 0):
        raise ValueError("VIL must be non-negative (kg m⁻²)")
    with np.errstate(divide="ignore"):
        return 10.0 * (7.0 / 4.0) * np.log10(v / (_VIL_COEF * depth_m))
