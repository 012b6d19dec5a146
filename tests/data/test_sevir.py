"""Catalog filtering, HDF5 reading and SEVIR-LR on files written by the synthetic generator."""

import pickle

import numpy as np
import pandas as pd
import pytest

from nowcast.data.sevir import (CATALOG_COLUMNS, SEVIR_PROJ, SevirReader, downsample_lr,
                                filter_catalog, parse_minute_offsets, read_catalog)
from nowcast.data.projection import laea_to_lonlat, lonlat_to_laea


@pytest.fixture(scope="module")
def sevir_root(make_sevir):
    return make_sevir(n_events=12, size=48, frames=49, seed=3, missing_fraction=0.3,
                      duplicate_fraction=0.2)


def test_catalog_has_every_column_and_parses_times(sevir_root):
    cat = read_catalog(sevir_root / "CATALOG.csv")
    assert list(cat.columns[:21]) == list(CATALOG_COLUMNS)
    assert pd.api.types.is_datetime64_any_dtype(cat["time_utc"])
    assert (cat["proj"] == SEVIR_PROJ).all()
    offs = parse_minute_offsets(cat["minute_offsets"].iloc[0])
    assert len(offs) == 49 and np.all(np.diff(offs) == 5)


def test_filter_drops_missing_and_duplicated_events(sevir_root):
    cat = read_catalog(sevir_root / "CATALOG.csv")
    dup_ids = set(cat["id"][cat["id"].duplicated()])
    assert dup_ids, "the generator writes duplicated rows"
    missing_ids = set(cat["id"][cat["pct_missing"] > 0])
    assert missing_ids, "the generator writes events with missing pixels"
    kept = filter_catalog(cat)
    assert not (set(kept["id"]) & (dup_ids | missing_ids))
    assert set(kept["id"]) == set(cat["id"]) - dup_ids - missing_ids
    assert list(kept["id"]) == sorted(kept["id"])


def test_filter_by_dates_is_exclusive_at_start_inclusive_at_end():
    cat = pd.DataFrame({"id": ["a", "b", "c"], "img_type": "vil", "pct_missing": 0.0,
                        "time_utc": pd.to_datetime(["2019-01-01 00:00", "2019-01-01 00:01", "2019-06-01 00:00"])})
    got = filter_catalog(cat, start="2019-01-01", end="2019-06-01")
    assert list(got["id"]) == ["b", "c"]


def test_every_default_split_gets_events(sevir_root):
    cat = filter_catalog(read_catalog(sevir_root / "CATALOG.csv"), max_pct_missing=100,
                         drop_duplicates=False)
    t = cat["time_utc"]
    assert (t <= "2019-01-01").any() and ((t > "2019-01-01") & (t <= "2019-06-01")).any() and (t > "2019-06-01").any()


def test_reader_returns_thw_and_checks_ids(sevir_root):
    import h5py

    cat = read_catalog(sevir_root / "CATALOG.csv")
    row = cat.iloc[0]
    reader = SevirReader(sevir_root)
    ev = reader.read_event(row.file_name, int(row.file_index), row.id)
    with h5py.File(sevir_root / "data" / row.file_name) as f:
        raw = f["vil"][int(row.file_index)]
        assert f["vil"].shape[1:] == (48, 48, 49) and f["vil"].dtype == np.uint8
    assert ev.shape == (49, 48, 48) and ev.dtype == np.uint8
    np.testing.assert_array_equal(ev[7], raw[:, :, 7])
    valid = ev[ev != 255]                                   # the catalog's data_min/max exclude missing pixels
    assert (valid.min(), valid.max()) == (row.data_min, row.data_max)
    with pytest.raises(ValueError, match="holds event"):
        reader.read_event(row.file_name, int(row.file_index), "S000")
    # picklable for spawn-started DataLoader workers, with handles dropped
    clone = pickle.loads(pickle.dumps(reader))
    np.testing.assert_array_equal(clone.read_event(row.file_name, int(row.file_index)), ev)
    with pytest.raises(FileNotFoundError):
        reader.read_event("vil/2030/none.h5", 0)


def test_downsample_lr_is_stride_2_and_3x3_max():
    t, h, w = 5, 6, 9
    ev = (np.arange(t * h * w) % 251).reshape(t, h, w).astype(np.uint8)
    lr = downsample_lr(ev)
    assert lr.shape == (3, 2, 3)
    for k, src in enumerate((0, 2, 4)):
        for i in range(2):
            for j in range(3):
                assert lr[k, i, j] == ev[src, 3 * i:3 * i + 3, 3 * j:3 * j + 3].max()
    with pytest.raises(ValueError, match="divisible"):
        downsample_lr(np.zeros((2, 4, 4), np.uint8))


def test_laea_inverse_at_known_points():
    lon, lat = laea_to_lonlat(0.0, 0.0)
    assert lon == pytest.approx(-98.0) and lat == pytest.approx(38.0)
    # 1000 km due north of the centre on the sphere: Δlat = 2·asin(ρ/2R) in degrees along the meridian
    lon, lat = laea_to_lonlat(0.0, 1.0e6)
    assert lon == pytest.approx(-98.0)
    assert lat == pytest.approx(38.0 + np.degrees(2 * np.arcsin(1.0e6 / (2 * 6370997.0))), abs=1e-9)


def test_laea_forward_inverts_the_inverse():
    x = np.array([-1.5e6, 0.0, 2.1e6, 3.0e5])
    y = np.array([-1.0e6, 4.0e5, 0.0, -2.0e5])
    xf, yf = lonlat_to_laea(*laea_to_lonlat(x, y))
    np.testing.assert_allclose(xf, x, atol=1e-6)
    np.testing.assert_allclose(yf, y, atol=1e-6)
