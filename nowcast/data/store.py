"""Build a chunked zarr store ``(event, time, y, x)`` from a SEVIR root (real or synthetic).

The store holds ``vil`` (uint8 bytes, one event per chunk, compressed), per-event variables along
``event`` (``id``, ``time_utc``, corners, ``event_type``, ``pct_missing``) and a ``done`` flag, with
attributes for the projection, the VIL encoding, the source and the task preset. Building is
resumable: the skeleton (metadata) is written first, then each event's chunk and, after it, its
``done`` flag; a rerun skips events already done, and the store is marked ``complete`` (and its
metadata consolidated) only once every event is written. The split event-id lists are written
next to the store (``<name>.splits/{train,val,test}.txt`` beside ``<name>.zarr``).

Events are written by dask tasks (the local threaded scheduler by default, or a
``dask.distributed`` cluster given its address); the output may be any fsspec URL.
"""

from __future__ import annotations

import hashlib
import json
import time as _time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np

from ..foundation.tasks import SEVIR_DOMAIN_M
from .codec import MISSING, SEVIR_THRESHOLDS
from .sevir import SEVIR_PROJ, SevirReader, downsample_lr, filter_catalog, read_catalog

__all__ = ["BuildConfig", "BuildSummary", "build_store", "open_store", "splits_dir", "write_splits",
           "DEFAULT_SPLITS"]

#: Default split boundaries (Earthformer): train ≤ 2019-01-01 < val ≤ 2019-06-01 < test.
DEFAULT_SPLITS = ("2019-01-01", "2019-06-01")


@dataclass(frozen=True)
class BuildConfig:
    """What goes into a store.

    Attributes
    ----------
    lr : bool
        SEVIR-LR (frames 0, 2, …, 3×3 max pooling) instead of full resolution.
    start, end : str, optional
        Keep events with ``start < time_utc <= end``.
    limit : int, optional
        At most this many events (the first by id after filtering).
    max_pct_missing : float
        Keep events with at most this much missing data (default: complete events only).
    splits : tuple of str
        The two boundaries between train/val and val/test.
    """

    lr: bool = True
    start: Optional[str] = None
    end: Optional[str] = None
    limit: Optional[int] = None
    max_pct_missing: float = 0.0
    splits: tuple = DEFAULT_SPLITS


@dataclass
class BuildSummary:
    """What a build did."""

    events: int = 0
    written: int = 0
    skipped_done: int = 0
    seconds: float = 0.0
    bytes: int = 0
    dropped: dict = field(default_factory=dict)

    def __str__(self) -> str:
        drops = ", ".join(f"{v} {k}" for k, v in self.dropped.items()) or "none"
        return (f"{self.events} events in the store: {self.written} written now, {self.skipped_done} "
                f"already done; catalog rows dropped: {drops}; {self.bytes / 1e6:.1f} MB of VIL written "
                f"(uncompressed); "
                f"{self.seconds:.1f} s")


def _select(catalog, config: BuildConfig):
    cat_vil = catalog[catalog["img_type"] == "vil"]
    dup = int(cat_vil["id"].duplicated(keep=False).sum())
    rows = filter_catalog(catalog, "vil", config.max_pct_missing, config.start, config.end)
    no_dup = filter_catalog(catalog, "vil", 1e9, None, None)
    dropped = {"duplicated": dup,
               "missing data": int((no_dup["pct_missing"] > config.max_pct_missing).sum())}
    if config.limit is not None:
        rows = rows.iloc[:config.limit]
    return rows.reset_index(drop=True), dropped


def _fingerprint(rows, config: BuildConfig) -> str:
    h = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode())
    h.update("\n".join(rows["id"]).encode())
    return h.hexdigest()[:16]


def _skeleton(rows, config: BuildConfig, shape: tuple, source: str, fingerprint: str):
    import dask.array as da
    import xarray as xr

    n = len(rows)
    t, h, w = shape
    ds = xr.Dataset(
        {"vil": (("event", "time", "y", "x"), da.zeros((n, t, h, w), dtype=np.uint8, chunks=(1, t, h, w)),
                 {"long_name": "vertically integrated liquid, SEVIR encoding", "units": "1",
                  "missing_value_byte": MISSING,
                  "encoding_rule": "0 if X<=5; (X-2)/90.66 if X<=18; exp((X-83.9)/38.9) kg m-2"}),
         "done": (("event",), da.zeros(n, dtype=np.uint8, chunks=1)),
         "id": (("event",), rows["id"].astype(str).to_numpy()),
         "time_utc": (("event",), rows["time_utc"].to_numpy().astype("datetime64[ns]")),
         "event_type": (("event",), rows["event_type"].fillna("").astype(str).to_numpy()),
         "pct_missing": (("event",), rows["pct_missing"].to_numpy(np.float64))},
        attrs={"proj": SEVIR_PROJ, "source": source, "task": "sevirlr" if config.lr else "sevir",
               "frame_minutes": 10 if config.lr else 5, "thresholds": list(SEVIR_THRESHOLDS),
               "pixel_m": SEVIR_DOMAIN_M / w, "build_config": json.dumps(asdict(config)),
               "fingerprint": fingerprint, "complete": 0})
    for c in ("llcrnrlat", "llcrnrlon", "urcrnrlat", "urcrnrlon"):
        ds[c] = (("event",), rows[c].to_numpy(np.float64))
    return ds


def _event_shape(reader: SevirReader, row, lr: bool) -> tuple:
    ev = reader.read_event(row.file_name, int(row.file_index), row.id)
    return (downsample_lr(ev) if lr else ev).shape


def _write_event(store, reader: SevirReader, row, index: int, lr: bool) -> int:
    import xarray as xr

    ev = reader.read_event(row.file_name, int(row.file_index), row.id)
    if lr:
        ev = downsample_lr(ev)
    region = {"event": slice(index, index + 1)}
    xr.Dataset({"vil": (("event", "time", "y", "x"), ev[None])}).to_zarr(store, region=region,
                                                                         consolidated=False)
    xr.Dataset({"done": (("event",), np.ones(1, np.uint8))}).to_zarr(store, region=region,
                                                                      consolidated=False)
    return int(ev.nbytes)


def splits_dir(store: str) -> str:
    """Directory of a store's split lists, next to it: ``<store minus .zarr>.splits``."""
    base = str(store).rstrip("/")
    return (base[:-5] if base.endswith(".zarr") else base) + ".splits"


def write_splits(store: str, ids, times, boundaries: tuple) -> dict:
    """Write ``{train,val,test}.txt`` (one event id per line) into :func:`splits_dir`."""
    import fsspec
    import pandas as pd

    b0, b1 = pd.Timestamp(boundaries[0]), pd.Timestamp(boundaries[1])
    t = pd.to_datetime(times)
    masks = {"train": t <= b0, "val": (t > b0) & (t <= b1), "test": t > b1}
    out = {}
    for name, m in masks.items():
        sel = [str(i) for i, keep in zip(ids, m) if keep]
        with fsspec.open(f"{splits_dir(store)}/{name}.txt", "w", auto_mkdir=True) as f:
            f.write("\n".join(sel) + ("\n" if sel else ""))
        out[name] = len(sel)
    return out


def _exists(store: str) -> bool:
    """Whether something non-empty is at ``store``."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(store)
    return fs.exists(path) and (not fs.isdir(path) or bool(fs.ls(path)))


def _open_or_create(store: str, rows, config: BuildConfig, reader, source: str) -> np.ndarray:
    """The ``done`` flags of an existing store of the same events and options, or of a new skeleton.

    Raises
    ------
    ValueError
        When ``store`` exists but is not a nowcast store, or was built from other events or options
        (nothing is overwritten).
    """
    import xarray as xr
    import zarr

    fp = _fingerprint(rows, config)
    existing = None
    if _exists(store):
        try:
            existing = xr.open_zarr(store, consolidated=False)
        except (FileNotFoundError, KeyError, ValueError, zarr.errors.GroupNotFoundError):
            # never overwrite something that is not one of our stores: nothing may be lost
            raise ValueError(f"{store} exists and is not a nowcast store (or its skeleton was cut "
                             "short); remove it or choose another output path") from None
    if existing is not None and existing.attrs.get("fingerprint") != fp:
        raise ValueError(f"{store} exists but was built from other events or options; "
                         "remove it or choose another output path")
    if existing is not None:
        return existing["done"].values.astype(bool)
    shape = _event_shape(reader, rows.iloc[0], config.lr)
    _skeleton(rows, config, shape, source, fp).to_zarr(store, mode="w", compute=False,
                                                       consolidated=False, zarr_format=2)
    return np.zeros(len(rows), bool)


def _write_events(store: str, reader, rows, todo: list, lr: bool, summary: "BuildSummary", progress: bool,
                  on_event) -> None:
    """Write the events ``todo`` (16 at a time through dask), counting them in ``summary``."""
    import dask

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=summary.events, initial=summary.skipped_done, desc="events", unit="event")
    for start in range(0, len(todo), 16):
        batch = todo[start:start + 16]
        sizes = dask.compute(*[dask.delayed(_write_event)(store, reader, rows.iloc[i], i, lr) for i in batch])
        for i, nbytes in zip(batch, sizes):
            summary.written += 1
            summary.bytes += nbytes
            if bar is not None:
                bar.update(1)
            if on_event is not None:
                on_event(i)
    if bar is not None:
        bar.close()


def build_store(source: str, store: str, config: BuildConfig = BuildConfig(), *,
                scheduler: Optional[str] = None, progress: bool = False,
                on_event: Optional[Callable[[int], None]] = None) -> BuildSummary:
    """Build (or finish building) a zarr store from a SEVIR root.

    Parameters
    ----------
    source : str
        SEVIR root (``CATALOG.csv`` and ``data/``); local path or fsspec URL.
    store : str
        Output zarr path or fsspec URL.
    config : BuildConfig
        Selection and preset.
    scheduler : str, optional
        Address of a ``dask.distributed`` scheduler; default: dask's local threads.
    progress : bool
        Show a progress bar.
    on_event : callable, optional
        Called with each event index after it is written (tests use it to simulate a kill).

    Returns
    -------
    BuildSummary

    Raises
    ------
    ValueError
        If no event survives the filters, or the store exists but was built from other events
        or options.
    """
    import zarr

    t0 = _time.perf_counter()
    source, store = str(source), str(store)
    rows, dropped = _select(read_catalog(f"{source.rstrip('/')}/CATALOG.csv"), config)
    if rows.empty:
        raise ValueError(f"no event of {source} passes the filters ({asdict(config)})")
    reader = SevirReader(source)
    done = _open_or_create(store, rows, config, reader, source)
    todo = [i for i in range(len(rows)) if not done[i]]
    summary = BuildSummary(events=len(rows), skipped_done=int(done.sum()), dropped=dropped)
    client = None
    if scheduler:
        from dask.distributed import Client
        client = Client(scheduler)
    try:
        _write_events(store, reader, rows, todo, config.lr, summary, progress, on_event)
    finally:
        if client is not None:
            client.close()
    group = zarr.open_group(store, mode="r+")
    if not np.asarray(group["done"][:]).all():  # pragma: no cover - defensive
        raise RuntimeError(f"{store}: some events were not written; run the build again")
    write_splits(store, rows["id"], rows["time_utc"], config.splits)
    group.attrs["complete"] = 1
    zarr.consolidate_metadata(store)
    summary.seconds = _time.perf_counter() - t0
    return summary


def open_store(store: str):
    """Open a complete store lazily (dask-backed); refuses an unfinished one.

    Raises
    ------
    ValueError
        If the store was not completely built.
    """
    import xarray as xr
    import zarr

    try:
        complete = zarr.open_group(store, mode="r").attrs.get("complete")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise ValueError(f"{store}: no zarr store there; build one with `python -m nowcast.data build`") from None
    if not complete:
        raise ValueError(f"{store} is not complete (an interrupted build?): run the build again")
    return xr.open_zarr(store, consolidated=True)
