"""Calibration scores against textbook cases and an independent implementation (pysteps):
spread–skill, the Brier decomposition, probability levels, the probability-matched mean, and the
accumulator's ensemble-mean, probability-matched-mean and probability views."""

import numpy as np
import pytest

from nowcast.verification.accumulate import EvaluationAccumulator
from nowcast.verification.ensemble import (best_probability_level, brier_decomposition, brier_score,
                                           probability_counts, probability_matched_mean, spread_skill)
from nowcast.verification.summarise import summarize


def test_spread_skill_of_a_perfectly_reliable_ensemble_is_one():
    """Members and observation drawn from the same distribution: the ratio is 1 (Fortin et al. 2014),
    and without the finite-ensemble factor it would be sqrt(M/(M+1)) = 0.894 for M = 4."""
    rng = np.random.default_rng(0)
    mu = rng.normal(size=200_000) * 3
    members = mu + rng.normal(size=(4, mu.size))
    obs = mu + rng.normal(size=mu.size)
    spread, rmse, ratio = spread_skill(members, obs)
    assert ratio == pytest.approx(1.0, abs=0.01)
    assert spread / rmse == pytest.approx(np.sqrt(4 / 5), abs=0.01)
    # an under-dispersed ensemble (members about a third as spread as they should be) scores about 1/3
    narrow = mu + rng.normal(size=(4, mu.size)) / 3
    assert spread_skill(narrow, obs)[2] < 0.5


def _explicit_decomposition(p, o):
    """Murphy (1973) from the points themselves: group by forecast value, no counts."""
    base = o.mean()
    rel = sum((p == v).sum() * (v - o[p == v].mean()) ** 2 for v in np.unique(p)) / p.size
    res = sum((p == v).sum() * (o[p == v].mean() - base) ** 2 for v in np.unique(p)) / p.size
    return rel, res, base * (1 - base)


def test_brier_decomposition_is_murphys_and_exact():
    rng = np.random.default_rng(1)
    m = 5
    truth = rng.uniform(size=20_000)
    k = rng.binomial(m, np.clip(truth + 0.15, 0, 1))          # over-forecasting ensemble
    o = (rng.uniform(size=truth.size) < truth).astype(float)
    n_k, o_k = np.bincount(k, minlength=m + 1), np.bincount(k, weights=o, minlength=m + 1)
    parts = brier_decomposition(n_k, o_k)
    p = k / m
    assert parts["Brier"] == pytest.approx(brier_score(p, o), rel=1e-12)
    rel, res, unc = _explicit_decomposition(p, o)
    assert (parts["reliability"], parts["resolution"], parts["uncertainty"]) == pytest.approx((rel, res, unc),
                                                                                              rel=1e-10)
    assert parts["Brier"] == pytest.approx(rel - res + unc, rel=1e-12)
    assert parts["reliability"] > 0.01                       # the bias shows up as unreliability


def test_brier_decomposition_textbook_limits():
    o = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0, 0], dtype=float)        # base rate 0.3
    # a perfect deterministic forecast: BS 0, reliability 0, resolution = uncertainty = 0.21
    perfect = brier_decomposition(*probability_counts(o[None] * 5, o * 5, 2.5))
    assert perfect["Brier"] == 0 and perfect["reliability"] == 0
    assert perfect["resolution"] == pytest.approx(0.21) and perfect["uncertainty"] == pytest.approx(0.21)
    # climatology (always 0.3, from a 10-member ensemble with 3 members over): no resolution, reliable
    members = np.zeros((10, o.size))
    members[:3] = 1.0
    clim = brier_decomposition(*probability_counts(members, o, 0.5))
    assert clim["reliability"] == pytest.approx(0) and clim["resolution"] == pytest.approx(0)
    assert clim["Brier"] == pytest.approx(0.21)


def test_best_probability_level_maximises_csi_by_brute_force():
    rng = np.random.default_rng(2)
    m = 8
    truth = rng.uniform(size=5000) ** 2
    k = rng.binomial(m, truth)
    o = rng.uniform(size=truth.size) < truth
    level, csi = best_probability_level(np.bincount(k, minlength=m + 1),
                                        np.bincount(k, weights=o, minlength=m + 1))
    scores = {}
    for k0 in range(1, m + 1):
        yes = k >= k0
        scores[k0 / m] = (yes & o).sum() / ((yes & o).sum() + (~yes & o).sum() + (yes & ~o).sum())
    best = max(scores, key=scores.get)
    assert level == pytest.approx(best) and csi == pytest.approx(scores[best])
    assert np.isnan(best_probability_level(np.zeros(m + 1), np.zeros(m + 1))[0])


def test_probability_matched_mean_equals_pysteps_cdf_matching():
    """Members sharing one distribution (shuffled copies of one field): the PM mean is the ensemble mean
    with its values replaced, rank for rank, by that distribution — pysteps'
    ``nonparam_match_empirical_cdf(mean, member)``."""
    probmatching = pytest.importorskip("pysteps.postprocessing.probmatching")
    rng = np.random.default_rng(3)
    field = rng.gamma(2.0, 20.0, size=(32, 32))      # no dry pixels: no ties in the mean (ranks defined)
    members = np.stack([field] + [rng.permutation(field.ravel()).reshape(32, 32) for _ in range(3)])
    pm = probability_matched_mean(members)
    ref = probmatching.nonparam_match_empirical_cdf(members.mean(0), members[0])
    np.testing.assert_allclose(pm, ref, rtol=1e-12)
    assert np.sort(pm.ravel()) == pytest.approx(np.sort(field.ravel()))


def test_probability_matched_mean_limits():
    rng = np.random.default_rng(4)
    members = rng.gamma(1.0, 10.0, size=(5, 16, 16))
    members[:, 0, 0] = np.nan                                   # missing in every member
    pm = probability_matched_mean(members)
    assert np.isnan(pm[0, 0])
    ok = np.isfinite(pm)
    assert pm[ok].mean() == pytest.approx(members.mean(0)[ok].mean())      # domain mean kept
    assert pm[ok].max() > members.mean(0)[ok].max()                           # cores not smoothed away
    np.testing.assert_array_equal(probability_matched_mean(members[:1]), members[0])
    same = np.stack([members[0]] * 3)
    np.testing.assert_allclose(probability_matched_mean(same), members[0])


def _batch(seed, b=2, m=4, lead=3, size=16):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 230, size=(b, lead, size, size)).astype(np.uint8)
    noise = rng.integers(-60, 60, size=(b, m, lead, size, size))
    return np.clip(target[:, None].astype(int) + noise, 0, 254).astype(np.uint8), target


def test_probability_view_counts_yes_where_enough_members_exceed():
    pred, target = _batch(5)
    levels = (0.25, 0.5, 0.75, 1.0, 0.5, 0.5)
    thr = (16, 74, 133, 160, 181, 219)
    acc = EvaluationAccumulator(3, scales=(1, 4), categorical="probability", levels=levels, lpips=None,
                                ensemble_scores=False)
    ds = acc.update(pred, target).result()
    assert "FSS" not in ds and "CRPS" not in ds and ds.attrs["levels"] == list(levels)
    for ti, (t, lev) in enumerate(zip(thr, levels)):
        yes = (pred >= t).mean(axis=1) >= lev
        obs = target >= t
        np.testing.assert_array_equal(ds.hits.isel(threshold=ti, scale=0).values, (yes & obs).sum(axis=(0, 2, 3)))
        np.testing.assert_array_equal(ds.false_alarms.isel(threshold=ti, scale=0).values,
                                      (yes & ~obs).sum(axis=(0, 2, 3)))
        pool = lambda a: a.reshape(2, 3, 4, 4, 4, 4).any(axis=(3, 5))  # noqa: E731
        np.testing.assert_array_equal(ds.misses.isel(threshold=ti, scale=1).values,
                                      (~pool(yes) & pool(obs)).sum(axis=(0, 2, 3)))
    with pytest.raises(ValueError, match="levels"):
        EvaluationAccumulator(3, categorical="probability", lpips=None)
    with pytest.raises(ValueError, match="levels"):
        EvaluationAccumulator(3, categorical="probability", levels=(0.0,) * 6, lpips=None)


def test_pm_view_scores_the_probability_matched_mean():
    pred, target = _batch(6)
    ds = EvaluationAccumulator(3, scales=(1,), categorical="pm", fss=False, lpips=None).update(pred, target).result()
    pm = np.stack([[probability_matched_mean(pred[i, :, k]) for k in range(3)] for i in range(2)])
    hits = ((pm >= 133) & (target >= 133)).sum(axis=(0, 2, 3))
    np.testing.assert_array_equal(ds.hits.sel(threshold=133, scale=1).values, hits)


def test_accumulated_reliability_counts_and_brier_decomposition():
    pred, target = _batch(7)
    ds = EvaluationAccumulator(3, scales=(1,), lpips=None).update(pred, target).result()
    assert ds.probability.values.tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    for ti, t in enumerate((16, 74, 133, 160, 181, 219)):
        for k in range(3):
            n_k, o_k = probability_counts(pred[:, :, k], target[:, k], t, axis=1)
            np.testing.assert_array_equal(ds.probability_forecasts.isel(threshold=ti, lead_time=k).values, n_k)
            np.testing.assert_array_equal(ds.probability_events.isel(threshold=ti, lead_time=k).values, o_k)
    np.testing.assert_allclose(ds.Brier.values,
                               (ds.Brier_reliability - ds.Brier_resolution + ds.Brier_uncertainty).values,
                               rtol=1e-10)
    sm = summarize(ds)
    p = (pred >= 74).mean(axis=1)
    assert float(sm.Brier.sel(threshold=74)) == pytest.approx(brier_score(p, target >= 74), rel=1e-12)
