"""The one-pass evaluation accumulator against direct numpy computations of each score."""

import numpy as np
import pytest
import torch

from nowcast.verification.accumulate import EvaluationAccumulator
from nowcast.verification.report import lead_time_table, markdown_table
from nowcast.verification.summarise import summarize

THR = (16, 74, 133, 160, 181, 219)


def _random_lpips(seed):
    """A seeded random AlexNet trunk wrapped as LPIPS (plumbing only; never a reportable LPIPS)."""
    import warnings

    import lpips as _lp

    from nowcast.verification.perceptual import LPIPS

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return LPIPS(module=_lp.LPIPS(net="alex", pnet_rand=True, verbose=False), source=f"random seed {seed}")


def _batch(seed, b=2, m=3, lead=4, size=32):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 230, size=(b, lead, size, size)).astype(np.uint8)
    noise = rng.integers(-40, 40, size=(b, m, lead, size, size))
    pred = np.clip(target[:, None].astype(int) + noise, 0, 254).astype(np.uint8)
    return pred, target


def _direct_crps(pred, target, valid, fair=False):
    """Pairwise formula, E|X − y| − ½ E|X − X'|, looping over member pairs."""
    x = pred.astype(np.float64) / 255
    y = target.astype(np.float64) / 255
    m = x.shape[1]
    skill = np.mean([np.abs(x[:, i] - y) for i in range(m)], axis=0)
    pairs = sum(np.abs(x[:, i] - x[:, j]) for i in range(m) for j in range(m))
    spread = pairs / (2 * m * (m - 1)) if fair else pairs / (2 * m * m)
    crps = skill - spread
    return np.array([crps[:, k][valid[:, k]].mean() for k in range(y.shape[1])])


def test_scores_equal_direct_computations():
    pred, target = _batch(0)
    target[0, 1, :5, :7] = 255          # missing target pixels
    pred[1, 2, 3, 10:20, 4] = 255       # a missing pixel in one member
    acc = EvaluationAccumulator(4, scales=(1, 4), lpips=None, lead_times=[10, 20, 30, 40])
    ds = acc.update(pred, target).result()
    valid = (target != 255) & (pred != 255).all(axis=1)
    np.testing.assert_array_equal(ds.n_valid.values, valid.sum(axis=(0, 2, 3)))
    # categorical: each member scored as a forecast, counts pooled over members
    for ti, thr in enumerate(THR):
        pe, oe = pred >= thr, (target >= thr)[:, None]
        ok = valid[:, None]
        hits = (pe & oe & ok).sum(axis=(0, 1, 3, 4))
        np.testing.assert_array_equal(ds.hits.isel(threshold=ti, scale=0).values, hits)
        fa = (pe & ~oe & ok).sum(axis=(0, 1, 3, 4))
        mi = (~pe & oe & ok).sum(axis=(0, 1, 3, 4))
        np.testing.assert_allclose(ds.CSI.isel(threshold=ti, scale=0).values, hits / (hits + mi + fa))
    np.testing.assert_allclose(ds.CSI_M.sel(scale=1).values, ds.CSI.sel(scale=1).mean("threshold").values)
    # continuous
    np.testing.assert_allclose(ds.CRPS.values, _direct_crps(pred, target, valid), rtol=1e-10)
    np.testing.assert_allclose(ds.CRPS_fair.values, _direct_crps(pred, target, valid, fair=True), rtol=1e-10)
    x, y = pred / 255.0, target / 255.0
    err = x.mean(axis=1) - y
    np.testing.assert_allclose(ds.MSE.values, [np.mean(err[:, k][valid[:, k]] ** 2) for k in range(4)], rtol=1e-6)
    var = x.var(axis=1, ddof=1)
    spread = np.sqrt([var[:, k][valid[:, k]].mean() for k in range(4)])
    np.testing.assert_allclose(ds.spread.values, spread, rtol=1e-6)
    np.testing.assert_allclose(ds.spread_skill.values, np.sqrt(4 / 3) * spread / ds.RMSE.values, rtol=1e-12)
    for ti, thr in enumerate(THR):
        prob = (pred >= thr).mean(axis=1)
        bs = (prob - (target >= thr)) ** 2
        np.testing.assert_allclose(ds.Brier.isel(threshold=ti).values,
                                   [bs[:, k][valid[:, k]].mean() for k in range(4)], rtol=1e-12)
    assert ds.rank_histogram.values.sum(axis=1).tolist() == ds.n_valid.values.astype(int).tolist()
    assert ds.lead_time.values.tolist() == [10, 20, 30, 40] and ds.lead_time.attrs["units"] == "minutes"
    stacked = ds[["CSI", "POD", "FSS"]].to_array("metric")
    assert stacked.dims == ("metric", "threshold", "scale", "lead_time")


def test_merging_partial_accumulations_equals_one_pass():
    (p1, t1), (p2, t2) = _batch(1), _batch(2)
    one = EvaluationAccumulator(4, lpips=None)
    one.update(np.concatenate([p1, p2]), np.concatenate([t1, t2]))
    a = EvaluationAccumulator(4, lpips=None).update(p1, t1)
    b = EvaluationAccumulator(4, lpips=None).update(p2, t2)
    merged, ref = a.merge(b).result(), one.result()
    for name in ("hits", "misses", "false_alarms", "correct_negatives"):
        np.testing.assert_array_equal(merged[name].values, ref[name].values)
    for name in ("CSI", "HSS", "FSS", "CRPS", "CRPS_fair", "MSE", "spread", "Brier"):
        np.testing.assert_allclose(merged[name].values, ref[name].values, rtol=1e-12, equal_nan=True)
    assert merged.attrs["n_samples"] == 4


def test_one_member_crps_is_the_mae_and_is_labelled_so():
    pred, target = _batch(3, m=1)
    ds = EvaluationAccumulator(4, lpips=None).update(torch.from_numpy(pred[:, 0]), target).result()
    np.testing.assert_allclose(ds.CRPS.values, ds.MAE.values, rtol=1e-12)
    assert "MAE" in ds.attrs["crps_label"]
    assert np.isnan(ds.spread.values).all()
    assert "(MAE)" in markdown_table({"persistence": ds})


def test_ensemble_mean_mode_scores_the_mean():
    pred, target = _batch(4)
    ds = EvaluationAccumulator(4, categorical="mean", scales=(1,), fss=False, lpips=None).update(pred, target).result()
    mean = pred.astype(np.float32).mean(axis=1)
    hits = ((mean >= 74) & (target >= 74)).sum(axis=(0, 2, 3))
    np.testing.assert_array_equal(ds.hits.sel(threshold=74, scale=1).values, hits)
    assert "FSS" not in ds


def test_summary_pools_counts_over_lead_times():
    pred, target = _batch(5)
    ds = EvaluationAccumulator(4, lpips=None).update(pred, target).result()
    sm = summarize(ds)
    h, m, f = (ds[k].sum("lead_time") for k in ("hits", "misses", "false_alarms"))
    np.testing.assert_allclose(sm.CSI.values, (h / (h + m + f)).values)
    np.testing.assert_allclose(float(sm.CRPS), float((ds.CRPS * ds.n_valid).sum() / ds.n_valid.sum()))


def test_reports_show_lpips_as_unavailable_without_weights(no_lpips_weights):
    pred, target = _batch(6)
    ds = EvaluationAccumulator(4).update(pred, target).result()
    assert "LPIPS" not in ds and ds.attrs["lpips"].startswith("unavailable")
    table = markdown_table({"ddim": ds}, nfe={"ddim": 5})
    assert "unavailable" in table.splitlines()[2] and "| ddim | 5 |" in table
    assert len(lead_time_table(ds).splitlines()) == 2 + 4


def test_random_backbone_lpips_is_refused():
    pytest.importorskip("lpips")
    with pytest.raises(ValueError, match="random backbone"):
        EvaluationAccumulator(4, lpips=_random_lpips(0))


def test_lpips_with_weights_is_the_mean_per_frame_distance(tmp_path):
    pytest.importorskip("lpips")
    import torchvision

    from nowcast.verification.perceptual import LPIPS

    torch.manual_seed(0)
    weights = tmp_path / "alexnet.pth"
    torch.save(torchvision.models.alexnet().state_dict(), weights)
    model = LPIPS(weights)
    pred, target = _batch(7, b=1, m=2, lead=2, size=32)
    ds = EvaluationAccumulator(2, lpips=model).update(pred, target).result()
    with torch.no_grad():
        direct = [float(model(torch.from_numpy(pred[0, :, k] / 255.0),
                              torch.from_numpy(np.repeat(target[:1, k], 2, 0) / 255.0)).mean()) for k in range(2)]
    np.testing.assert_allclose(ds.LPIPS.values, direct, rtol=1e-5)
    assert weights.name in ds.attrs["lpips"]


def test_bad_shapes_are_refused():
    acc = EvaluationAccumulator(4, lpips=None)
    with pytest.raises(ValueError, match="lead times"):
        acc.update(np.zeros((1, 2, 3, 8, 8), np.uint8), np.zeros((1, 3, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="smaller than the pooling scale 16"):
        acc.update(np.zeros((1, 2, 4, 8, 8), np.uint8), np.zeros((1, 4, 8, 8), np.uint8))
    acc.update(np.zeros((1, 2, 4, 16, 16), np.uint8), np.zeros((1, 4, 16, 16), np.uint8))
    with pytest.raises(ValueError, match="2 members"):
        acc.update(np.zeros((1, 3, 4, 16, 16), np.uint8), np.zeros((1, 4, 16, 16), np.uint8))
