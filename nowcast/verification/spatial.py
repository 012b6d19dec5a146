"""Fractions skill score (Roberts & Lean 2008), streamed as sums so it pools over batches.

Following pysteps' convention: events are ``value >= threshold``; non-finite and missing pixels
count as non-events; neighbourhood fractions are means over a ``scale × scale`` window with zero
padding at the borders (centred, as ``scipy.ndimage.uniform_filter(mode="constant")``).
``FSS = 1 − Σ(S_f − S_o)² / (Σ S_f² + Σ S_o²)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from ..data.codec import MISSING

__all__ = ["fractions", "FSSAccumulator"]


def fractions(binary: torch.Tensor, scale: int) -> torch.Tensor:
    """Neighbourhood fractions of ``(N, H, W)`` 0/1 fields over ``scale × scale`` windows (zero padded).

    The window is centred as scipy's ``uniform_filter`` centres it (for even sizes the extra cell is
    on the low side).
    """
    x = binary.to(torch.float64)[:, None]
    lo, hi = scale // 2, (scale - 1) // 2
    x = F.pad(x, (lo, hi, lo, hi))
    kernel = torch.ones(1, 1, scale, scale, dtype=torch.float64) / (scale * scale)
    return F.conv2d(x, kernel)[:, 0]


class FSSAccumulator:
    """Running FSS sums per threshold × scale.

    Parameters
    ----------
    thresholds : sequence of float
        Event thresholds (``>=``).
    scales : sequence of int
        Neighbourhood sizes in pixels.
    missing : float, optional
        Value marking missing pixels (255 for VIL bytes), treated as non-events.
    """

    def __init__(self, thresholds, scales, missing=MISSING):
        self.thresholds, self.scales, self.missing = tuple(thresholds), tuple(int(s) for s in scales), missing
        shape = (len(self.thresholds), len(self.scales))
        self.sum_ff, self.sum_fo, self.sum_oo = (np.zeros(shape) for _ in range(3))

    def update(self, pred, obs) -> "FSSAccumulator":
        """Add fields of shape ``(..., H, W)``."""
        p = torch.tensor(np.asarray(pred, dtype=np.float64))  # copies: the inputs are never modified
        o = torch.tensor(np.asarray(obs, dtype=np.float64))
        p, o = p.reshape(-1, *p.shape[-2:]), o.reshape(-1, *o.shape[-2:])
        for fld in (p, o):
            bad = ~torch.isfinite(fld) if self.missing is None else (~torch.isfinite(fld)) | (fld == self.missing)
            fld[bad] = -np.inf
        for ti, thr in enumerate(self.thresholds):
            bp, bo = (p >= thr), (o >= thr)
            for si, s in enumerate(self.scales):
                sf, so = fractions(bp, s), fractions(bo, s)
                self.sum_ff[ti, si] += float((sf * sf).sum())
                self.sum_fo[ti, si] += float((sf * so).sum())
                self.sum_oo[ti, si] += float((so * so).sum())
        return self

    def compute(self) -> np.ndarray:
        """FSS ``(threshold, scale)``; NaN where neither field has an event."""
        den = self.sum_ff + self.sum_oo
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, 1 - (self.sum_ff - 2 * self.sum_fo + self.sum_oo) / den, np.nan)
