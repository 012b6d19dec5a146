"""Ensemble scores: CRPS (ensemble estimator, optionally fair), rank histogram, Brier score, spread–skill.

With members ``x_1 … x_M`` and observation ``y`` (Gneiting & Raftery 2007; Ferro 2014 for the fair
variant):

* ``CRPS = (1/M) Σ_m |x_m − y| − 1/(2M²) Σ_{m,m'} |x_m − x_m'|``;
* fair: the second term divided by ``2M(M−1)`` instead of ``2M²`` (unbiased for the ensemble's
  underlying distribution);
* with one member the second term vanishes and the CRPS *is* the mean absolute error:
  :func:`crps_label` names it so in reports.

The pairwise sum is computed in O(M log M) from the sorted members:
``Σ_{m,m'} |x_m − x_m'| = 2 Σ_i (2i − M + 1)·x_(i)`` (0-based ranks).
"""

from __future__ import annotations

import numpy as np

__all__ = ["crps_ensemble", "crps_label", "rank_histogram", "rank_counts", "exceedance", "exceedance_probability",
           "brier_terms", "brier_score", "spread_skill", "spread_skill_factor",
           "reliability"]


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
