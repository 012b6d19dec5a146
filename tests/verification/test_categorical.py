"""Contingency counts and scores against a textbook example and independent numpy."""

import numpy as np
import pytest

from nowcast.verification.categorical import accumulate, compute, init_counts, merge


def _cawcr_fields():
    """The CAWCR example: 82 hits, 38 false alarms, 23 misses, 222 correct negatives."""
    pred = np.r_[np.ones(82), np.ones(38), np.zeros(23), np.zeros(222)]
    obs = np.r_[np.ones(82), np.zeros(38), np.ones(23), np.zeros(222)]
    return pred.reshape(1, 1, 1, 365), obs.reshape(1, 1, 1, 365)


def test_cawcr_textbook_example():
    c = accumulate(init_counts(1, thresholds=(1,), scales=(1,)), *_cawcr_fields())
    assert (c.hits, c.false_alarms, c.misses, c.correct_negatives) == (82, 38, 23, 222)
    s = {k: float(v.ravel()[0]) for k, v in compute(c).items()}
    # hand-computed from the CAWCR verification page definitions
    assert s["POD"] == pytest.approx(82 / 105)
    assert s["FAR"] == pytest.approx(38 / 120)
    assert s["CSI"] == pytest.approx(82 / 143)
    assert s["BIAS"] == pytest.approx(120 / 105)
    assert s["SUCR"] == pytest.approx(82 / 120)
    assert s["HSS"] == pytest.approx(2 * (82 * 222 - 38 * 23) / (105 * 245 + 120 * 260))
    hr = 105 * 120 / 365
    assert s["ETS"] == pytest.approx((82 - hr) / (143 - hr))
    assert s["CSI-M"] == pytest.approx(82 / 143)


def _numpy_counts(pred, obs, thr, s, cmp=">="):
    """Independent reference: reshape-based block max, then counts over valid blocks."""
    b, lead, h, w = pred.shape
    valid = (pred != 255) & (obs != 255)
    p = np.where(valid, pred, 0).reshape(b, lead, h // s, s, w // s, s).max(axis=(3, 5))
    o = np.where(valid, obs, 0).reshape(b, lead, h // s, s, w // s, s).max(axis=(3, 5))
    ok = valid.reshape(b, lead, h // s, s, w // s, s).all(axis=(3, 5))
    pe, oe = (p >= thr, o >= thr) if cmp == ">=" else (p > thr, o > thr)
    return np.stack([((pe & oe & ok).sum((0, 2, 3))), ((~pe & oe & ok).sum((0, 2, 3))),
                     ((pe & ~oe & ok).sum((0, 2, 3))), ((~pe & ~oe & ok).sum((0, 2, 3)))])


@pytest.mark.parametrize("cmp", [">=", ">"])
def test_pooled_counts_equal_numpy(cmp):
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 255, size=(3, 4, 32, 32)).astype(np.uint8)
    obs = np.clip(pred.astype(int) + rng.integers(-40, 40, size=pred.shape), 0, 254).astype(np.uint8)
    obs[0, 1, 3:9, 5:7] = 255
    pred[2, 0, 10:12, 20:30] = 255
    c = accumulate(init_counts(4, scales=(1, 4, 16), comparison=cmp), pred, obs)
    for ti, thr in enumerate(c.thresholds):
        for si, s in enumerate(c.scales):
            ref = _numpy_counts(pred, obs, thr, s, cmp)
            got = np.stack([c.hits[ti, si], c.misses[ti, si], c.false_alarms[ti, si], c.correct_negatives[ti, si]])
            np.testing.assert_array_equal(got, ref)


def test_missing_pixels_are_never_correct_negatives():
    pred = np.zeros((1, 1, 4, 4), np.uint8)
    obs = np.zeros((1, 1, 4, 4), np.uint8)
    obs[0, 0, 0, :] = 255
    pred[0, 0, 1, 0] = 255
    c = accumulate(init_counts(1, thresholds=(16,), scales=(1,)), pred, obs)
    assert int(c.correct_negatives.sum()) == 16 - 4 - 1
    mask = np.ones((1, 1, 4, 4), bool)
    mask[..., 3, :] = False
    c2 = accumulate(init_counts(1, thresholds=(16,), scales=(1,)), pred, obs, mask=mask)
    assert int(c2.correct_negatives.sum()) == 16 - 4 - 1 - 4
    f = np.zeros((1, 1, 2, 2))
    f[0, 0, 0, 0] = np.nan
    c3 = accumulate(init_counts(1, thresholds=(1.0,), scales=(1,)), f, f, missing=None)
    assert int(c3.correct_negatives.sum()) == 3


def test_merging_partial_counts_equals_one_pass():
    rng = np.random.default_rng(1)
    pred = rng.integers(0, 255, size=(6, 2, 16, 16)).astype(np.uint8)
    obs = rng.integers(0, 255, size=(6, 2, 16, 16)).astype(np.uint8)
    one = accumulate(init_counts(2), pred, obs)
    a = accumulate(init_counts(2), pred[:2], obs[:2])
    b = accumulate(init_counts(2), pred[2:], obs[2:])
    m = merge(a, b)
    for name in ("hits", "misses", "false_alarms", "correct_negatives"):
        np.testing.assert_array_equal(getattr(m, name), getattr(one, name))
    with pytest.raises(ValueError):
        merge(one, init_counts(2, scales=(1,)))


def test_counts_stay_exact_past_2_to_the_24():
    n = 2 ** 12
    field = np.full((1, 2, n, n), 200, np.uint8)  # 2^25 pixels, every one a hit
    c = accumulate(init_counts(2, thresholds=(16,), scales=(1,)), field, field)
    assert c.hits.dtype == np.int64 and int(c.hits.sum()) == 2 ** 25
    c = accumulate(c, field, field)
    assert int(c.hits.sum()) == 2 ** 26 and float(np.float32(2 ** 26 + 1)) != 2 ** 26 + 1


def test_zero_over_zero_is_nan():
    z = np.zeros((1, 1, 4, 4), np.uint8)
    s = compute(accumulate(init_counts(1, thresholds=(16,), scales=(1,)), z, z))
    assert np.isnan(s["CSI"]).all() and np.isnan(s["POD"]).all() and np.isnan(s["CSI-M"]).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="comparison"):
        init_counts(1, comparison="<")
    with pytest.raises(ValueError, match="same"):
        accumulate(init_counts(1), np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 4, 5)))
    with pytest.raises(ValueError, match="lead times"):
        accumulate(init_counts(2), np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 4, 4)))


def test_float_path_counts_stay_exact_past_2_to_the_24():
    n = 4097                                    # n² = 16 785 409: odd and above 2^24, not a float32
    field = np.full((1, 1, n, n), 200.0, np.float32)
    c = accumulate(init_counts(1, thresholds=(16,), scales=(1,)), field, field)
    assert int(c.hits.sum()) == n * n and int(np.float32(n * n)) != n * n


@pytest.mark.parametrize("comparison", [">=", ">"])
@pytest.mark.parametrize("as_bytes", [False, True])
def test_values_exactly_on_a_threshold_follow_the_comparison(comparison, as_bytes):
    """Fields made of values exactly on, just under and just over every threshold: the counts equal
    a direct numpy count with the same comparison, on the float path and on the byte path."""
    from nowcast.verification import categorical as cat

    rng = np.random.default_rng(3)
    thresholds = (16, 74, 133)
    levels = np.array([t + d for t in thresholds for d in (-1, 0, 1)] + [0, 254], dtype=np.float64)
    pred = rng.choice(levels, size=(2, 3, 8, 8))
    obs = rng.choice(levels, size=(2, 3, 8, 8))
    if as_bytes:
        pred, obs = pred.astype(np.uint8), obs.astype(np.uint8)
    else:
        pred, obs = pred.astype(np.float32), obs.astype(np.float32)
    counts = cat.accumulate(cat.init_counts(3, thresholds, (1,), comparison), pred, obs)
    event = (lambda a, t: a >= t) if comparison == ">=" else (lambda a, t: a > t)
    for ti, t in enumerate(thresholds):
        p, o = event(pred, t), event(obs, t)
        for lead in range(3):
            pl, ol = p[:, lead], o[:, lead]
            assert counts.hits[ti, 0, lead] == (pl & ol).sum()
            assert counts.false_alarms[ti, 0, lead] == (pl & ~ol).sum()
            assert counts.misses[ti, 0, lead] == (~pl & ol).sum()
            assert counts.correct_negatives[ti, 0, lead] == (~pl & ~ol).sum()


@pytest.mark.parametrize("comparison", [">=", ">"])
def test_yes_no_forecasts_threshold_observations_on_the_comparison(comparison):
    """Probability forecasts turned yes/no (:func:`accumulate_yes_no`): observations exactly on a
    threshold are events under '>=' and not under '>' (a direct numpy count as the oracle)."""
    from nowcast.verification.categorical import accumulate_yes_no

    rng = np.random.default_rng(4)
    thresholds = (16.0, 74.0)
    obs = rng.choice(np.array([15, 16, 17, 73, 74, 75], dtype=np.float32), size=(2, 3, 8, 8))
    yes = rng.uniform(size=(2, 2, 3, 8, 8)) < 0.5
    counts = accumulate_yes_no(init_counts(3, thresholds, (1,), comparison), yes, obs)
    for ti, t in enumerate(thresholds):
        o = obs >= t if comparison == ">=" else obs > t
        for lead in range(3):
            pl, ol = yes[ti][:, lead], o[:, lead]
            assert counts.hits[ti, 0, lead] == (pl & ol).sum()
            assert counts.misses[ti, 0, lead] == (~pl & ol).sum()
            assert counts.false_alarms[ti, 0, lead] == (pl & ~ol).sum()
            assert counts.correct_negatives[ti, 0, lead] == (~pl & ~ol).sum()
