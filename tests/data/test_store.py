"""The zarr store builder: contents, splits, resumability."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from tests.killed import run_until_killed
from nowcast.data.sevir import SevirReader, downsample_lr, filter_catalog, read_catalog
from nowcast.data.store import BuildConfig, build_store, open_store


@pytest.fixture(scope="module")
def source(make_sevir):
    return make_sevir(n_events=14, size=24, frames=13, seed=4, missing_fraction=0.2,
                      duplicate_fraction=0.1)


@pytest.mark.parametrize("lr", [True, False])
def test_store_holds_every_selected_event_exactly(source, tmp_path, lr):
    out = str(tmp_path / "s.zarr")
    summary = build_store(str(source), out, BuildConfig(lr=lr))
    rows = filter_catalog(read_catalog(source / "CATALOG.csv"))
    ds = open_store(out)
    assert summary.events == len(rows) == ds.sizes["event"] and summary.written == len(rows)
    assert list(ds["id"].values) == list(rows["id"])
    assert ds["vil"].dtype == np.uint8 and ds["vil"].chunks[0] == (1,) * len(rows)
    reader = SevirReader(source)
    for i, row in rows.iterrows():
        ev = reader.read_event(row.file_name, int(row.file_index))
        np.testing.assert_array_equal(ds["vil"][i].values, downsample_lr(ev) if lr else ev)
    assert ds.attrs["task"] == ("sevirlr" if lr else "sevir")
    assert summary.dropped["duplicated"] > 0 and summary.dropped["missing data"] > 0


def test_split_lists_follow_event_times(source, tmp_path):
    out = tmp_path / "s.zarr"
    build_store(str(source), str(out))
    ds = open_store(str(out))
    times = pd.to_datetime(ds["time_utc"].values)
    ids = ds["id"].values
    read = {n: (tmp_path / "s.splits" / f"{n}.txt").read_text().split() for n in ("train", "val", "test")}
    assert sorted(sum(read.values(), [])) == sorted(ids)
    for i, t in zip(ids, times):
        want = "train" if t <= pd.Timestamp("2019-01-01") else "val" if t <= pd.Timestamp("2019-06-01") else "test"
        assert i in read[want]


_KILLED_BUILD = """
import os, signal, sys
from nowcast.data.store import BuildConfig, build_store
written = []
def on_event(i):                      # SIGKILL once three events are in the store
    written.append(i)
    if len(written) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
build_store(sys.argv[1], sys.argv[2], BuildConfig(lr=True), on_event=on_event)
"""


def test_a_build_killed_mid_way_resumes_to_the_same_store(source, tmp_path):
    """A real process is SIGKILLed after three events; the same build started again skips them and
    ends with a store identical to an uninterrupted build."""
    ref = str(tmp_path / "ref.zarr")
    build_store(str(source), ref, BuildConfig(lr=True))
    out = str(tmp_path / "resumed.zarr")
    run_until_killed(_KILLED_BUILD, source, out)
    with pytest.raises(ValueError, match="not complete"):
        open_store(out)
    summary = build_store(str(source), out, BuildConfig(lr=True))
    assert summary.skipped_done >= 3 and summary.written + summary.skipped_done == summary.events
    a, b = open_store(ref), open_store(out)
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
    assert a.attrs["fingerprint"] == b.attrs["fingerprint"]


def test_options_and_clear_errors(source, tmp_path):
    out = str(tmp_path / "s.zarr")
    build_store(str(source), out, BuildConfig(limit=3, end="2019-01-01"))
    ds = open_store(out)
    assert ds.sizes["event"] == 3 and (pd.to_datetime(ds["time_utc"].values) <= "2019-01-01").all()
    with pytest.raises(ValueError, match="other events or options"):
        build_store(str(source), out, BuildConfig(limit=4))
    with pytest.raises(ValueError, match="no event"):
        build_store(str(source), str(tmp_path / "none.zarr"), BuildConfig(start="2030-01-01"))


def test_build_on_a_dask_distributed_cluster(source, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        out = str(tmp_path / "cluster.zarr")
        summary = build_store(str(source), out, BuildConfig(lr=True), scheduler=cluster.scheduler_address)
    ref = str(tmp_path / "local.zarr")
    build_store(str(source), ref, BuildConfig(lr=True))
    assert summary.written == summary.events
    xr.testing.assert_identical(open_store(out).drop_attrs(), open_store(ref).drop_attrs())


def test_store_on_an_fsspec_url(make_sevir):
    from nowcast.data.windows import WindowDataset

    src = make_sevir(n_events=4, size=24, frames=25, seed=6, missing_fraction=0, duplicate_fraction=0)
    url = "memory://nowcast-tests/fsspec.zarr"
    build_store(str(src), url, BuildConfig(lr=True))
    ds = open_store(url)
    windows = WindowDataset(url, split=None)
    assert len(windows) == ds.sizes["event"] == 4
    np.testing.assert_allclose(windows[2]["x"][:, 0].numpy() * 255, ds["vil"][2].values, atol=1e-4)


def test_build_never_overwrites_a_foreign_directory(source, tmp_path):
    target = tmp_path / "precious"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a nowcast store"):
        build_store(str(source), str(target))
    assert (target / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    build_store(str(source), str(empty), BuildConfig(limit=2))   # an empty directory is fine
    assert open_store(str(empty)).sizes["event"] == 2
