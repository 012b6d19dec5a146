"""``python -m nowcast.data`` end to end, in-process."""

import pytest

from nowcast.data.__main__ import main
from nowcast.data.store import open_store


def test_synth_build_inspect(tmp_path, capsys):
    root, store = tmp_path / "sevir", tmp_path / "s.zarr"
    assert main(["synth", str(root), "--events", "6", "--size", "24", "--frames", "13", "--quiet"]) == 0
    assert "wrote 6 events" in capsys.readouterr().out
    assert main(["build", str(root), str(store), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "events in the store" in out and "written now" in out
    assert open_store(str(store)).sizes["time"] == 7
    assert main(["build", str(root), str(store), "--quiet"]) == 0   # a finished build is a no-op
    assert "0 written now" in capsys.readouterr().out
    assert main(["inspect", str(store)]) == 0
    assert "splits: train" in capsys.readouterr().out
    out_nc = tmp_path / "event.nc"
    assert main(["export-event", str(store), "0", str(out_nc)]) == 0
    from nowcast.io import read_event
    assert read_event(out_nc).sizes["time"] == 7
    assert main(["export-event", str(store), "0", str(out_nc)]) == 2          # never overwrites
    assert "exists" in capsys.readouterr().err
    assert main(["export-event", str(store), "S999", str(tmp_path / "x.nc")]) == 2
    assert not (tmp_path / "x.nc").exists()


@pytest.mark.parametrize("argv,message", [
    (["build", "/nonexistent/sevir", "/tmp/x.zarr"], "CATALOG.csv not found"),
    (["synth", "/tmp/never", "--size", "50"], "divisible by 3"),
    (["inspect", "/nonexistent.zarr"], "error"),
])
def test_bad_input_exits_2_with_one_message(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unknown_option_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["build", "a", "b", "--frobnicate"])
    assert e.value.code == 2


@pytest.mark.parametrize("units", ["kg m-2", "mm/h", "dBZ"])
def test_export_in_radar_units_reads_back_to_the_same_bytes(units, tmp_path):
    """An event written as a radar service would (VIL, rain rate or reflectivity) reads back to the
    store's bytes, to the codec's rounding (bytes 1–5 decode to no VIL at all)."""
    import numpy as np
    import xarray as xr

    from nowcast.io import read_event

    root, store = tmp_path / "sevir", tmp_path / "s.zarr"
    assert main(["synth", str(root), "--events", "6", "--size", "24", "--frames", "13", "--quiet"]) == 0
    assert main(["build", str(root), str(store), "--quiet", "--no-lr"]) == 0
    raw, conv = tmp_path / "raw.nc", tmp_path / "conv.nc"
    assert main(["export-event", str(store), "0", str(raw)]) == 0
    assert main(["export-event", str(store), "0", str(conv), "--units", units]) == 0
    want = xr.open_dataset(raw).vil.values
    got = read_event(conv, task="sevir", check_time=False)["vil"].values
    np.testing.assert_array_equal(got, np.where(want <= 5, 0, want))
    ds = xr.open_dataset(conv)
    var = next(v for v in ds.data_vars if v != "crs")
    assert ds[var].attrs["units"] == {"kg m-2": "kg m-2", "mm/h": "mm h-1", "dBZ": "dBZ"}[units]
