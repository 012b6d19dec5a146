"""Property-based tests (hypothesis): the codec's round trips and missing values, the radar unit
conversions, the contingency counts on both comparisons against a direct numpy count, and the CLIs'
numeric option validation."""

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from nowcast.data.codec import (MISSING, SEVIR_THRESHOLDS, dbz_to_rain, dbz_to_vil, decode_vil,  # noqa: E402
                                encode_vil, rain_to_dbz, vil_to_dbz)
from nowcast.verification import categorical  # noqa: E402

FAST = settings(max_examples=60, deadline=None)
vil_values = st.one_of(st.just(0.0), st.just(np.nan), st.floats(1e-4, 79.0))


@FAST
@given(hnp.arrays(np.float64, st.integers(1, 40), elements=vil_values))
def test_encoding_is_idempotent_and_keeps_missing(v):
    b = encode_vil(v)
    assert b.dtype == np.uint8
    np.testing.assert_array_equal(b == MISSING, np.isnan(v))            # NaN ↔ 255, nothing else
    np.testing.assert_array_equal(encode_vil(decode_vil(b)), np.where(b <= 5, 0, b))
    assert (b[~np.isnan(v)] <= 254).all()


@FAST
@given(hnp.arrays(np.uint8, st.integers(1, 40)))
def test_decoding_then_encoding_returns_every_byte_above_5(b):
    back = encode_vil(decode_vil(b))
    np.testing.assert_array_equal(back, np.where(b <= 5, 0, b))


@FAST
@given(st.floats(1e-3, 500.0), st.floats(10.0, 1000.0), st.floats(1.0, 2.5))
def test_rain_reflectivity_vil_round_trips(rate, a, b):
    dbz = rain_to_dbz(rate, (a, b))
    assert float(dbz_to_rain(dbz, (a, b))) == pytest.approx(rate, rel=1e-9)
    assert float(vil_to_dbz(dbz_to_vil(dbz))) == pytest.approx(float(dbz), rel=1e-9, abs=1e-9)
    assert float(rain_to_dbz(2 * rate, (a, b))) > float(dbz)           # monotonic


fields = hnp.arrays(np.uint8, (2, 2, 8, 8), elements=st.sampled_from([0, 15, 16, 17, 73, 74, 75, 133, 200, 219,
                                                                       254, 255]))


@FAST
@given(fields, fields, st.sampled_from([">=", ">"]))
def test_counts_equal_a_direct_count_on_both_paths(pred, obs, comparison):
    """Values exactly on, just under and just over the thresholds; 255 is missing in either field."""
    direct = {}
    valid = (pred != MISSING) & (obs != MISSING)
    for thr in SEVIR_THRESHOLDS:
        p = (pred >= thr) if comparison == ">=" else (pred > thr)
        o = (obs >= thr) if comparison == ">=" else (obs > thr)
        direct[thr] = [((p & o & valid).sum((0, 2, 3))), ((~p & o & valid).sum((0, 2, 3))),
                       ((p & ~o & valid).sum((0, 2, 3)))]
    for path in (pred, pred.astype(np.float32)):                        # the byte path and the float path
        c = categorical.init_counts(2, scales=(1,), comparison=comparison)
        categorical.accumulate(c, path if path.dtype == np.uint8 else np.where(pred == 255, np.nan, path),
                               obs if path.dtype == np.uint8 else np.where(obs == 255, np.nan, obs).astype(np.float32))
        for ti, thr in enumerate(SEVIR_THRESHOLDS):
            got = [c.hits[ti, 0], c.misses[ti, 0], c.false_alarms[ti, 0]]
            for g, d in zip(got, direct[thr]):
                np.testing.assert_array_equal(g, d)


@FAST
@given(fields, fields)
def test_pooled_counts_equal_numpy_block_maxima(pred, obs):
    c = categorical.init_counts(2, scales=(4,))
    categorical.accumulate(c, pred, obs)

    def pool(a):
        return a.reshape(2, 2, 2, 4, 2, 4).max(axis=(3, 5))             # 255 (missing) wins the max
    pp, po = pool(pred), pool(obs)
    valid = (pp != MISSING) & (po != MISSING)
    for ti, thr in enumerate(SEVIR_THRESHOLDS):
        np.testing.assert_array_equal(c.hits[ti, 0], ((pp >= thr) & (po >= thr) & valid).sum((0, 2, 3)))


@settings(max_examples=40, deadline=None)
@given(st.integers(-10_000, 10_000))
def test_member_counts_are_accepted_exactly_in_range(n):
    from nowcast.forecast import _parser

    if 1 <= n <= 1024:
        assert _parser().parse_args(["e.nc", "--members", str(n)]).members == n
    else:
        with pytest.raises(SystemExit) as e:
            _parser().parse_args(["e.nc", "--members", str(n)])
        assert e.value.code == 2


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6)))
def test_learning_rates_must_be_finite_and_positive(value):
    import math

    from nowcast.train import _parser

    text = str(value)
    try:
        number = float(text)
        ok = math.isfinite(number) and number > 0
    except ValueError:
        ok = False
    if ok:
        assert _parser().parse_args(["--lr", text]).lr == pytest.approx(float(text))
    else:
        with pytest.raises(SystemExit):
            _parser().parse_args(["--lr", text])


_UNITS = ["1", "kg m-2", "mm h-1", "mm/h", "kg m-2 s-1", "mm", "dBZ", "m s-1", "furlongs", ""]


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.data())
def test_a_mutated_event_file_is_read_correctly_or_refused_with_an_event_error(tmp_path_factory, data):
    """Random mutations of a valid event (values, units, coordinates, times, grid mapping): the reader
    returns VIL bytes on the file's grid, or raises its one error type — never anything else."""
    import xarray as xr

    from nowcast.io import EventError, event_dataset, read_event

    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 16)))
    n = data.draw(st.integers(1, 9))
    t = np.datetime64("2023-06-01T12:00") + np.arange(n) * np.timedelta64(data.draw(st.sampled_from(
        [1, 2, 5, 6, 10, 15, 30])), "m")
    ds = event_dataset(rng.integers(0, 255, (n, 12, 16)).astype(np.uint8), t, np.arange(16) * 3000.0,
                       np.arange(12) * 3000.0)
    for _ in range(data.draw(st.integers(0, 3))):
        kind = data.draw(st.sampled_from(["scale", "units", "nan", "inf", "coords", "times", "gm", "drop"]))
        v = ds["vil"].values.astype(np.float64)
        if kind == "scale":
            ds["vil"] = (ds["vil"].dims, v * data.draw(st.floats(-10, 1e3)), ds["vil"].attrs)
        elif kind == "units":
            ds["vil"].attrs["units"] = data.draw(st.sampled_from(_UNITS))
        elif kind in ("nan", "inf"):
            v.flat[data.draw(st.integers(0, v.size - 1))] = np.nan if kind == "nan" else data.draw(
                st.sampled_from([np.inf, -np.inf]))
            ds["vil"] = (ds["vil"].dims, v, ds["vil"].attrs)
        elif kind == "coords" and "x" in ds.coords:
            ds = ds.assign_coords(x=("x", ds.x.values * data.draw(st.floats(-2, 2)),
                                     {"units": data.draw(st.sampled_from(["m", "km", "degrees_east", "ft"]))}))
        elif kind == "times" and n > 1 and "time" in ds.dims:
            ds = ds.isel(time=rng.permutation(n))
        elif kind == "gm" and "crs" in ds:
            ds["crs"].attrs = {"grid_mapping_name": data.draw(st.sampled_from(
                ["lambert_azimuthal_equal_area", "polar_stereographic", "latitude_longitude", "bogus"]))}
        elif kind == "drop":
            ds = ds.drop_vars([v for v in [data.draw(st.sampled_from(["crs", "x", "time"]))] if v in ds.variables])
    path = tmp_path_factory.mktemp("mutated") / "event.nc"
    ds.to_netcdf(path)
    try:
        got = read_event(path, check_time=False)
    except EventError:
        return
    assert got["vil"].dtype == np.uint8 and got["vil"].shape[0] == got.sizes["time"]
    assert isinstance(got, xr.Dataset) and "crs" in got
