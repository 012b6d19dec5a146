"""Radar files as national services write them, forecast end to end or refused with a clear message.

Each file is built here: rain from moving storms evaluated at the file's own pixel centres, in its
own projection, pixel size, time step and units. The model is the untrained tiny nowcaster (32²
pixels of 12 km, 10-min steps): what is tested is the way in and out — grids, units, masks,
times — not skill.
"""

import numpy as np
import pytest
import xarray as xr

from nowcast.data.codec import MISSING, rain_to_dbz
from nowcast.forecast import main

T0 = np.datetime64("2023-06-01T12:00", "ns")


def _rain(xkm, ykm, minutes):
    """mm/h of three storms moving east-north-east at 36 km/h (x, y in km about the domain centre)."""
    out = np.zeros(np.broadcast(xkm, ykm).shape)
    for cx, cy, peak, size in ((-80, -40, 60.0, 25.0), (40, 60, 20.0, 40.0), (120, -100, 8.0, 60.0)):
        dx = xkm - (cx + 0.55 * minutes)
        dy = ykm - (cy + 0.25 * minutes)
        out += peak * np.exp(-(dx ** 2 + dy ** 2) / (2 * size ** 2))
    return np.where(out < 0.05, 0.0, out)


def _frames(x, y, step_min, n, centre=(0.0, 0.0), scale=1e-3):
    """``(n, len(y), len(x))`` rain at pixel centres ``x``/``y`` (metres by default), ending at T0."""
    xx, yy = np.meshgrid((np.asarray(x) - centre[0]) * scale, (np.asarray(y) - centre[1]) * scale)
    mins = (np.arange(n) - (n - 1)) * step_min
    return np.stack([_rain(xx, yy, m) for m in mins]), T0 + mins.astype("timedelta64[m]")


def _projected(x, y, values, times, gm, name="precip", attrs=None):
    return xr.Dataset({name: (("time", "y", "x"), values.astype(np.float32), {**(attrs or {}), "grid_mapping": "crs"}),
                       "crs": ((), np.int32(0), gm)},
                      coords={"time": ("time", times), "y": ("y", y, {"standard_name": "projection_y_coordinate",
                                                                          "units": "m"}),
                              "x": ("x", x, {"standard_name": "projection_x_coordinate", "units": "m"})},
                      attrs={"Conventions": "CF-1.8"})


RATE = {"units": "mm h-1", "standard_name": "rainfall_rate", "long_name": "rain rate"}
LAEA_EU = {"grid_mapping_name": "lambert_azimuthal_equal_area", "latitude_of_projection_origin": 52.0,
           "longitude_of_projection_origin": 10.0, "false_easting": 4321000.0, "false_northing": 3210000.0,
           "semi_major_axis": 6378137.0, "inverse_flattening": 298.257222101}


def _laea_1km_circle(tmp_path):
    """A 700×700 km national composite: 1 km LAEA (ETRS89-like), 5-min rain rates, NaN outside 340 km."""
    x = 4321000.0 - 350e3 + (np.arange(700) + 0.5) * 1e3
    y = 3210000.0 + 350e3 - (np.arange(700) + 0.5) * 1e3              # north-first rows, as most composites
    v, t = _frames(x, y, 5, 13, centre=(4321000.0, 3210000.0))
    r = np.hypot(*np.meshgrid(x - 4321000.0, y - 3210000.0))
    v[:, r > 340e3] = np.nan
    ds = _projected(x, y, v, t, LAEA_EU, attrs=RATE)
    ds["precip"].encoding["_FillValue"] = -999.0
    return ds


def _polar_dbz(tmp_path):
    """Finnish-style polar stereographic reflectivity, 2 km pixels over 500 km, 5-min steps."""
    gm = {"grid_mapping_name": "polar_stereographic", "straight_vertical_longitude_from_pole": 25.0,
          "latitude_of_projection_origin": 90.0, "standard_parallel": 60.0, "false_easting": 0.0,
          "false_northing": 0.0, "semi_major_axis": 6378137.0, "inverse_flattening": 298.257223563}
    x = 300e3 + (np.arange(250) + 0.5) * 2e3
    y = -3.4e6 + (np.arange(250) + 0.5) * 2e3
    v, t = _frames(x, y, 5, 13, centre=(550e3, -3.15e6))
    dbz = np.where(v > 0, rain_to_dbz(np.where(v > 0, v, 1.0)), -32.0)
    return _projected(x, y, dbz, t, gm, name="DBZH",
                      attrs={"units": "dBZ", "standard_name": "equivalent_reflectivity_factor"})


def _latlon_2min(tmp_path):
    """0.01° latitude/longitude rain rates every 2 min (a MeteoSwiss/OPERA-style lat/lon product)."""
    lon = 5.0 + (np.arange(450) + 0.5) * 0.01
    lat = 48.5 - (np.arange(330) + 0.5) * 0.01
    xkm, ykm = (lon - 7.25) * 111.2 * np.cos(np.radians(46.85)), (lat - 46.85) * 111.2
    v, t = _frames(xkm, ykm, 2, 31, scale=1.0)
    return xr.Dataset({"rr": (("time", "lat", "lon"), v.astype(np.float32), {"units": "mm/h", "long_name": "rain"})},
                      coords={"time": ("time", t), "lat": ("lat", lat, {"units": "degrees_north"}),
                              "lon": ("lon", lon, {"units": "degrees_east"})})


def _utm_500m_6min(tmp_path):
    """500 m pixels over 256 km (smaller than the model's 384 km), 6-min steps, transverse Mercator."""
    gm = {"grid_mapping_name": "transverse_mercator", "longitude_of_central_meridian": 9.0,
          "latitude_of_projection_origin": 0.0, "scale_factor_at_central_meridian": 0.9996,
          "false_easting": 500000.0, "false_northing": 0.0, "semi_major_axis": 6378137.0,
          "inverse_flattening": 298.257223563}
    x = 372e3 + (np.arange(512) + 0.5) * 500.0
    y = 5.1e6 + (np.arange(512) + 0.5) * 500.0
    v, t = _frames(x, y, 6, 11, centre=(500e3, 5.228e6))
    return _projected(x, y, v, t, gm, attrs=RATE)


def _accumulation(tmp_path):
    """Precipitation per 5 min in mm, 2 km LAEA over 400 km."""
    x = 4.2e6 + (np.arange(200) + 0.5) * 2e3
    y = 3.0e6 + (np.arange(200) + 0.5) * 2e3
    v, t = _frames(x, y, 5, 13, centre=(4.4e6, 3.2e6))
    return _projected(x, y, v * 5 / 60, t, LAEA_EU, name="acc",
                      attrs={"units": "mm", "standard_name": "precipitation_amount"})


FORMS = {"1-km LAEA mm/h 700 km, NaN outside a circle": _laea_1km_circle,
         "polar stereographic dBZ at 5 min": _polar_dbz,
         "0.01° lat/lon mm/h at 2 min": _latlon_2min,
         "500 m, 256 km, 6-min steps": _utm_500m_6min,
         "accumulation in mm per 5 min": _accumulation}


def _cf_attributes(path):
    """The CF rules a forecast file must follow, checked one by one on the raw netCDF (no CF checker
    installs from the package index without the udunits C library)."""
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        assert nc.getncattr("Conventions").startswith("CF-")
        gm_names = {nc[v].getncattr("grid_mapping") for v in nc.variables if "grid_mapping" in nc[v].ncattrs()}
        assert gm_names == {"crs"} and "grid_mapping_name" in nc["crs"].ncattrs()
        for name, var in nc.variables.items():
            if name == "crs" or name == "member":
                continue
            attrs = var.ncattrs()
            if var.ndim >= 2:                                   # data variables: units and a grid mapping
                assert "units" in attrs and "grid_mapping" in attrs, name
            if name in nc.dimensions and name not in ("member", "threshold"):   # coordinate variables
                assert "units" in attrs, name
        assert nc["valid_time"].getncattr("standard_name") == "time"
        assert nc["lead_time"].getncattr("standard_name") == "forecast_period"
        assert "since" in nc["valid_time"].getncattr("units") and nc["lead_time"].getncattr("units") in (
            "seconds", "minutes", "hours")
        for v in nc.variables.values():                            # the coordinates attribute names real variables
            if "coordinates" in v.ncattrs():
                assert all(c in nc.variables for c in v.getncattr("coordinates").split())


def _forecast(path, out, model, *extra):
    return main([str(path), "--model", str(model), "--solver", "ddim", "--steps", "2", "--members", "2",
                 "--out", str(out), "--no-progress", "--device", "cpu", *extra])


@pytest.mark.parametrize("form", list(FORMS))
def test_a_national_radar_file_is_forecast_on_its_own_grid_and_units(form, tiny_model_file, tmp_path):
    from pysteps.postprocessing.ensemblestats import excprob

    src = FORMS[form](tmp_path)
    path = tmp_path / "radar.nc"
    src.to_netcdf(path)
    out = tmp_path / "forecast.nc"
    assert _forecast(path, out, tiny_model_file) == 0
    fc = xr.open_dataset(out)
    var = [v for v in src.data_vars if v != "crs"][0]
    ydim, xdim = src[var].dims[1:]
    # the file's variable, units, grid mapping and coordinates
    assert fc.attrs["forecast_variable"] == var and fc[var].dims == ("member", "lead_time", ydim, xdim)
    assert fc[var].attrs["units"] == src[var].attrs["units"]
    np.testing.assert_array_equal(fc[xdim].values, src[xdim].values)
    np.testing.assert_array_equal(fc[ydim].values, src[ydim].values)
    assert fc[xdim].attrs["units"] == src[xdim].attrs["units"]
    gm = fc["crs"].attrs
    assert gm["grid_mapping_name"] == (src["crs"].attrs["grid_mapping_name"] if "crs" in src else "latitude_longitude")
    assert fc[var].attrs["grid_mapping"] == "crs" and fc.ensemble_mean.attrs["units"] == src[var].attrs["units"]
    # valid times every 10 min after the last observed frame
    np.testing.assert_array_equal(fc.valid_time.values, src.time.values[-1] + np.arange(1, 7) * np.timedelta64(10, "m"))
    # no data stays no data: NaN exactly outside the last frame's coverage
    values = fc[var].values
    np.testing.assert_array_equal(np.isnan(values[0, 0]), np.isnan(src[var].values[-1]))
    inside = values[:, :, ~np.isnan(src[var].values[-1])]
    assert np.isfinite(inside).all()
    assert inside.min() >= (-32.0 if var == "DBZH" else 0.0)
    # exceedance probabilities in the file's units, as pysteps computes them from the members
    thr = fc.threshold.values
    assert fc.threshold.attrs["units"] == src[var].attrs["units"]
    for i, t in enumerate(thr):
        np.testing.assert_allclose(fc.exceedance_probability.values[i, 2], excprob(values[:, 2], t, ignore_nan=True),
                                   atol=1e-6)
    _cf_attributes(out)
    # what was done is said
    pre = fc.attrs["preprocessing"]
    if "700 km" in form:
        assert "overlapping tiles" in pre and "by the maximum" in pre and "one frame in 2 kept" in pre
    if "256 km" in form:
        assert "padded with no data" in pre and "Lagrangian" in pre
    if "lat/lon" in form:
        assert "local Lambert azimuthal equal-area" in pre and "one frame in 5 kept" in pre
    if "accumulation" in form:
        assert "10 minutes" in fc[var].attrs["cell_methods"]


def test_an_odim_hdf5_sequence_goes_through_the_pysteps_importer(tiny_model_file, tmp_path):
    """Seven ODIM HDF5 composites (DBZH bytes, gain 0.5, offset −32) read by pysteps' odim_hdf5 importer."""
    import h5py
    import pyproj

    proj = "+proj=laea +lat_0=55 +lon_0=10 +x_0=0 +y_0=0 +ellps=WGS84 +units=m"
    tr = pyproj.Transformer.from_crs(pyproj.CRS(proj), "EPSG:4326", always_xy=True)
    n, px = 200, 2000.0
    x = -200e3 + (np.arange(n) + 0.5) * px
    y = 200e3 - (np.arange(n) + 0.5) * px                          # ODIM rows run from the top
    v, times = _frames(x, y, 10, 7)
    corners = {k: tr.transform(*xy) for k, xy in {"LL": (-200e3, -200e3), "UR": (200e3, 200e3),
                                                  "UL": (-200e3, 200e3), "LR": (200e3, -200e3)}.items()}
    for k, t in enumerate(times):
        dbz = np.where(v[k] > 0, rain_to_dbz(np.where(v[k] > 0, v[k], 1.0)), -32.0)
        raw = np.where(v[k] > 0, np.clip(np.rint((dbz + 32.0) / 0.5), 1, 254), 0).astype(np.uint8)
        raw[:10, :10] = 255                                         # nodata corner
        stamp = str(t.astype("datetime64[m]")).replace("-", "").replace("T", "").replace(":", "")
        with h5py.File(tmp_path / f"comp_{stamp}.h5", "w") as f:
            f.attrs["Conventions"] = np.bytes_("ODIM_H5/V2_2")
            what = f.create_group("what")
            what.attrs.update({"object": np.bytes_("COMP"), "date": np.bytes_(stamp[:8]),
                               "time": np.bytes_(stamp[8:] + "00")})
            where = f.create_group("where")
            where.attrs.update({"projdef": np.bytes_(proj), "xsize": n, "ysize": n, "xscale": px, "yscale": px})
            for c, (lon, lat) in corners.items():
                where.attrs[f"{c}_lon"], where.attrs[f"{c}_lat"] = lon, lat
            d = f.create_group("dataset1/data1")
            d.create_dataset("data", data=raw)
            d.create_group("what").attrs.update({"quantity": np.bytes_("DBZH"), "gain": 0.5, "offset": -32.0,
                                                 "nodata": 255.0, "undetect": 0.0})
    out = tmp_path / "forecast.nc"
    assert _forecast(f"{tmp_path}/comp_*.h5", out, tiny_model_file, "--importer", "odim_hdf5",
                     "--importer-option", "qty=DBZH") == 0
    fc = xr.open_dataset(out)
    assert fc.attrs["forecast_variable"] == "precip" and fc.precip.attrs["units"] == "dBZ"
    assert fc.precip.shape == (2, 6, n, n)
    np.testing.assert_allclose(fc.x.values, x, atol=0.01)          # corners went through lon/lat and back
    np.testing.assert_allclose(fc.y.values, y, atol=0.01)
    assert pyproj.CRS.from_wkt(fc.crs.attrs["crs_wkt"]).equals(pyproj.CRS(proj))
    assert np.isnan(fc.precip.values[:, :, :10, :10]).all() and np.isfinite(fc.precip.values[:, :, 10:, 10:]).all()
    np.testing.assert_array_equal(fc.valid_time.values[0], times[-1] + np.timedelta64(10, "m"))


@pytest.mark.parametrize("kind, message", [
    ("30-min steps", "frames are 30 min apart, coarser than the model's 10-min steps"),
    ("units lie", "Rain rate in mm/h?"),
    ("50 minutes only", "the model needs 60 minutes of radar"),
    ("degrees with a projection", "coordinates in degrees but the grid mapping is a projection"),
])
def test_files_that_cannot_be_forecast_are_refused_with_the_reason(kind, message, tiny_model_file, tmp_path, capsys):
    x = 4.2e6 + (np.arange(64) + 0.5) * 6e3
    y = 3.0e6 + (np.arange(64) + 0.5) * 6e3
    v, t = _frames(x, y, 30 if kind == "30-min steps" else 10, 6 if kind == "50 minutes only" else 7,
                   centre=(4.39e6, 3.19e6))
    attrs = {"units": "kg m-2"} if kind == "units lie" else RATE
    ds = _projected(x, y, v * (3 if kind == "units lie" else 1), t, LAEA_EU, attrs=attrs)
    if kind == "degrees with a projection":
        ds = ds.assign_coords(x=("x", np.linspace(5, 10, 64), {"units": "degrees_east"}),
                              y=("y", np.linspace(45, 48, 64), {"units": "degrees_north"}))
    path, out = tmp_path / "radar.nc", tmp_path / "forecast.nc"
    ds.to_netcdf(path)
    assert _forecast(path, out, tiny_model_file) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1
    assert not out.exists()


def test_vil_converted_to_mm_per_hour_forecasts_the_same_fields(tiny_model_file, tmp_path):
    """Rain rate in, rain rate out: the same storm as VIL bytes and as mm/h (the codec's conversion)
    gives the same forecast, to the codec's rounding (bytes 1–5 are clear air, written as 0)."""
    from nowcast.io.quantities import from_vil_bytes, to_vil_bytes

    x = -1.2e6 + (np.arange(32) + 0.5) * 12e3
    y = 0.3e6 + (np.arange(32) + 0.5) * 12e3
    v, t = _frames(x, y, 10, 7, centre=(-1.0e6, 0.5e6))
    from nowcast.data.projection import CF_GRID_MAPPING

    vil = to_vil_bytes(v, "rain_rate")                              # bytes with no 1–5 (clear air is 0)
    ds_vil = _projected(x, y, vil, t, dict(CF_GRID_MAPPING), name="vil", attrs={"units": "1"})
    ds_vil["vil"] = ds_vil["vil"].astype(np.uint8)
    rate, attrs = from_vil_bytes(vil, "mm/h")
    ds_mm = _projected(x, y, rate, t, dict(CF_GRID_MAPPING), attrs=attrs)
    for name, ds in (("vil", ds_vil), ("mm", ds_mm)):
        ds.to_netcdf(tmp_path / f"{name}.nc")
        assert _forecast(tmp_path / f"{name}.nc", tmp_path / f"f-{name}.nc", tiny_model_file) == 0
    a, b = xr.open_dataset(tmp_path / "f-vil.nc"), xr.open_dataset(tmp_path / "f-mm.nc")
    assert b.precip.attrs["units"] == "mm h-1" and a.vil.dtype == np.uint8
    back = to_vil_bytes(b.precip.values, "rain_rate")
    np.testing.assert_array_equal(back, np.where(a.vil.values <= 5, 0, a.vil.values))


def test_a_large_domain_is_tiled_without_seams(tiny_model_file, tmp_path):
    """A 696 km domain (58² model pixels) is forecast in overlapping 32² tiles: each tile's interior
    equals the forecast of that tile alone, and across the tile borders the field jumps no more than
    it does elsewhere."""
    from nowcast.data.projection import CF_GRID_MAPPING

    n, px = 58, 12e3
    x = -1.2e6 + (np.arange(n) + 0.5) * px
    y = 0.3e6 + (np.arange(n) + 0.5) * px
    v, t = _frames(x, y, 10, 7, centre=(x.mean(), y.mean()))
    from nowcast.io.quantities import to_vil_bytes

    big = _projected(x, y, to_vil_bytes(v, "rain_rate"), t, dict(CF_GRID_MAPPING), name="vil", attrs={"units": "1"})
    big["vil"] = big["vil"].astype(np.uint8)
    big.to_netcdf(tmp_path / "big.nc")
    big.isel(x=slice(0, 32), y=slice(0, 32)).to_netcdf(tmp_path / "corner.nc")
    assert _forecast(tmp_path / "big.nc", tmp_path / "f-big.nc", tiny_model_file) == 0
    assert _forecast(tmp_path / "corner.nc", tmp_path / "f-corner.nc", tiny_model_file) == 0
    fb, fc = xr.open_dataset(tmp_path / "f-big.nc"), xr.open_dataset(tmp_path / "f-corner.nc")
    assert "4 overlapping tiles" in fb.attrs["preprocessing"] or "9 overlapping tiles" in fb.attrs["preprocessing"]
    from nowcast.io.regrid import tile_origins

    starts = tile_origins(n, 32, 8)
    first_other = starts[1]                                       # the corner tile alone covers [0, first_other)
    np.testing.assert_array_equal(fb.vil.values[:, :, :first_other, :first_other],
                                  fc.vil.values[:, :, :first_other, :first_other])
    f = fb.vil.values.astype(float)
    jumps = np.abs(np.diff(f, axis=-1))                          # between columns i and i+1
    borders = sorted({s for s in starts[1:]} | {s + 32 - 1 for s in starts[:-1]})
    at_border = jumps[..., [b - 1 for b in borders] + borders].max()
    elsewhere = np.delete(jumps, [b - 1 for b in borders] + borders, axis=-1).max()
    assert at_border <= elsewhere
    assert int(fb.vil.max()) <= 254 and (fb.vil.values != MISSING).all()


def test_the_worked_example_composite_of_the_docs_reads_as_documented(tmp_path):
    """docs/own-radar-data.md: the example composite (1-km Albers mm/h, 5 min, NaN outside 230 km) is
    read, and brought to the 3-km model grid in 4 tiles of 128² from 10-min frames, as the page says."""
    import importlib.util
    from pathlib import Path

    from nowcast.io import conform_event, read_event

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("example", root / "docs" / "examples" / "national_composite.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.main(str(root / "data" / "sample_event.nc"), str(tmp_path / "composite.nc"))
    ev = read_event(tmp_path / "composite.nc", check_time=False)
    assert ev.attrs["source_quantity"] == "rain_rate" and ev.vil.shape == (13, 500, 500)
    assert (ev.vil.values[:, 0, 0] == MISSING).all() and (ev.vil.values[:, 250, 250] != MISSING).all()
    c = conform_event(ev, 10, 3000.0, (128, 128), 7, name="composite.nc")
    assert "; ".join(c.notes) == ("aggregated to 3000 m pixels by the maximum of the file's pixels; domain of "
                                  "167×167 model pixels forecast in 4 overlapping tiles of 128×128; one frame in 2 "
                                  "kept (5 → 10 min), ending at the last one")
