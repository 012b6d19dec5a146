"""Baselines: persistence, and pysteps extrapolation of a blob moving at a known speed."""

import numpy as np
import pytest

from nowcast.data.codec import MISSING, decode_vil
from nowcast.baselines import Extrapolation, Persistence, get_baseline
from nowcast.nowcasters import Nowcaster


def _moving_blob(n_frames, speed=(0.0, 2.0), size=64, peak=200):
    """VIL bytes of a Gaussian blob whose centre moves ``speed`` (dy, dx) pixels per frame."""
    y, x = np.mgrid[:size, :size]
    frames = []
    for k in range(n_frames):
        cy, cx = 32 + speed[0] * k, 16 + speed[1] * k
        frames.append(peak * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * 6.0 ** 2)))
    return np.rint(np.stack(frames)).astype(np.uint8)


def _centroid(frame_bytes):
    w = np.nan_to_num(decode_vil(frame_bytes).astype(np.float64))
    y, x = np.mgrid[: w.shape[0], : w.shape[1]]
    return (w * y).sum() / w.sum(), (w * x).sum() / w.sum()


def test_persistence_repeats_the_last_frame():
    ctx = np.random.default_rng(0).integers(0, 255, size=(2, 5, 8, 8)).astype(np.uint8)
    fc, nfe = Persistence().predict(ctx, 3, members=4)
    assert nfe == 0
    assert fc.shape == (2, 1, 3, 8, 8) and fc.dtype == np.uint8
    for k in range(3):
        np.testing.assert_array_equal(fc[:, 0, k], ctx[:, -1])


def test_baselines_follow_the_nowcaster_interface():
    for name in ("persistence", "extrapolation", "pysteps"):
        model = get_baseline(name)
        assert isinstance(model, Nowcaster) and model.task.name == "sevirlr" and model.grid.shape == (128, 128)
        assert model.grid.domain_m == (384_000.0, 384_000.0)
    with pytest.raises(ValueError, match="persistence"):
        get_baseline("climatology")


def test_pysteps_extrapolation_moves_a_blob_at_its_speed():
    pytest.importorskip("pysteps")
    seq = _moving_blob(13)
    ctx, future = seq[:7], seq[7:]
    fc = Extrapolation().forecast(ctx[None], 6)
    assert fc.shape == (1, 1, 6, 64, 64) and fc.dtype == np.uint8
    for k in range(6):
        cy, cx = _centroid(fc[0, 0, k])
        ey, ex = _centroid(future[k])
        assert abs(cy - ey) < 0.5 and abs(cx - ex) < 0.75, (k, cy, cx, ey, ex)
    # persistence, by contrast, leaves it where it was
    assert abs(_centroid(Persistence().forecast(ctx[None], 6)[0, 0, -1])[1] - _centroid(future[-1])[1]) > 10


def test_pysteps_extrapolation_keeps_missing_data_missing_and_fills_inflow_with_zero():
    pytest.importorskip("pysteps")
    seq = _moving_blob(7)
    seq[:, 40:44, 50:54] = MISSING
    fc = Extrapolation().forecast(seq[None], 3)
    assert (fc == MISSING).any()                    # the hole is carried along, not invented away
    assert (fc[0, 0, -1][:, :4] == 0).all()         # inflow at the upwind edge is "no echo"


def test_bad_context_is_refused():
    with pytest.raises(ValueError, match="uint8"):
        Persistence().predict(np.zeros((1, 3, 4, 4), np.float32), 2)
    with pytest.raises(ValueError, match="batch, time"):
        Persistence().predict(np.zeros((3, 4, 4), np.uint8), 2)
    with pytest.raises(ValueError, match="3 context frames"):
        Extrapolation(n_motion_frames=3).predict(np.zeros((1, 2, 8, 8), np.uint8), 2)


# ---- STEPS (pysteps' ensemble nowcast) ----

def test_steps_is_a_seeded_ensemble_that_moves_the_blob_at_its_speed():
    pytest.importorskip("pysteps")
    from nowcast.baselines import Steps

    seq = _moving_blob(13)
    fc, nfe = Steps().predict(seq[None, :7], 6, members=4, seed=1)
    assert fc.shape == (1, 4, 6, 64, 64) and fc.dtype == np.uint8 and nfe == 0 and int(fc.max()) <= 254
    again, _ = Steps().predict(seq[None, :7], 6, members=4, seed=1)
    np.testing.assert_array_equal(fc, again)
    assert not np.array_equal(fc[0, 0], fc[0, 1])                       # the members differ
    for k in (0, 2, 5):           # the echo moves 2 px per frame; persistence would stay 2(k+1) px behind
        cx = np.mean([_centroid(fc[0, m, k])[1] for m in range(4)])
        truth = _centroid(seq[7 + k])[1]
        assert abs(cx - truth) < 0.25 * abs(_centroid(seq[6])[1] - truth), (k, cx, truth)


def test_steps_equals_pysteps_on_the_documented_decibel_transform():
    """The wrapper's forecast is pysteps' own ``steps`` on 10·log10(VIL) with a 0.1 kg m⁻² threshold
    (−5 dB below it), transformed back and encoded: the oracle is written here from the docs."""
    pytest.importorskip("pysteps")
    import contextlib
    import io

    from nowcast.baselines import Steps
    from nowcast.data.codec import encode_vil

    with contextlib.redirect_stdout(io.StringIO()):
        import pysteps.nowcasts

    seq = _moving_blob(7)
    model = Steps()
    vil = decode_vil(seq[-3:]).astype(np.float64)
    thr = 10 * np.log10(0.1)
    db = np.where(vil >= 0.1, 10 * np.log10(np.maximum(vil, 1e-12)), thr - 5)
    with contextlib.redirect_stdout(io.StringIO()):
        ref = pysteps.nowcasts.get_method("steps")(db, model.motion(seq), 3, n_ens_members=2, n_cascade_levels=6,
                                                   precip_thr=thr, kmperpixel=3.0, timestep=10, seed=7,
                                                   num_workers=1)
    expected = encode_vil(np.where(ref >= thr, 10 ** (ref / 10), 0.0))
    got, _ = model.predict(seq[None], 3, members=2, seed=7)
    np.testing.assert_array_equal(got[0], expected)


def test_steps_without_echo_and_with_missing_pixels():
    pytest.importorskip("pysteps")
    from nowcast.baselines import Steps

    dry = np.zeros((1, 7, 32, 32), np.uint8)
    fc, _ = Steps().predict(dry, 4, members=3)
    assert fc.shape == (1, 3, 4, 32, 32) and not fc.any()
    seq = _moving_blob(7)
    seq[:, 40:44, 50:54] = MISSING
    fc, _ = Steps().predict(seq[None], 3, members=2)
    assert int(fc.max()) <= 254                                          # a forecast pixel is never 'missing'


def test_steps_is_scored_as_an_ensemble_beside_the_other_baselines(tiny_store):
    pytest.importorskip("pysteps")
    from nowcast.nowcasters import evaluate_samplers

    res = evaluate_samplers(["steps", "persistence"], tiny_store, windows=2, members=3, progress=False)
    assert res["steps"].attrs["n_members"] == 3 and res["steps"].attrs["nfe"] == 0
    assert np.isfinite(res["steps"].CRPS_fair.values).all()             # the fair CRPS needs ≥ 2 members
