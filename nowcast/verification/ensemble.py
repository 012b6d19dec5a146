"""Ensemble scores: CRPS (ensemble estimator, optionally fair), rank histogram, Brier score and its
decomposition, reliability, spread–skill, the probability-matched mean and probability levels.

With members ``x_1 … x_M`` and observation ``y`` (Gneiting & Raftery 2007; Ferro 2014 for the fair
variant):

* ``CRPS = (1/M) Σ_m |x_m − y| − 1/(2M²) Σ_{m,m'} |x_m − x_m'|``;
* fair: the second term divided by ``2M(M−1)`` instead of ``2M²`` (unbiased for the ensemble's
  underlying distribution);
* with one member the second term vanishes and the CRPS *is* the mean absolute error:
  :func:`crps_label` names it so in reports.

The pairwise sum is computed in O(M log M) from the sorted members:
``Σ_{m,m'} |x_m − x_m'| = 2 Σ_i (2i − M + 1)·x_(i)`` (0-based ranks).

An M-member ensemble forecasts the probability of an event as the fraction ``k/M`` of members
that exceed the threshold, so its probabilities take the M + 1 values ``0, 1/M, …, 1``. Counting,
per value ``k``, the points forecast with it (``n_k``) and those where the event happened (``o_k``)
keeps everything the Brier score needs: with ``N = Σ n_k``, the base rate ``ō = Σ o_k / N`` and
``ō_k = o_k / n_k``, Murphy's (1973) decomposition

    BS = REL − RES + UNC,  REL = Σ n_k (k/M − ō_k)² / N,  RES = Σ n_k (ō_k − ō)² / N,  UNC = ō (1 − ō)

is exact (the probabilities are the bins), the reliability diagram is ``(k/M, ō_k)``, and a yes/no
forecast "probability ≥ k₀/M" has hits ``Σ_{k≥k₀} o_k``, false alarms ``Σ_{k≥k₀} (n_k − o_k)`` and
misses ``Σ_{k<k₀} o_k`` (:func:`best_probability_level`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["crps_ensemble", "crps_label", "rank_histogram", "rank_counts", "exceedance", "exceedance_probability",
           "brier_terms", "brier_score", "spread_skill", "spread_skill_factor",
           "reliability", "probability_counts", "brier_decomposition", "best_probability_level",
           "probability_matched_mean"]


def crps_ensemble(members, obs, fair: bool = False, axis: int = 0) -> np.ndarray:
    """Pointwise CRPS of an ensemble.

    Parameters
    ----------
    members : array-like
        Ensemble with the member dimension at ``axis``.
    obs : array-like
        Observations, broadcastable to the members without that axis.
    fair : bool
        Use the fair (unbiased) estimator; needs at least two members.
    axis : int
        Member axis.

    Returns
    -------
    numpy.ndarray
        CRPS per point (float64), NaN where the observation or any member is NaN.
    """
    x = np.moveaxis(np.asarray(members, dtype=np.float64), axis, 0)
    y = np.asarray(obs, dtype=np.float64)
    m = x.shape[0]
    if fair and m < 2:
        raise ValueError("the fair CRPS needs at least two members")
    skill = np.abs(x - y).mean(axis=0)
    xs = np.sort(x, axis=0)
    weights = (2 * np.arange(m) - m + 1).reshape((m,) + (1,) * (x.ndim - 1))
    pair_sum = 2 * (weights * xs).sum(axis=0)          # Σ_{m,m'} |x_m − x_m'|
    spread = pair_sum / (2 * m * (m - 1)) if fair else pair_sum / (2 * m * m)
    return skill - spread


def crps_label(n_members: int) -> str:
    """How a CRPS of ``n_members`` members should be labelled (one member: it is the MAE)."""
    return "CRPS" if n_members > 1 else "MAE (CRPS of 1 member)"


def rank_histogram(members, obs, axis: int = 0, rng: np.random.Generator | None = None) -> np.ndarray:
    """Counts of the observation's rank among the members (M + 1 bins; ties broken at random).

    NaN points are skipped.
    """
    x = np.moveaxis(np.asarray(members, dtype=np.float64), axis, 0)
    y = np.broadcast_to(np.asarray(obs, dtype=np.float64), x.shape[1:])
    ok = np.isfinite(y) & np.isfinite(x).all(axis=0)
    return rank_counts(x[:, ok], y[ok], rng)


def rank_counts(members: np.ndarray, obs: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Rank-histogram counts of finite ``(M, n)`` members and ``(n,)`` observations (M + 1 bins)."""
    below = (members < obs).sum(axis=0)
    ties = (members == obs).sum(axis=0)
    rng = rng or np.random.default_rng(0)
    rank = below + np.floor(rng.uniform(size=obs.shape) * (ties + 1)).astype(np.int64)
    return np.bincount(rank, minlength=members.shape[0] + 1)


def exceedance(values, threshold, comparison: str = ">="):
    """Where ``values`` exceed ``threshold`` (``>=``, SEVIR's convention, or ``>``, pysteps')."""
    return (values >= threshold) if comparison == ">=" else (values > threshold)


def exceedance_probability(members, threshold, comparison: str = ">=", axis: int = 0) -> np.ndarray:
    """The fraction of members exceeding ``threshold`` (see :func:`exceedance`)."""
    return exceedance(np.asarray(members), threshold, comparison).mean(axis=axis)


def brier_terms(prob, event) -> np.ndarray:
    """Pointwise squared difference of forecast probabilities and binary outcomes."""
    return (prob - event) ** 2


def brier_score(prob, event) -> float:
    """Mean squared difference of forecast probabilities and binary outcomes (NaN skipped)."""
    p = np.asarray(prob, dtype=np.float64)
    o = np.asarray(event, dtype=np.float64)
    ok = np.isfinite(p) & np.isfinite(o)
    return float(np.mean(brier_terms(p[ok], o[ok])))


def spread_skill_factor(n_members: int) -> float:
    """``sqrt((M + 1)/M)``: the finite-ensemble factor that makes spread/RMSE 1 for a calibrated ensemble."""
    return np.sqrt((n_members + 1) / n_members)


def reliability(prob, event, bins: int = 10) -> tuple:
    """Reliability diagram data: forecast probabilities in ``bins`` equal bins of [0, 1].

    Parameters
    ----------
    prob : array-like
        Forecast probabilities (e.g. the fraction of members above a threshold).
    event : array-like
        Outcomes (1 where the event happened, 0 where not); NaN in either is skipped.
    bins : int
        Number of bins; probability 1 falls in the last one.

    Returns
    -------
    tuple of numpy.ndarray
        ``(mean forecast probability, observed frequency, count)`` per bin (NaN where empty).
    """
    p = np.asarray(prob, dtype=np.float64).ravel()
    o = np.asarray(event, dtype=np.float64).ravel()
    ok = np.isfinite(p) & np.isfinite(o)
    p, o = p[ok], o[ok]
    idx = np.minimum((p * bins).astype(int), bins - 1)
    count = np.bincount(idx, minlength=bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(idx, weights=p, minlength=bins) / count
        freq = np.bincount(idx, weights=o, minlength=bins) / count
    return mean_p, freq, count


def spread_skill(members, obs, axis: int = 0) -> tuple[float, float, float]:
    """Ensemble spread, ensemble-mean RMSE and their ratio (Fortin et al. 2014).

    ``spread = sqrt(mean over points of the unbiased member variance)``,
    ``rmse = sqrt(mean (ensemble mean − obs)²)``, ``ratio = sqrt((M + 1)/M) · spread / rmse``,
    which is 1 in expectation for a calibrated ensemble. NaN points are skipped.

    Returns
    -------
    tuple of float
        ``(spread, rmse, ratio)``; the spread and ratio are NaN with one member.
    """
    x = np.moveaxis(np.asarray(members, dtype=np.float64), axis, 0)
    y = np.broadcast_to(np.asarray(obs, dtype=np.float64), x.shape[1:])
    m = x.shape[0]
    ok = np.isfinite(y) & np.isfinite(x).all(axis=0)
    xs, ys = x[:, ok], y[ok]
    rmse = float(np.sqrt(np.mean((xs.mean(axis=0) - ys) ** 2)))
    if m < 2:
        return float("nan"), rmse, float("nan")
    spread = float(np.sqrt(np.mean(xs.var(axis=0, ddof=1))))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(spread_skill_factor(m) * spread / rmse) if rmse > 0 else float("nan")
    return spread, rmse, ratio


def probability_counts(members, obs, threshold, comparison: str = ">=", axis: int = 0) -> tuple:
    """Per number of exceeding members ``k = 0 … M``: the points forecast with ``k/M`` and the events there.

    Parameters
    ----------
    members : array-like
        Ensemble with the member dimension at ``axis``.
    obs : array-like
        Observations, broadcastable to the members without that axis; NaN points are skipped.
    threshold : float
        Event threshold (see :func:`exceedance`).

    Returns
    -------
    tuple of numpy.ndarray
        ``(n_k, o_k)``, int64 arrays of length M + 1.
    """
    x = np.moveaxis(np.asarray(members, dtype=np.float64), axis, 0)
    y = np.broadcast_to(np.asarray(obs, dtype=np.float64), x.shape[1:])
    ok = np.isfinite(y) & np.isfinite(x).all(axis=0)
    k = exceedance(x[:, ok], threshold, comparison).sum(axis=0)
    event = exceedance(y[ok], threshold, comparison)
    m = x.shape[0]
    return (np.bincount(k, minlength=m + 1).astype(np.int64),
            np.bincount(k, weights=event, minlength=m + 1).astype(np.int64))


def brier_decomposition(n_k, o_k) -> dict:
    """Brier score and Murphy's decomposition from :func:`probability_counts` (summed over any batches).

    Parameters
    ----------
    n_k, o_k : array-like
        Points forecast with probability ``k/M`` and events among them, ``k = 0 … M`` along the last
        axis (leading axes, e.g. threshold × lead time, are kept).

    Returns
    -------
    dict
        ``Brier``, ``reliability``, ``resolution``, ``uncertainty`` (``Brier = reliability −
        resolution + uncertainty``) and ``base_rate``; NaN where no point was counted.
    """
    n = np.asarray(n_k, dtype=np.float64)
    o = np.asarray(o_k, dtype=np.float64)
    p = np.linspace(0.0, 1.0, n.shape[-1])
    total = n.sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        base = o.sum(-1) / total
        freq = np.where(n > 0, o / np.where(n > 0, n, 1), 0.0)
        brier = (n * p ** 2 - 2 * p * o + o).sum(-1) / total
        rel = (n * (p - freq) ** 2).sum(-1) / total
        res = (n * (freq - base[..., None]) ** 2).sum(-1) / total
    return {"Brier": brier, "reliability": rel, "resolution": res, "uncertainty": base * (1 - base),
            "base_rate": base}


def best_probability_level(n_k, o_k) -> tuple[float, float]:
    """The probability level ``k₀/M`` (``k₀ ≥ 1``) whose yes/no forecast "p ≥ k₀/M" has the best CSI.

    Parameters
    ----------
    n_k, o_k : array-like
        1-D counts of :func:`probability_counts` (e.g. on a validation split, pooled over lead times).

    Returns
    -------
    tuple of float
        ``(level, CSI)``; ties go to the lowest level; ``(nan, nan)`` when nothing was counted or no
        event happened and none was forecast.
    """
    n = np.asarray(n_k, dtype=np.float64)
    o = np.asarray(o_k, dtype=np.float64)
    m = n.size - 1
    yes_hits = np.cumsum(o[::-1])[::-1]                  # Σ_{k ≥ k0} o_k
    yes_all = np.cumsum(n[::-1])[::-1]                   # Σ_{k ≥ k0} n_k
    events = o.sum()
    hits, false_alarms = yes_hits[1:], yes_all[1:] - yes_hits[1:]
    misses = events - hits
    den = hits + misses + false_alarms
    if not np.any(den > 0):
        return float("nan"), float("nan")
    csi = np.where(den > 0, hits / np.where(den > 0, den, 1), -1.0)
    best = int(np.argmax(csi))
    return (best + 1) / m, float(csi[best])


def probability_matched_mean(members, axis: int = 0, valid=None) -> np.ndarray:
    """The probability-matched ensemble mean of one field (Ebert 2001).

    The ensemble mean keeps its spatial pattern (the ranks of its values) and takes the values of the
    members: the pooled ``M·N`` member values are sorted and averaged in consecutive blocks of ``M``,
    and the ``i``-th smallest block mean goes to the point where the ensemble mean has its ``i``-th
    smallest value. The field's distribution is then the members' (exactly so when the members share
    one distribution) and its domain mean is the ensemble mean's, while the mean's smoothing of
    intense cores is undone.

    Parameters
    ----------
    members : array-like
        ``M`` fields with the member dimension at ``axis``; every other dimension is the field's.
    valid : array-like of bool, optional
        The points to use (default: every point where no member is NaN); the others are NaN.

    Returns
    -------
    numpy.ndarray
        The probability-matched mean (float64), shaped like one member.
    """
    x = np.moveaxis(np.asarray(members, dtype=np.float64), axis, 0)
    m = x.shape[0]
    ok = np.isfinite(x).all(axis=0) if valid is None else np.asarray(valid, dtype=bool) & np.isfinite(x).all(axis=0)
    out = np.full(x.shape[1:], np.nan)
    values = x[:, ok]                                            # (M, N)
    if values.shape[1] == 0:
        return out
    mean = values.mean(axis=0)
    pooled = np.sort(values.reshape(-1)).reshape(-1, m).mean(axis=1)   # N block means, ascending
    matched = np.empty_like(mean)
    matched[np.argsort(mean, kind="stable")] = pooled
    out[ok] = matched
    return out
