"""Counts, scores and FSS against pysteps' implementations, conventions aligned.

pysteps' ``det_cat_fct`` uses ``>`` and counts NaN as "no event"; ours takes the convention as a
parameter and leaves missing pixels out. Aligned: ``comparison='>'``, NaN pairs dropped before
calling pysteps. Its FSS uses ``>=`` with non-finite pixels as non-events, like ours.
"""

import numpy as np
import pytest

from nowcast.verification.categorical import accumulate, compute, init_counts
from nowcast.verification.spatial import FSSAccumulator

detcat = pytest.importorskip("pysteps.verification.detcatscores")
spatialscores = pytest.importorskip("pysteps.verification.spatialscores")

PYSTEPS_TO_OURS = {"POD": "POD", "FAR": "FAR", "CSI": "CSI", "BIAS": "BIAS", "HSS": "HSS", "ETS": "ETS"}


def _fields(seed, shape=(2, 3, 24, 24), nan_fraction=0.05):
    rng = np.random.default_rng(seed)
    obs = rng.gamma(0.6, 40.0, size=shape)
    pred = np.clip(obs + rng.normal(0, 25, size=shape), 0, None)
    obs[rng.uniform(size=shape) < nan_fraction] = np.nan
    pred[rng.uniform(size=shape) < nan_fraction] = np.nan
    return pred, obs


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("thr", [1.0, 16.0, 74.0, 133.0])
def test_counts_and_scores_equal_det_cat_fct(seed, thr):
    pred, obs = _fields(seed)
    ours = accumulate(init_counts(3, thresholds=(thr,), scales=(1,), comparison=">"), pred, obs, missing=None)
    scores = compute(ours, pooled_over_leads=True)
    ok = np.isfinite(pred) & np.isfinite(obs)
    ref = detcat.det_cat_fct_init(thr)
    detcat.det_cat_fct_accum(ref, pred[ok], obs[ok])
    assert (int(ours.hits.sum()), int(ours.misses.sum()), int(ours.false_alarms.sum()),
            int(ours.correct_negatives.sum())) == (ref["hits"], ref["misses"], ref["false_alarms"],
                                                   ref["correct_negatives"])
    expected = detcat.det_cat_fct_compute(ref, scores=list(PYSTEPS_TO_OURS))
    for theirs, mine in PYSTEPS_TO_OURS.items():
        np.testing.assert_allclose(scores[mine][0, 0, 0], expected[theirs], rtol=1e-12, equal_nan=True)


def test_per_lead_counts_equal_det_cat_fct_per_lead():
    pred, obs = _fields(3)
    ours = accumulate(init_counts(3, thresholds=(74.0,), scales=(1,), comparison=">"), pred, obs, missing=None)
    csi = compute(ours)["CSI"][0, 0]
    for lead in range(3):
        p, o = pred[:, lead], obs[:, lead]
        ok = np.isfinite(p) & np.isfinite(o)
        ref = detcat.det_cat_fct(p[ok], o[ok], 74.0, scores="CSI")["CSI"]
        assert csi[lead] == pytest.approx(ref, rel=1e-12)


def test_byte_fast_path_equals_det_cat_fct():
    """uint8 fields with 255 = missing take the histogram path; it must agree too."""
    rng = np.random.default_rng(5)
    pred = rng.integers(0, 256, size=(3, 2, 32, 32)).astype(np.uint8)
    obs = rng.integers(0, 256, size=(3, 2, 32, 32)).astype(np.uint8)
    for cmp in (">=", ">"):
        ours = accumulate(init_counts(2, scales=(1,), comparison=cmp), pred, obs)
        ok = (pred != 255) & (obs != 255)
        for ti, thr in enumerate(ours.thresholds):
            # pysteps thresholds with '>': x >= t on integers is x > t - 1
            ref_thr = thr - 1 if cmp == ">=" else thr
            ref = detcat.det_cat_fct_init(ref_thr)
            detcat.det_cat_fct_accum(ref, pred[ok].astype(float), obs[ok].astype(float))
            got = (ours.hits[ti].sum(), ours.misses[ti].sum(), ours.false_alarms[ti].sum(),
                   ours.correct_negatives[ti].sum())
            assert got == (ref["hits"], ref["misses"], ref["false_alarms"], ref["correct_negatives"])


def test_cawcr_example_through_pysteps_too():
    pred = np.r_[np.ones(82), np.ones(38), np.zeros(23), np.zeros(222)]
    obs = np.r_[np.ones(82), np.zeros(38), np.ones(23), np.zeros(222)]
    ref = detcat.det_cat_fct(pred, obs, 0.5)
    ours = compute(accumulate(init_counts(1, thresholds=(0.5,), scales=(1,), comparison=">"),
                              pred.reshape(1, 1, 1, -1), obs.reshape(1, 1, 1, -1), missing=None))
    for theirs, mine in PYSTEPS_TO_OURS.items():
        if theirs in ref:
            assert ours[mine].item() == pytest.approx(ref[theirs], rel=1e-12)


@pytest.mark.parametrize("scale", [1, 2, 5, 16])
def test_fss_equals_pysteps(scale):
    rng = np.random.default_rng(scale)
    obs = rng.gamma(0.6, 40.0, size=(40, 36))
    pred = np.roll(obs, 3, axis=1) + rng.normal(0, 10, size=obs.shape)
    pred[5:9, 2:6] = np.nan
    for thr in (16.0, 74.0):
        ours = FSSAccumulator((thr,), (scale,), missing=None).update(pred, obs).compute()[0, 0]
        assert ours == pytest.approx(spatialscores.fss(pred, obs, thr, scale), rel=1e-10)


def test_accumulated_fss_equals_pysteps_accumulation():
    rng = np.random.default_rng(7)
    fields = [(rng.gamma(0.6, 40.0, size=(20, 20)), rng.gamma(0.6, 40.0, size=(20, 20))) for _ in range(3)]
    ref = spatialscores.fss_init(74.0, 4)
    ours = FSSAccumulator((74.0,), (4,), missing=None)
    for p, o in fields:
        spatialscores.fss_accum(ref, p, o)
        ours.update(p, o)
    assert ours.compute()[0, 0] == pytest.approx(spatialscores.fss_compute(ref), rel=1e-10)
