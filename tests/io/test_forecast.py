"""Forecast files: probabilities and means by hand, valid times, readable by xarray and netCDF4."""

import netCDF4
import numpy as np
import xarray as xr

from nowcast.io import forecast_dataset, write_netcdf


def test_forecast_file_contents(tmp_path):
    rng = np.random.default_rng(0)
    m = rng.integers(0, 255, size=(4, 3, 5, 6)).astype(np.uint8)
    m[0, 0, 0, 0] = 255                     # one missing member value
    m[:, 1, 1, 1] = 255                     # a pixel missing in every member
    ds = forecast_dataset(m, "2019-06-01T12:00", 10, np.arange(6) * 3e3, np.arange(5) * 3e3,
                          provenance={"model": "default", "solver": "spanlift", "steps": 5,
                                      "seeds": [1, 2, 3, 4]})
    path = write_netcdf(ds, tmp_path / "forecast.nc")
    got = xr.open_dataset(path)
    assert got["vil"].dims == ("member", "lead_time", "y", "x") and got["vil"].dtype == np.uint8
    assert str(got["valid_time"].values[0])[:16] == "2019-06-01T12:10"
    # exceedance probability of threshold 74 at a pixel, by hand
    vals = m[1:, 0, 0, 0]                   # member 0 is missing there
    p74 = got["exceedance_probability"].sel(threshold=74).values[0, 0, 0]
    assert np.isclose(p74, np.mean(vals >= 74))
    assert np.isclose(got["ensemble_mean"].values[0, 0, 0], vals.mean())
    assert np.isnan(got["ensemble_mean"].values[1, 1, 1])
    p = got["exceedance_probability"].values
    assert np.nanmin(p) >= 0 and np.nanmax(p) <= 1
    assert got.attrs["solver"] == "spanlift" and got.attrs["seeds"] == "[1, 2, 3, 4]"
    with netCDF4.Dataset(path) as nc:
        assert nc["vil"].shape == (4, 3, 5, 6) and nc["crs"].grid_mapping_name == "lambert_azimuthal_equal_area"
