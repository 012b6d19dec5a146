"""Event files: round trip from a store, and one clear error per kind of bad file."""

import netCDF4
import numpy as np
import pandas as pd
import pytest

from nowcast.data.codec import decode_vil
from nowcast.data.store import BuildConfig, build_store, open_store
from nowcast.data.synthetic import SyntheticConfig, write_synthetic_sevir
from nowcast.io import EventError, event_dataset, event_from_store, read_event, write_event


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("ev")
    write_synthetic_sevir(root / "sevir", SyntheticConfig(n_events=4, size=24, frames=49, seed=8,
                                                          missing_fraction=0, duplicate_fraction=0))
    build_store(str(root / "sevir"), str(root / "s.zarr"), BuildConfig(lr=True))
    return open_store(str(root / "s.zarr"))


def test_round_trip_store_to_file_to_reader(store, tmp_path):
    ev = event_from_store(store, 1)
    path = write_event(ev, tmp_path / "event.nc")
    got = read_event(path, task="sevirlr")
    np.testing.assert_array_equal(got["vil"].values, store["vil"][1].values)
    assert got["vil"].dtype == np.uint8 and got["vil"].dims == ("time", "y", "x")
    assert np.all(np.diff(got["time"].values) == np.timedelta64(10, "m"))
    assert got["time"].values[12] == store["time_utc"].values[1]   # the middle frame is time_utc
    # plain netCDF4 opens it too, with the CF grid mapping
    with netCDF4.Dataset(path) as nc:
        assert nc["vil"].grid_mapping == "crs"
        assert nc["crs"].grid_mapping_name == "lambert_azimuthal_equal_area"
        assert nc["vil"].dtype == np.uint8
    with pytest.raises(FileExistsError):
        write_event(ev, path)


def test_physical_units_are_encoded_through_the_codec(store, tmp_path):
    ev = event_from_store(store, 0)
    kg = ev.copy()
    kg["vil"] = (("time", "y", "x"), decode_vil(ev["vil"].values), {"units": "kg m-2", "grid_mapping": "crs"})
    path = write_event(kg, tmp_path / "kg.nc")
    np.testing.assert_array_equal(read_event(path)["vil"].values,
                                  np.where(ev["vil"].values <= 5, 0, ev["vil"].values))


def _good(store):
    return event_from_store(store, 2)


def _bad_files(store, tmp):
    """(name, writer, expected message fragment) for every kind of bad event file."""
    good = _good(store)
    cases = {}

    def save(name, ds):
        p = tmp / f"{name}.nc"
        ds.to_netcdf(p, engine="netcdf4")
        return p

    cases["missing_file"] = (tmp / "nope.nc", "no such file")
    txt = tmp / "text.nc"
    txt.write_text("this is not netCDF")
    cases["not_netcdf"] = (txt, "cannot be read as netCDF")
    full = save("full", good)
    trunc = tmp / "truncated.nc"
    trunc.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    cases["truncated"] = (trunc, "cannot be read as netCDF")
    cases["no_radar_variable"] = (save("novil", good.drop_vars("vil")), "no (time, y, x) variable")
    unitless = good.copy()
    unitless["vil"] = (("time", "y", "x"), good["vil"].values * 0.5, {"grid_mapping": "crs"})
    cases["unitless_floats"] = (save("unitless", unitless.rename({"vil": "precip"})), "cannot tell what")
    lying = good.copy()       # rain rates (up to 150 mm/h) labelled as VIL
    lying["vil"] = (("time", "y", "x"), good["vil"].values / 254.0 * 150.0, {"units": "kg m-2", "grid_mapping": "crs"})
    cases["units_lie"] = (save("lying", lying), "Rain rate in mm/h?")
    conflict = good.copy()
    conflict["vil"] = (("time", "y", "x"), good["vil"].values / 10.0,
                       {"units": "kg m-2", "standard_name": "rainfall_rate", "grid_mapping": "crs"})
    cases["rate_with_amount_units"] = (save("conflict", conflict), "correct the units")
    cases["wrong_dims"] = (save("dims", good.transpose("y", "x", "time")), "dimensions")
    few = good.isel(time=slice(0, 4))
    cases["too_few_frames"] = (save("few", few), "too few frames")
    t = good["time"].values.copy()
    t[5:] = t[5:] + np.timedelta64(3, "m")
    cases["irregular_step"] = (save("irregular", good.assign_coords(time=t)), "irregular time step")
    t5 = good["time"].values[0] + np.arange(good.sizes["time"]) * np.timedelta64(5, "m")
    cases["wrong_step"] = (save("step5", good.assign_coords(time=t5)), "time step is 5 min")
    allmiss = good.copy()
    allmiss["vil"] = allmiss["vil"] * 0 + 255
    cases["all_missing"] = (save("allmissing", allmiss), "every pixel is missing")
    out_of_range = good.copy()
    out_of_range["vil"] = out_of_range["vil"].astype(np.int16) + 300
    cases["out_of_range"] = (save("range", out_of_range), "not SEVIR bytes")
    nocrs = good.drop_vars("crs")
    cases["no_grid_mapping"] = (save("nocrs", nocrs), "grid mapping")
    notime = good.assign_coords(time=np.arange(good.sizes["time"]))
    cases["no_time"] = (save("notime", notime), "time coordinate")
    xrev = good.assign_coords(x=np.r_[good["x"].values[:3], good["x"].values[:-3]])
    cases["bad_x"] = (save("badx", xrev), "not strictly monotonic")
    neg = good.copy()
    neg["vil"] = (("time", "y", "x"), -decode_vil(good["vil"].values) - 1, {"units": "kg m-2", "grid_mapping": "crs"})
    cases["negative_kg"] = (save("negkg", neg), "outside the plausible")
    return cases


def test_every_kind_of_bad_file_gets_its_own_clear_error(store, tmp_path):
    cases = _bad_files(store, tmp_path)
    assert len(cases) >= 10
    for name, (path, fragment) in cases.items():
        with pytest.raises(EventError) as e:
            read_event(path, task="sevirlr")
        assert fragment in str(e.value), f"{name}: {e.value}"
        assert str(path.name) in str(e.value)


def test_event_dataset_builds_cf_coordinates():
    ds = event_dataset(np.zeros((2, 3, 4), np.uint8), pd.date_range("2019-06-01", periods=2, freq="10min"),
                       np.arange(4) * 3000.0, np.arange(3) * 3000.0)
    assert ds["x"].attrs["standard_name"] == "projection_x_coordinate" and ds["crs"].attrs["earth_radius"] == 6370997.0


@pytest.mark.parametrize("form", ["mm/h", "kg m-2 s-1", "dBZ", "mm per 10 min", "bytes with NaN"])
def test_radar_quantities_are_found_and_no_data_stays_no_data(form, store, tmp_path):
    """Rain rate, flux, reflectivity and accumulation files, told apart by their units / standard name,
    give the bytes of the codec's conversions; NaN (outside coverage) becomes 255, never 0."""
    from nowcast.data.codec import dbz_to_vil, encode_vil, rain_to_dbz

    good = _good(store)
    rate = np.random.default_rng(0).gamma(0.5, 6.0, size=good["vil"].shape)
    rate[:, :3, :] = np.nan                                  # outside the radar's coverage
    attrs = {"grid_mapping": "crs"}
    if form == "mm/h":
        values, attrs = rate, {**attrs, "units": "mm h-1", "standard_name": "rainfall_rate"}
    elif form == "kg m-2 s-1":
        values, attrs = rate / 3600.0, {**attrs, "units": "kg m-2 s-1"}
    elif form == "dBZ":
        values, attrs = rain_to_dbz(rate), {**attrs, "units": "dBZ"}
        values = np.where(np.isneginf(values), -32.0, values)   # 'no echo' as radar files write it
    elif form == "mm per 10 min":
        values, attrs = rate / 6.0, {**attrs, "units": "mm", "standard_name": "precipitation_amount"}
    else:
        values = np.where(np.isnan(rate), np.nan, good["vil"].values.astype(np.float32))
        attrs = {**attrs, "units": "1"}
    name = "vil" if form == "bytes with NaN" else "precip"    # dimensionless floats: only 'vil' says bytes
    ds = good.drop_vars("vil")
    ds[name] = (("time", "y", "x"), values.astype(np.float32), attrs)
    ds[name].encoding["_FillValue"] = -9999.0
    path = tmp_path / "radar.nc"
    ds.to_netcdf(path)
    got = read_event(path)
    vil = dbz_to_vil(rain_to_dbz(rate))
    # SEVIR's clear air: VIL below byte 6 (4/90.66 kg m-2) decodes to 0 and is written as byte 0
    expect = good["vil"].values.copy() if form == "bytes with NaN" else encode_vil(np.where(vil < 4 / 90.66, 0, vil))
    expect[:, :3, :] = 255
    np.testing.assert_array_equal(got["vil"].values, expect)
    assert got.attrs["source_variable"] == name
