"""Ensemble scores against their direct definitions."""

import numpy as np
import pytest

from nowcast.verification.ensemble import brier_score, crps_ensemble, crps_label, rank_histogram, reliability


def _crps_direct(x, y, fair=False):
    m = len(x)
    pair = sum(abs(a - b) for a in x for b in x)
    return np.mean(np.abs(np.asarray(x) - y)) - pair / (2 * m * (m - 1) if fair else 2 * m * m)


@pytest.mark.parametrize("fair", [False, True])
def test_crps_equals_the_pairwise_formula(fair):
    rng = np.random.default_rng(0)
    ens = rng.normal(size=(7, 5, 3))
    obs = rng.normal(size=(5, 3))
    got = crps_ensemble(ens, obs, fair=fair)
    for i in range(5):
        for j in range(3):
            assert got[i, j] == pytest.approx(_crps_direct(ens[:, i, j], obs[i, j], fair), rel=1e-12)


def test_crps_of_one_member_is_the_mae():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(1, 10)), rng.normal(size=10)
    np.testing.assert_allclose(crps_ensemble(x, y), np.abs(x[0] - y))
    assert crps_label(1).startswith("MAE") and crps_label(8) == "CRPS"
    with pytest.raises(ValueError):
        crps_ensemble(x, y, fair=True)


def test_crps_of_a_gaussian_ensemble_approaches_the_closed_form():
    # CRPS of N(0, 1) at y: y(2Φ(y) − 1) + 2φ(y) − 1/√π
    from math import erf, exp, pi, sqrt
    y = 0.7
    closed = y * erf(y / sqrt(2)) + 2 * exp(-y * y / 2) / sqrt(2 * pi) - 1 / sqrt(pi)
    ens = np.random.default_rng(2).normal(size=(20000, 1))
    assert crps_ensemble(ens, np.array([y]), fair=True)[0] == pytest.approx(closed, abs=0.01)


def test_rank_histogram_of_a_calibrated_ensemble_is_flat():
    rng = np.random.default_rng(3)
    ens, obs = rng.normal(size=(9, 20000)), rng.normal(size=20000)
    h = rank_histogram(ens, obs)
    assert h.sum() == 20000 and len(h) == 10
    assert h.min() > 0.85 * 2000 and h.max() < 1.15 * 2000
    biased = rank_histogram(ens + 1.0, obs)
    assert biased[0] > 3 * biased[-1]


def test_brier_score():
    assert brier_score([1.0, 0.0, 0.5, np.nan], [1, 0, 1, 1]) == pytest.approx(0.25 / 3)


def test_reliability_of_calibrated_probabilities_is_the_diagonal():
    """Outcomes drawn with the forecast probability: every bin's observed frequency ≈ its mean
    probability (a perfectly reliable forecast), and the counts add up."""
    rng = np.random.default_rng(0)
    p = rng.uniform(size=200_000)
    o = (rng.uniform(size=p.size) < p).astype(float)
    mean_p, freq, count = reliability(p, o, bins=10)
    np.testing.assert_allclose(mean_p, np.arange(10) / 10 + 0.05, atol=2e-3)
    np.testing.assert_allclose(freq, mean_p, atol=0.01)
    assert count.sum() == p.size
    # by hand: probabilities 0, 0.5, 1 with outcomes 0, 1, 1 in three bins
    mp, fr, n = reliability([0.0, 0.5, 1.0, np.nan], [0, 1, 1, 1], bins=2)
    np.testing.assert_allclose(mp, [0.0, 0.75])
    np.testing.assert_allclose(fr, [0.0, 1.0])
    assert list(n) == [1, 2]


@pytest.mark.parametrize("comparison", [">=", ">"])
def test_exceedance_probability_on_a_threshold_follows_the_comparison(comparison):
    """Members exactly on the threshold count under '>=' (SEVIR) and not under '>' (pysteps)."""
    from nowcast.verification.ensemble import exceedance, exceedance_probability

    members = np.array([[15.0, 16.0], [16.0, 16.0], [17.0, 16.0], [16.0, 17.0]])     # (M=4, n=2)
    want = np.array([3 / 4, 1.0]) if comparison == ">=" else np.array([1 / 4, 1 / 4])
    np.testing.assert_array_equal(exceedance_probability(members, 16.0, comparison=comparison), want)
    np.testing.assert_array_equal(exceedance(np.array([16.0]), 16.0, comparison), [comparison == ">="])
