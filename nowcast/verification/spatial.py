"""Fractions skill score (Roberts & Lean 2008), streamed as sums so it pools over batches.

Following pysteps' convention: events are ``value >= threshold``; non-finite and missing pixels
count as non-events; neighbourhood fractions are means over a ``scale × scale`` window with zero
padding at the borders (centred, as ``scipy.ndimage.uniform_filter(mode="constant")``).
``FSS = 1 − Σ(S_f − S_o)² / (Σ S_f² + Σ S_o²)``.

The sums are kept on window *counts* ``s²·S`` (the ``s⁴`` cancels in the ratio): counts are small
integers computed exactly from a summed-area table, their products are exact in float32 and the
sums are accumulated in float64, so the score is exact and its cost does not grow with the scale.
An ensemble is scored member by member against one observation without repeating the observation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from ..data.codec import MISSING

__all__ = ["window_counts", "fractions", "FSSAccumulator"]


def window_counts(binary: torch.Tensor, scale: int) -> torch.Tensor:
    """Events in each ``scale × scale`` window of ``(N, H, W)`` 0/1 fields (zero padded), as float32.

    Windows are centred as scipy's ``uniform_filter`` centres them (for even sizes the extra cell is
    on the low side). Exact: separable running sums in 16-bit (32-bit for large fields) integers.
    """
    n, h, w = binary.shape
    if scale == 1:
        return binary.to(torch.float32)
    dtype = torch.int16 if (max(h, w) + scale) * scale < 2 ** 15 else torch.int32
    lo, hi = scale // 2, (scale - 1) // 2
    x = F.pad(binary.to(dtype), (lo + 1, hi, lo + 1, hi))     # +1: a leading zero for the running sums
    x = x.cumsum(2, dtype=dtype)
    x = x[:, :, scale:] - x[:, :, :w]
    x = x.cumsum(1, dtype=dtype)
    return (x[:, scale:] - x[:, :h]).to(torch.float32)


def fractions(binary: torch.Tensor, scale: int) -> torch.Tensor:
    """Neighbourhood fractions of ``(N, H, W)`` 0/1 fields over ``scale × scale`` windows (float64)."""
    return window_counts(binary, scale).to(torch.float64) / (scale * scale)


def _bad(x: torch.Tensor, missing) -> torch.Tensor:
    bad = ~torch.isfinite(x) if x.is_floating_point() else torch.zeros(x.shape, dtype=torch.bool)
    return bad | (x == missing) if missing is not None else bad


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
        """Add fields.

        Parameters
        ----------
        pred : array-like or torch.Tensor
            ``(..., H, W)`` forecasts (``(..., n_lead, H, W)`` with lead times). With one more
            leading dimension than ``obs`` — ``(B, M, ...)`` against ``(B, ...)`` — each of the M
            members is scored against the same observation.
        obs : array-like or torch.Tensor
            Observations.
        """
        p = torch.as_tensor(np.asarray(pred)) if not torch.is_tensor(pred) else pred.detach().cpu()
        o = torch.as_tensor(np.asarray(obs)) if not torch.is_tensor(obs) else obs.detach().cpu()
        members = 1
        if p.ndim == o.ndim + 1 and p.shape[:1] + p.shape[2:] == o.shape:
            members = p.shape[1]
        elif p.shape != o.shape:
            raise ValueError(f"pred and obs shapes differ: {tuple(p.shape)} vs {tuple(o.shape)}")
        n_lead = self.n_lead or 1
        if self.n_lead is not None and (o.ndim < 3 or o.shape[-3] != n_lead):
            raise ValueError(f"fields must be (..., {n_lead}, H, W), got {tuple(o.shape)}")
        hw = o.shape[-2:]
        p = p.reshape(-1, members, n_lead, *hw)      # (groups, members, lead, H, W)
        o = o.reshape(-1, 1, n_lead, *hw)
        bad_p, bad_o = _bad(p, self.missing), _bad(o, self.missing)
        for ti, thr in enumerate(self.thresholds):
            bp = ((p >= thr) & ~bad_p).reshape(-1, *hw)
            bo = ((o >= thr) & ~bad_o).reshape(-1, *hw)
            for si, s in enumerate(self.scales):
                cp = window_counts(bp, s).reshape(p.shape[0], members, n_lead, -1)
                co = window_counts(bo, s).reshape(o.shape[0], 1, n_lead, -1)
                ff = (cp * cp).sum(-1, dtype=torch.float64).sum((0, 1)).numpy()
                fo = (cp * co).sum(-1, dtype=torch.float64).sum((0, 1)).numpy()
                oo = members * (co * co).sum(-1, dtype=torch.float64).sum((0, 1)).numpy()
                scale = float(s) ** 4   # back to fractions, so the sums are those of pysteps' fss
                if self.n_lead is None:
                    ff, fo, oo = ff[0], fo[0], oo[0]
                self.sum_ff[ti, si] += ff / scale
                self.sum_fo[ti, si] += fo / scale
                self.sum_oo[ti, si] += oo / scale
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
