"""SEVIR VIL encoding: bytes ⇄ kg m⁻², thresholds and model scaling.

SEVIR stores vertically integrated liquid (VIL) as ``uint8`` 0–254 with 255 meaning *missing*.
The decoding (SEVIR tutorial; NEXRAD Level-III digital VIL, product 134, hybrid linear/log) is

* ``X ≤ 5``: 0
* ``5 < X ≤ 18``: ``(X − 2)/90.66``
* ``18 < X ≤ 254``: ``exp((X − 83.9)/38.9)``

and the inverse (encoding) is ``X = 90.66·V + 2`` while that rounds to ≤ 18, else
``X = 38.9·ln V + 83.9``, rounded and clipped to [0, 254]. Models see ``byte/255``; metrics
threshold bytes with ``>=`` at :data:`SEVIR_THRESHOLDS`.
"""

from __future__ import annotations

import numpy as np

from ..foundation.tasks import MISSING, SEVIR_THRESHOLDS, VIL_LEVELS

__all__ = ["MISSING", "SEVIR_THRESHOLDS", "VIL_LEVELS", "decode_vil", "encode_vil", "to_unit",
           "from_unit"]


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
