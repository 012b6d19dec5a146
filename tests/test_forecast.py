"""``python -m nowcast.forecast``: an event file in, a CF forecast file out; bad events refused cleanly."""

import numpy as np
import pytest
import xarray as xr

from nowcast.data.codec import SEVIR_THRESHOLDS
from nowcast.data.store import open_store
from nowcast.forecast import main
from nowcast.io import event_dataset, event_from_store, write_event


@pytest.fixture(scope="module")
def event_file(tiny_store, tmp_path_factory):
    """A SEVIR-LR event file (10-min frames, 32² pixels of 12 km… as the tiny store has them)."""
    path = tmp_path_factory.mktemp("events") / "event.nc"
    write_event(event_from_store(open_store(tiny_store), 0), path)
    return path


def _run(event, out, *extra):
    return main([str(event), "--model", extra[0], "--solver", "ddim", "--steps", "2", "--out", str(out),
                 "--no-progress", "--device", "cpu", *extra[1:]])


def test_forecast_end_to_end(event_file, tiny_model_file, tmp_path):
    out = tmp_path / "f.nc"
    assert _run(event_file, out, tiny_model_file, "--members", "3", "--seed", "4") == 0
    fc = xr.open_dataset(out)
    ev = xr.open_dataset(event_file)
    assert fc.vil.dims == ("member", "lead_time", "y", "x") and fc.vil.shape == (3, 6, 32, 32)
    assert fc.vil.dtype == np.uint8 and int(fc.vil.max()) <= 254
    assert fc.crs.attrs["grid_mapping_name"] == "lambert_azimuthal_equal_area"
    np.testing.assert_array_equal(fc.x.values, ev.x.values)
    expected = ev.time.values[-1] + np.arange(1, 7) * np.timedelta64(10, "m")
    np.testing.assert_array_equal(fc.valid_time.values, expected)
    p = fc.exceedance_probability.values
    assert p.shape == (len(SEVIR_THRESHOLDS), 6, 32, 32) and np.nanmin(p) >= 0 and np.nanmax(p) <= 1
    # exceedance = fraction of members at or above each threshold, from the members themselves
    np.testing.assert_allclose(p[0], (fc.vil.values >= SEVIR_THRESHOLDS[0]).mean(0), rtol=1e-6)
    np.testing.assert_allclose(fc.ensemble_mean.values, fc.vil.values.mean(0), rtol=1e-5)
    assert fc.attrs["nfe"] == 2 and fc.attrs["steps"] == 2 and fc.attrs["solver"] == "ddim"
    assert fc.attrs["seeds"] == "[4, 5, 6]" and "nowcast_version" in fc.attrs
    # reproducible with the same seed, and member m depends only on its seed (a batch of another size
    # may round a rare pixel to the neighbouring byte)
    out2, out3 = tmp_path / "g.nc", tmp_path / "h.nc"
    assert _run(event_file, out2, tiny_model_file, "--members", "3", "--seed", "4") == 0
    np.testing.assert_array_equal(xr.open_dataset(out2).vil.values, fc.vil.values)
    assert _run(event_file, out3, tiny_model_file, "--members", "1", "--seed", "5") == 0
    diff = np.abs(xr.open_dataset(out3).vil.values[0].astype(int) - fc.vil.values[1].astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_finer_events_are_thinned_and_max_pooled(event_file, tiny_model_file, tmp_path):
    """The same storm at 5 min and on a 3× finer grid (nearest up-sampling, frames in between) gives
    the same forecast: every second frame ending at the last, then 3×3 max pooling; the forecast is
    written on the finer grid, equal to the model's at the pixels whose centres coincide."""
    ev = xr.open_dataset(event_file)
    v = ev.vil.values
    fine = np.repeat(np.repeat(v, 3, axis=1), 3, axis=2)
    frames = np.empty((2 * len(v) - 1, *fine.shape[1:]), np.uint8)
    frames[0::2] = fine
    frames[1::2] = 0                                  # in-between frames are dropped by the thinning
    px = float(np.diff(ev.x.values)[0]) / 3
    x = np.repeat(ev.x.values, 3) + np.tile([-px, 0, px], len(ev.x))
    y = (np.repeat(ev.y.values, 3) + np.tile([-px, 0, px], len(ev.y)))[::-1]     # north-first rows
    times = ev.time.values[0] + np.arange(len(frames)) * np.timedelta64(5, "m")
    path = tmp_path / "fine.nc"
    write_event(event_dataset(frames[:, ::-1], times, x, y), path)
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    assert _run(event_file, a, tiny_model_file, "--members", "2") == 0
    assert _run(path, b, tiny_model_file, "--members", "2") == 0
    fa, fb = xr.open_dataset(a), xr.open_dataset(b)
    assert fb.vil.shape == (2, 6, 96, 96) and fb.y.values[0] > fb.y.values[-1]      # the file's grid and order
    np.testing.assert_array_equal(fb.vil.sel(x=fa.x, y=fa.y).values, fa.vil.values)
    assert "by the maximum" in fb.attrs["preprocessing"] and "one frame in 2 kept" in fb.attrs["preprocessing"]


def _variant(event_file, tmp_path, kind):
    ev = xr.open_dataset(event_file).load()
    path = tmp_path / f"{kind}.nc"
    if kind == "not-netcdf":
        path.write_text("hello")
        return path
    if kind == "no-vil":
        ev = ev.drop_vars("vil")
    elif kind == "few-frames":
        ev = ev.isel(time=slice(0, 4))
    elif kind == "30-min":
        ev = ev.assign_coords(time=ev.time.values[0] + np.arange(ev.sizes["time"]) * np.timedelta64(30, "m"))
    elif kind == "feet":
        ev = ev.assign_coords(x=("x", ev.x.values / 0.3048, {"units": "ft"}))
    elif kind == "irregular-x":
        ev = ev.assign_coords(x=("x", ev.x.values + np.r_[0, 0, 500.0, np.zeros(ev.sizes["x"] - 3)], ev.x.attrs))
    elif kind == "units-lie":                               # rain rates up to 150 mm/h labelled as VIL
        ramp = ev.vil.values * 0 + np.linspace(0, 150, ev.sizes["x"])
        ev["vil"] = (("time", "y", "x"), ramp, {"units": "kg m-2", "grid_mapping": "crs"})
    ev.to_netcdf(path)
    return path


@pytest.mark.parametrize("kind, message", [
    ("missing", "no such file"), ("not-netcdf", "cannot be read as netCDF"), ("no-vil", "no (time, y, x) variable"),
    ("few-frames", "too few frames"), ("30-min", "coarser than the model's 10-min steps"),
    ("feet", "expected m or km"), ("irregular-x", "not regularly spaced"), ("units-lie", "Rain rate in mm/h?")])
def test_bad_events_exit_2_with_one_message_and_no_output(kind, message, event_file, tiny_model_file, tmp_path,
                                                          capsys):
    path = tmp_path / "missing.nc" if kind == "missing" else _variant(event_file, tmp_path, kind)
    out = tmp_path / "out.nc"
    assert _run(path, out, tiny_model_file) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1
    assert not out.exists() and not list(tmp_path.glob(".out.nc*"))


def test_never_overwrites(event_file, tiny_model_file, tmp_path, capsys):
    before = event_file.read_bytes()
    assert _run(event_file, event_file, tiny_model_file) == 2
    assert "is the input event" in capsys.readouterr().err and event_file.read_bytes() == before
    out = tmp_path / "f.nc"
    out.write_text("keep")
    assert _run(event_file, out, tiny_model_file) == 2 and out.read_text() == "keep"
    assert _run(event_file, out, tiny_model_file, "--overwrite") == 0


def test_spanlift_needs_a_solver_for_the_model(event_file, tiny_model_file, tmp_path, capsys):
    argv = [str(event_file), "--model", tiny_model_file, "--out", str(tmp_path / "f.nc"), "--no-progress"]
    assert main(argv) == 2
    assert "no spanlift solver ships" in capsys.readouterr().err
    assert main(argv + ["--solver", "rk45"]) == 2
    assert "unknown solver" in capsys.readouterr().err


def _no_network(monkeypatch):
    import socket
    import urllib.request

    def refuse(*a, **k):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def _nontrivial_png(path, min_colors=6):
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    assert img.ndim == 3 and min(img.shape[:2]) > 200
    colors = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colors) >= min_colors, len(colors)


def test_plot_renders_offline_next_to_the_forecast(event_file, tiny_model_file, tmp_path, monkeypatch):
    pytest.importorskip("cartopy")
    _no_network(monkeypatch)
    out, png = tmp_path / "f.nc", tmp_path / "f.png"
    assert _run(event_file, out, tiny_model_file, "--members", "2", "--plot", str(png)) == 0
    assert out.exists()
    _nontrivial_png(png)


def test_plot_vil_map_and_plain_fallback(event_file, tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nowcast.viz import maps

    _no_network(monkeypatch)
    ev = xr.open_dataset(event_file)
    if maps.has_cartopy():
        ax = maps.plot_vil(ev.vil.isel(time=-1), title="map")
        assert hasattr(ax, "projection")
        feats = maps.offline_features("50m")
        assert {"coastline", "borders", "states"} <= set(feats)
        ax.figure.savefig(tmp_path / "map.png", dpi=60)
        plt.close(ax.figure)
        _nontrivial_png(tmp_path / "map.png")
    monkeypatch.setattr(maps, "has_cartopy", lambda: False)
    ax = maps.plot_vil(ev.vil.isel(time=-1), title="plain")
    assert not hasattr(ax, "projection") and ax.get_xlabel().startswith("x (km")
    ax.figure.savefig(tmp_path / "plain.png", dpi=60)
    plt.close(ax.figure)
    _nontrivial_png(tmp_path / "plain.png", min_colors=4)


def test_sample_event_with_the_shipped_model_and_its_spanlift(tmp_path):
    """The README's main job at two members: shipped default model, default solver (its SpanLift)."""
    from pathlib import Path

    from nowcast.foundation.provenance import file_digest
    from nowcast.models.model_files import resolve_model, resolve_solver

    event = Path(__file__).resolve().parents[1] / "data" / "sample_event.nc"
    out = tmp_path / "forecast.nc"
    assert main([str(event), "--members", "2", "--out", str(out), "--no-progress"]) == 0
    fc = xr.open_dataset(out)
    assert fc.vil.shape == (2, 6, 128, 128) and fc.vil.dtype == np.uint8
    assert fc.attrs["solver"].startswith("spanlift") and fc.attrs["steps"] == 5 and fc.attrs["nfe"] == 5
    assert fc.attrs["model_sha256"] == file_digest(resolve_model("default"))
    assert resolve_solver("default").is_file()
    p = fc.exceedance_probability.values
    assert np.nanmin(p) >= 0 and np.nanmax(p) <= 1 and p[0].max() > 0      # the squall line is forecast
    ev = xr.open_dataset(event)
    np.testing.assert_array_equal(fc.x.values, ev.x.values)


def test_the_forecast_keeps_the_events_projection(event_file, tiny_model_file, tmp_path):
    """An event on another projection (here a polar stereographic grid mapping, as FMI writes): the forecast
    file carries that grid mapping, not SEVIR's, next to the same x/y."""
    ev = xr.open_dataset(event_file).load()
    polar = {"grid_mapping_name": "polar_stereographic", "straight_vertical_longitude_from_pole": 25.0,
             "latitude_of_projection_origin": 90.0, "standard_parallel": 60.0, "false_easting": 0.0,
             "false_northing": 0.0}
    ev["crs"].attrs = polar
    path = tmp_path / "polar.nc"
    ev.to_netcdf(path)
    out = tmp_path / "f.nc"
    assert _run(path, out, tiny_model_file, "--members", "1") == 0
    fc = xr.open_dataset(out)
    assert {k: fc.crs.attrs[k] for k in polar} == polar
    np.testing.assert_array_equal(fc.x.values, ev.x.values)
