"""Streaming contingency counts and categorical scores at thresholds × pooling scales × lead times.

Counts are int64 arrays ``(threshold, scale, lead_time)`` of hits H, misses M, false alarms F and
correct negatives R, accumulated batch by batch (never averaged per batch) and mergeable, so DDP
ranks and dask partitions combine exactly. Events are ``value >= threshold`` by default (SEVIR's
convention; ``'>'`` is pysteps'). Pixels that are missing in either field — flagged by ``mask``
or equal to ``missing`` (255 for VIL bytes) or NaN — are excluded explicitly, never counted as
correct negatives. At pooling scale s both fields are first reduced by non-overlapping s×s max
(or average) pooling; a pooled cell with any missing pixel is missing.

Scores (``compute``): CSI ``H/(H+M+F)``, POD ``H/(H+M)``, FAR ``F/(H+F)``, SUCR ``H/(H+F)``,
BIAS ``(H+F)/(H+M)``, HSS ``2(HR−FM)/((H+M)(M+R)+(H+F)(F+R))``, ETS ``(H−Hr)/(H+M+F−Hr)`` with
``Hr = (H+M)(H+F)/N``, and CSI-M (CSI averaged over thresholds). 0/0 gives NaN (no epsilon).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from ..data.codec import MISSING, SEVIR_THRESHOLDS

__all__ = ["ContingencyCounts", "init_counts", "accumulate", "accumulate_yes_no", "merge", "compute", "SCORES"]

SCORES = ("CSI", "POD", "FAR", "SUCR", "BIAS", "HSS", "ETS")


@dataclass
class ContingencyCounts:
    """Int64 contingency tables ``(threshold, scale, lead_time)`` and how they are counted."""

    thresholds: tuple
    scales: tuple
    n_lead: int
    comparison: str = ">="
    pooling: str = "max"
    hits: np.ndarray = field(default=None)
    misses: np.ndarray = field(default=None)
    false_alarms: np.ndarray = field(default=None)
    correct_negatives: np.ndarray = field(default=None)

    def __post_init__(self):
        shape = (len(self.thresholds), len(self.scales), self.n_lead)
        for name in ("hits", "misses", "false_alarms", "correct_negatives"):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(shape, dtype=np.int64))


def init_counts(n_lead: int, thresholds=SEVIR_THRESHOLDS, scales=(1, 4, 16), comparison: str = ">=",
                pooling: str = "max") -> ContingencyCounts:
    """Empty counts for ``n_lead`` lead times.

    Parameters
    ----------
    n_lead : int
        Number of lead times (axis 1 of the fields).
    thresholds : sequence of float
        Event thresholds (default: SEVIR bytes 16, 74, 133, 160, 181, 219).
    scales : sequence of int
        Pooling scales in pixels (1 = no pooling).
    comparison : {'>=', '>'}
        Event definition.
    pooling : {'max', 'avg'}
        Pooling of the fields before thresholding at scales > 1.
    """
    if comparison not in (">=", ">"):
        raise ValueError(f"comparison must be '>=' or '>', got {comparison!r}")
    if pooling not in ("max", "avg"):
        raise ValueError(f"pooling must be 'max' or 'avg', got {pooling!r}")
    if any(int(s) != s or s < 1 for s in scales):
        raise ValueError(f"scales must be positive integers, got {scales}")
    return ContingencyCounts(tuple(thresholds), tuple(int(s) for s in scales), int(n_lead), comparison, pooling)


def _as_tensor(a) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a)) if not torch.is_tensor(a) else a
    return t.detach().to("cpu", torch.float32)


def _pool(x: torch.Tensor, valid: torch.Tensor, s: int, how: str):
    """Pool ``(N, H, W)`` values and validity over s×s blocks; a block with any invalid pixel is invalid."""
    if s == 1:
        return x, valid
    xv = torch.where(valid, x, torch.zeros_like(x))[:, None]
    pooled = F.max_pool2d(xv, s, s) if how == "max" else F.avg_pool2d(xv, s, s)
    ok = -F.max_pool2d(-valid[:, None].float(), s, s) > 0.5
    return pooled[:, 0], ok[:, 0]


def accumulate(counts: ContingencyCounts, pred, obs, mask=None, missing=MISSING) -> ContingencyCounts:
    """Add a batch to the counts (in place) and return them.

    Parameters
    ----------
    counts : ContingencyCounts
        Running counts.
    pred, obs : array-like or torch.Tensor
        ``(B, lead_time, H, W)`` fields in the thresholds' units (e.g. VIL bytes).
    mask : array-like of bool, optional
        ``True`` where a pixel is valid (broadcast against the fields).
    missing : float, optional
        Value marking missing pixels in either field (255 for VIL bytes; ``None`` to disable).
        NaNs are always missing.
    """
    if _is_bytes(pred) and _is_bytes(obs) and missing == MISSING and counts.pooling == "max":
        return _accumulate_bytes(counts, pred, obs, mask)
    p, o = _as_tensor(pred), _as_tensor(obs)
    _check_shapes(counts, p.shape, o.shape)
    valid = torch.isfinite(p) & torch.isfinite(o)
    if missing is not None:
        valid &= (p != missing) & (o != missing)
    if mask is not None:
        valid &= torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask).bool().expand_as(p)
    b, n_lead, h, w = p.shape
    p, o, valid = (t.transpose(0, 1).reshape(n_lead * b, h, w) for t in (p, o, valid))
    # One joint histogram per scale and lead of (pred class, obs class), where a field's class is
    # the number of (sorted) thresholds it reaches; every threshold's table is a sum of its cells.
    order = np.argsort(counts.thresholds, kind="stable")
    bounds = torch.tensor([float(counts.thresholds[i]) for i in order], dtype=torch.float32)
    k = len(bounds) + 1                                          # classes 0 … n_thr
    right = counts.comparison == ">="
    lead_offset = (torch.arange(n_lead).repeat_interleave(b) * (k * k + 1))[:, None, None]
    for si, s in enumerate(counts.scales):
        ps, ok = _pool(p, valid, s, counts.pooling)
        os_, _ = _pool(o, valid, s, counts.pooling)
        cell = torch.bucketize(ps, bounds, right=right) * k + torch.bucketize(os_, bounds, right=right)
        cell = torch.where(ok, cell, torch.full_like(cell, k * k)) + lead_offset   # k*k: invalid bin
        joint = torch.bincount(cell.reshape(-1), minlength=n_lead * (k * k + 1))
        joint = joint.reshape(n_lead, k * k + 1)[:, : k * k].reshape(n_lead, k, k).numpy().astype(np.int64)
        for rank, ti in enumerate(order):
            pe = slice(rank + 1, None)   # classes reaching this threshold
            pn = slice(0, rank + 1)
            counts.hits[ti, si] += joint[:, pe, pe].sum((1, 2))
            counts.misses[ti, si] += joint[:, pn, pe].sum((1, 2))
            counts.false_alarms[ti, si] += joint[:, pe, pn].sum((1, 2))
            counts.correct_negatives[ti, si] += joint[:, pn, pn].sum((1, 2))
    return counts


def accumulate_yes_no(counts: ContingencyCounts, pred_yes, obs, mask=None, missing=MISSING) -> ContingencyCounts:
    """Add yes/no forecasts made per threshold (e.g. "probability ≥ level") to the counts (in place).

    Parameters
    ----------
    counts : ContingencyCounts
        Running counts (max pooling: at scale s a block says yes where any of its pixels does).
    pred_yes : array-like of bool
        ``(threshold, B, lead_time, H, W)``: the forecast's yes/no for each of the counts' thresholds.
    obs : array-like
        ``(B, lead_time, H, W)`` observations, thresholded with the counts' comparison.
    mask, missing
        As in :func:`accumulate`.
    """
    if counts.pooling != "max":
        raise ValueError("yes/no forecasts are pooled with 'max' (an event anywhere in the block)")
    yes = np.asarray(pred_yes, dtype=bool)
    o = np.asarray(obs, dtype=np.float32)
    if yes.shape != (len(counts.thresholds),) + o.shape:
        raise ValueError(f"pred_yes must be (threshold, B, lead_time, H, W) = "
                         f"{(len(counts.thresholds),) + o.shape}, got {yes.shape}")
    valid = np.isfinite(o) if missing is None else np.isfinite(o) & (o != missing)
    if mask is not None:
        valid &= np.broadcast_to(np.asarray(mask, dtype=bool), o.shape)
    for ti, thr in enumerate(counts.thresholds):
        one = init_counts(counts.n_lead, (0.5,), counts.scales, ">=", "max")
        event = (o >= thr) if counts.comparison == ">=" else (o > thr)
        accumulate(one, yes[ti].astype(np.float32), event.astype(np.float32), mask=valid, missing=None)
        for name in ("hits", "misses", "false_alarms", "correct_negatives"):
            getattr(counts, name)[ti] += getattr(one, name)[0]
    return counts


def _check_shapes(counts: ContingencyCounts, p_shape, o_shape) -> None:
    if p_shape != o_shape or len(p_shape) != 4:
        raise ValueError(f"pred and obs must have the same (B, lead_time, H, W) shape, got "
                         f"{tuple(p_shape)} and {tuple(o_shape)}")
    if p_shape[1] != counts.n_lead:
        raise ValueError(f"fields have {p_shape[1]} lead times, the counts {counts.n_lead}")
    if min(p_shape[2:]) < max(counts.scales):
        raise ValueError(f"fields of {p_shape[2]}×{p_shape[3]} pixels are smaller than the pooling scale "
                         f"{max(counts.scales)}")


def _is_bytes(a) -> bool:
    return (a.dtype == torch.uint8) if torch.is_tensor(a) else (np.asarray(a).dtype == np.uint8)


def _accumulate_bytes(counts: ContingencyCounts, pred, obs, mask) -> ContingencyCounts:
    """Fast exact path for VIL bytes (255 = missing) with max pooling.

    Max pooling keeps bytes and carries a missing pixel (255, the largest byte) into its block, so
    per scale and lead one 256×256 joint histogram of (pred byte, obs byte) holds every threshold's
    table: drop row and column 255, and the counts for a cut-off byte ``c`` are sums of the
    quadrants ``pred ≥ c`` / ``obs ≥ c``, read from 2-D suffix sums.
    """
    p = pred.detach().cpu() if torch.is_tensor(pred) else torch.from_numpy(np.ascontiguousarray(pred))
    o = obs.detach().cpu() if torch.is_tensor(obs) else torch.from_numpy(np.ascontiguousarray(obs))
    _check_shapes(counts, p.shape, o.shape)
    if mask is not None:
        keep = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask).bool().expand_as(p)
        p = torch.where(keep, p, torch.full_like(p, MISSING))
        o = torch.where(keep, o, torch.full_like(o, MISSING))
    b, n_lead, h, w = p.shape
    # byte cut-offs: x >= t  <=>  x >= ceil(t);  x > t  <=>  x >= floor(t) + 1
    thr = np.asarray(counts.thresholds, dtype=np.float64)
    cut = np.ceil(thr) if counts.comparison == ">=" else np.floor(thr) + 1
    cut = np.clip(cut, 0, 255).astype(np.int64)          # 255: no valid byte reaches it
    for si, s in enumerate(counts.scales):
        ps, os_ = p, o
        if s > 1:
            ps = F.max_pool2d(p.reshape(b * n_lead, 1, h, w), s, s).reshape(b, n_lead, h // s, w // s)
            os_ = F.max_pool2d(o.reshape(b * n_lead, 1, h, w), s, s).reshape(b, n_lead, h // s, w // s)
        pn, on = ps.numpy(), os_.numpy()
        for lead in range(n_lead):
            idx = (pn[:, lead].astype(np.uint16) << 8) | on[:, lead]
            joint = np.bincount(idx.ravel(), minlength=65536).reshape(256, 256)[:255, :255]
            # suffix sums: tail[a, c] = number of valid pairs with pred >= a and obs >= c
            tail = np.zeros((256, 256), dtype=np.int64)
            tail[:255, :255] = joint[::-1, ::-1].cumsum(0).cumsum(1)[::-1, ::-1]
            n = tail[0, 0]
            hits = tail[cut, cut]
            pred_yes, obs_yes = tail[cut, 0], tail[0, cut]
            counts.hits[:, si, lead] += hits
            counts.false_alarms[:, si, lead] += pred_yes - hits
            counts.misses[:, si, lead] += obs_yes - hits
            counts.correct_negatives[:, si, lead] += n - pred_yes - obs_yes + hits
    return counts


def merge(a: ContingencyCounts, b: ContingencyCounts) -> ContingencyCounts:
    """Sum two sets of counts made with the same thresholds, scales, lead times and conventions."""
    same = (a.thresholds, a.scales, a.n_lead, a.comparison, a.pooling) == \
           (b.thresholds, b.scales, b.n_lead, b.comparison, b.pooling)
    if not same:
        raise ValueError("cannot merge counts with different thresholds, scales, lead times or conventions")
    return ContingencyCounts(a.thresholds, a.scales, a.n_lead, a.comparison, a.pooling,
                             a.hits + b.hits, a.misses + b.misses, a.false_alarms + b.false_alarms,
                             a.correct_negatives + b.correct_negatives)


def _div(num, den):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1), np.nan)


def compute(counts: ContingencyCounts, pooled_over_leads: bool = False) -> dict:
    """Scores from counts: ``{name: array (threshold, scale, lead_time)}`` plus ``CSI-M``.

    Parameters
    ----------
    counts : ContingencyCounts
        Accumulated counts.
    pooled_over_leads : bool
        Sum the counts over lead times first (arrays then have a lead axis of length 1).

    Returns
    -------
    dict
        CSI, POD, FAR, SUCR, BIAS, HSS, ETS with shape ``(threshold, scale, lead)`` and CSI-M with
        shape ``(scale, lead)`` (the mean over thresholds whose CSI is defined); NaN where a
        ratio is 0/0.
    """
    H, M, Fa, R = (x.astype(np.float64) for x in
                   (counts.hits, counts.misses, counts.false_alarms, counts.correct_negatives))
    if pooled_over_leads:
        H, M, Fa, R = (x.sum(-1, keepdims=True) for x in (H, M, Fa, R))
    N = H + M + Fa + R
    hr = _div((H + M) * (H + Fa), N)
    out = {"CSI": _div(H, H + M + Fa), "POD": _div(H, H + M), "FAR": _div(Fa, H + Fa),
           "SUCR": _div(H, H + Fa), "BIAS": _div(H + Fa, H + M),
           "HSS": _div(2 * (H * R - Fa * M), (H + M) * (M + R) + (H + Fa) * (Fa + R)),
           "ETS": _div(H - hr, H + M + Fa - hr)}
    with warnings.catch_warnings():  # all-NaN slices (no event at any threshold) stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        out["CSI-M"] = np.nanmean(out["CSI"], axis=0)
    return out
