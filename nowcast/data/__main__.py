"""``python -m nowcast.data {synth, build, inspect, export-event}``: make, convert and look at SEVIR data.

Examples
--------
::

    python -m nowcast.data synth data/synthetic --events 500 --size 384
    python -m nowcast.data build data/synthetic stores/sevirlr.zarr --lr
    python -m nowcast.data inspect stores/sevirlr.zarr
    python -m nowcast.data export-event stores/sevirlr.zarr S800012 event.nc

Bad input (missing catalog, unknown option, an existing store built from other events) gives one
clear message and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ..foundation.cli import HelpFormatter, count, fraction, seed

__all__ = ["main"]


def _synth(args) -> int:
    from .synthetic import SyntheticConfig, write_synthetic_sevir

    if args.size % 3:
        raise ValueError(f"--size must be divisible by 3 (SEVIR-LR pools 3×3), got {args.size}")
    t0 = time.perf_counter()
    cat = write_synthetic_sevir(args.root, SyntheticConfig(
        n_events=args.events, size=args.size, frames=args.frames, seed=args.seed,
        missing_fraction=args.missing_fraction, duplicate_fraction=args.duplicate_fraction, texture=args.texture),
        progress=not args.quiet, workers=args.workers)
    nbytes = sum(p.stat().st_size for p in Path(args.root, "data").rglob("*.h5"))
    print(f"wrote {cat['id'].nunique()} events ({len(cat)} catalog rows, "
          f"{int(cat['id'].duplicated().sum())} duplicated, {int((cat['pct_missing'] > 0).sum())} with "
          f"missing pixels) to {args.root}: {nbytes / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s")
    return 0


def _build(args) -> int:
    from .store import BuildConfig, build_store

    if not Path(args.source, "CATALOG.csv").exists() and "://" not in args.source:
        raise FileNotFoundError(f"{args.source}/CATALOG.csv not found: SOURCE must be a SEVIR root "
                                "(CATALOG.csv and data/); make one with `python -m nowcast.data synth`")
    cfg = BuildConfig(lr=args.lr, start=args.start, end=args.end, limit=args.limit,
                      splits=(args.train_end, args.val_end))
    summary = build_store(args.source, args.store, cfg, scheduler=args.scheduler, progress=not args.quiet)
    print(f"{args.store}: {summary}")
    return 0


def _inspect(args) -> int:
    import numpy as np

    from .store import open_store
    from .windows import read_split

    ds = open_store(args.store)
    print(ds)
    splits = {s: len(read_split(args.store, s)) for s in ("train", "val", "test")}
    print("splits: " + ", ".join(f"{k} {v}" for k, v in splits.items()))
    n = min(ds.sizes["event"], args.sample)
    vil = ds["vil"][:n].values
    valid = vil[vil != 255]
    if valid.size:
        q = np.percentile(valid, [50, 90, 99, 99.9])
        print(f"bytes of the first {n} events: median {q[0]:.0f}, p90 {q[1]:.0f}, p99 {q[2]:.0f}, "
              f"p99.9 {q[3]:.0f}, max {valid.max()}")
    return 0


def _export(args) -> int:
    import numpy as np

    from ..io import event_from_store, write_event
    from .store import open_store

    ds = open_store(args.store)
    ids = [str(i) for i in ds["id"].values]
    if args.event in ids:
        index = ids.index(args.event)
    elif args.event.isdigit() and int(args.event) < len(ids):
        index = int(args.event)
    else:
        raise ValueError(f"event {args.event!r} is neither an id nor an index of {args.store} "
                         f"({len(ids)} events, e.g. {ids[:3]})")
    event = event_from_store(ds, index)
    if args.units != "vil":
        from ..io import from_vil_bytes

        values, attrs = from_vil_bytes(event["vil"].values, args.units)
        event = event.drop_vars("vil")
        name = {"kg m-2": "vil", "mm/h": "rain_rate", "dBZ": "reflectivity"}[args.units]
        event[name] = (("time", "y", "x"), values, {**attrs, "grid_mapping": "crs"})
        event[name].encoding["_FillValue"] = np.float32(np.nan)
    path = write_event(event, args.out, overwrite=args.overwrite)
    print(f"wrote event {ids[index]} ({ds.sizes['time']} frames, {args.units}) to {path}")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nowcast.data", description=__doc__.split("\n")[0],
                                formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("synth", help="write a synthetic SEVIR-format set (HDF5 + CATALOG.csv)",
                       formatter_class=HelpFormatter)
    s.add_argument("root", help="output SEVIR root")
    s.add_argument("--events", type=count(1), default=64, help="number of distinct events")
    s.add_argument("--size", type=count(3), default=384, help="grid side in pixels (divisible by 3)")
    s.add_argument("--frames", type=count(1), default=49, help="frames per event (5 min apart)")
    s.add_argument("--seed", type=seed, default=0, help="master seed")
    s.add_argument("--missing-fraction", type=fraction, default=0.1, help="events with missing pixels")
    s.add_argument("--duplicate-fraction", type=fraction, default=0.05, help="ids with a duplicated row")
    s.add_argument("--texture", choices=("radar", "cells"), default="radar",
                   help="small-scale structure: radar (evolving log-normal cascade, peaked cores, splitting "
                        "cells) or cells (smooth cells, the first version)")
    s.add_argument("--workers", type=count(1), default=os.cpu_count() or 1, help="generating processes")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_synth)
    b = sub.add_parser("build", help="build (or resume building) a zarr store from a SEVIR root",
                       formatter_class=HelpFormatter)
    b.add_argument("source", help="SEVIR root (CATALOG.csv and data/); path or fsspec URL")
    b.add_argument("store", help="output zarr store; path or fsspec URL")
    b.add_argument("--lr", action=argparse.BooleanOptionalAction, default=True,
                   help="SEVIR-LR: every 2nd frame and 3×3 max pooling")
    b.add_argument("--start", default=None, help="keep events after this time (exclusive)")
    b.add_argument("--end", default=None, help="keep events up to this time (inclusive)")
    b.add_argument("--limit", type=count(1), default=None, help="at most this many events")
    b.add_argument("--train-end", default="2019-01-01", help="last time of the train split")
    b.add_argument("--val-end", default="2019-06-01", help="last time of the val split")
    b.add_argument("--scheduler", default=None, help="dask.distributed scheduler address")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_build)
    i = sub.add_parser("inspect", help="summarise a store", formatter_class=HelpFormatter)
    i.add_argument("store", help="zarr store")
    i.add_argument("--sample", type=count(1), default=16, help="events to compute byte statistics on")
    i.set_defaults(func=_inspect)
    e = sub.add_parser("export-event", help="write one event of a store as a CF netCDF event file",
                       formatter_class=HelpFormatter)
    e.add_argument("store", help="zarr store")
    e.add_argument("event", help="event id or index")
    e.add_argument("out", help="output event.nc (never overwritten unless --overwrite)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    e.add_argument("--units", choices=("vil", "kg m-2", "mm/h", "dBZ"), default="vil",
                   help="write the frames as SEVIR VIL bytes, VIL in kg m-2, rain rate in mm/h or reflectivity in "
                        "dBZ (through the VIL proxy of a 4.5 km column and Marshall-Palmer), as a radar service "
                        "would; missing pixels become NaN (default: vil)")
    e.set_defaults(func=_export)
    return p


def main(argv: list | None = None) -> int:
    """Entry point; returns the exit status (2 for bad input)."""
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as e:  # FileNotFoundError, FileExistsError are OSErrors
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from ..foundation.cli import run_main

    raise SystemExit(run_main(main))
