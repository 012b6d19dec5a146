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
    on the low side). Window sums come exactly from an integer summed-area table, so the cost does
    not grow with the scale.
    """
    x = binary.to(torch.int32)
    lo, hi = scale // 2, (scale - 1) // 2
    x = F.pad(x, (lo + 1, hi, lo + 1, hi))            # +1: a zero row/column for the table
    table = x.cumsum(1).cumsum(2)
    h, w = binary.shape[-2:]
    window = (table[:, scale:scale + h, scale:scale + w] - table[:, :h, scale:scale + w]
              - table[:, scale:scale + h, :w] + table[:, :h, :w])
    return window.to(torch.float64) / (scale * scale)


class FSSAccumulator:
    """Running FSS sums per threshold × scale (× lead time).

    Parameters
    ----------
    thresholds : sequence of float
        Event thresholds (``>=``).
    scales : sequence of int
        Neighbourhood sizes in pixels.
    missing : float, optional
        Value marking missing pixels (255 for VIL bytes), treated as non-events.
    n_lead : int, optional
        Keep the sums per lead time: fields are then ``(..., n_lead, H, W)`` and the sums and
        scores have a trailing lead axis.
    """

    def __init__(self, thresholds, scales, missing=MISSING, n_lead: int | None = None):
        self.thresholds, self.scales, self.missing = tuple(thresholds), tuple(int(s) for s in scales), missing
        self.n_lead = n_lead
        shape = (len(self.thresholds), len(self.scales)) + ((n_lead,) if n_lead is not None else ())
        self.sum_ff, self.sum_fo, self.sum_oo = (np.zeros(shape) for _ in range(3))

    def update(self, pred, obs) -> "FSSAccumulator":
        """Add fields of shape ``(..., H, W)`` (``(..., n_lead, H, W)`` with lead times)."""
        p = torch.as_tensor(np.asarray(pred)) if not torch.is_tensor(pred) else pred.detach().cpu()
        o = torch.as_tensor(np.asarray(obs)) if not torch.is_tensor(obs) else obs.detach().cpu()
        if p.shape != o.shape:
            raise ValueError(f"pred and obs shapes differ: {tuple(p.shape)} vs {tuple(o.shape)}")
        n_lead = self.n_lead or 1
        if self.n_lead is not None and (p.ndim < 3 or p.shape[-3] != n_lead):
            raise ValueError(f"fields must be (..., {n_lead}, H, W), got {tuple(p.shape)}")
        p, o = p.reshape(-1, n_lead, *p.shape[-2:]), o.reshape(-1, n_lead, *o.shape[-2:])
        bad_p = ~torch.isfinite(p.float()) if p.is_floating_point() else torch.zeros(p.shape, dtype=torch.bool)
        bad_o = ~torch.isfinite(o.float()) if o.is_floating_point() else torch.zeros(o.shape, dtype=torch.bool)
        if self.missing is not None:
            bad_p, bad_o = bad_p | (p == self.missing), bad_o | (o == self.missing)
        for ti, thr in enumerate(self.thresholds):
            bp = ((p >= thr) & ~bad_p).transpose(0, 1).reshape(-1, *p.shape[-2:])
            bo = ((o >= thr) & ~bad_o).transpose(0, 1).reshape(-1, *o.shape[-2:])
            for si, s in enumerate(self.scales):
                sf = fractions(bp, s).reshape(n_lead, -1)
                so = fractions(bo, s).reshape(n_lead, -1)
                ff, fo, oo = ((a * b).sum(1).numpy() for a, b in ((sf, sf), (sf, so), (so, so)))
                if self.n_lead is None:
                    ff, fo, oo = ff[0], fo[0], oo[0]
                self.sum_ff[ti, si] += ff
                self.sum_fo[ti, si] += fo
                self.sum_oo[ti, si] += oo
        return self

    def merge(self, other: "FSSAccumulator") -> "FSSAccumulator":
        """Sum of two accumulators with the same thresholds, scales and lead times."""
        if (self.thresholds, self.scales, self.n_lead) != (other.thresholds, other.scales, other.n_lead):
            raise ValueError("cannot merge FSS sums with different thresholds, scales or lead times")
        out = FSSAccumulator(self.thresholds, self.scales, self.missing, self.n_lead)
        out.sum_ff, out.sum_fo, out.sum_oo = (self.sum_ff + other.sum_ff, self.sum_fo + other.sum_fo,
                                              self.sum_oo + other.sum_oo)
        return out

    def compute(self) -> np.ndarray:
        """FSS ``(threshold, scale[, lead])``; NaN where neither field has an event."""
        den = self.sum_ff + self.sum_oo
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, 1 - (self.sum_ff - 2 * self.sum_fo + self.sum_oo) / den, np.nan)
