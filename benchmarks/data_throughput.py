"""Training-style random access: windows per second from the zarr store vs direct SEVIR HDF5.

The baseline reads the HDF5 files the way the Earthformer/PreDiff loader does — the whole
49-frame event per window (``vil[file_index]``), then downsamples to SEVIR-LR and slices the
window — while the store reads one SEVIR-LR chunk. Both run on the same synthetic files, in random
order through a torch DataLoader with 0 and 2 workers. Writes
``benchmarks/results/data_throughput.{json,md}`` with the command, commit and machine.

    python benchmarks/data_throughput.py [--events 64] [--windows 600] [--source DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import ROOT, header, provenance, write_results
from nowcast.data.sevir import SevirReader, downsample_lr, filter_catalog, read_catalog
from nowcast.data.store import BuildConfig, build_store
from nowcast.data.synthetic import SyntheticConfig, write_synthetic_sevir
from nowcast.data.windows import WindowDataset
from nowcast.foundation.tasks import get_task
from nowcast.foundation.cli import count

class DirectHDF5Windows(torch.utils.data.Dataset):
    """The Earthformer/PreDiff access pattern: read the full event, then cut the window."""

    def __init__(self, source: str, task: str = "sevirlr"):
        self.rows = filter_catalog(read_catalog(Path(source) / "CATALOG.csv"))
        self.reader = SevirReader(source)
        self.task = get_task(task)
        self.starts = np.arange(0, 25 - self.task.seq_len + 1, self.task.stride)

    def __len__(self) -> int:
        return len(self.rows) * len(self.starts)

    def __getitem__(self, i: int) -> dict:
        row = self.rows.iloc[i // len(self.starts)]
        start = int(self.starts[i % len(self.starts)])
        event = self.reader.read_event(row.file_name, int(row.file_index))   # all 49 frames
        win = downsample_lr(event)[start:start + self.task.seq_len]
        return {"x": torch.from_numpy(win.astype(np.float32) / 255.0)[:, None]}


def windows_per_second(ds, n: int, workers: int, seed: int = 0) -> float:
    """Random-order windows/s through a DataLoader (batch 1), after a short warm-up."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(ds), (n + 8,), generator=g).tolist()
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, idx), batch_size=1,
                                         num_workers=workers, persistent_workers=False)
    it = iter(loader)
    for _ in range(8):
        next(it)
    t0 = time.perf_counter()
    for _ in range(n):
        next(it)
    return n / (time.perf_counter() - t0)


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def main(argv=None) -> int:
    """Run the benchmark; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=count(1), default=64, help="synthetic events (384×384×49) to generate")
    p.add_argument("--windows", type=count(1), default=600, help="windows timed per configuration")
    p.add_argument("--source", default=None, help="existing SEVIR root to use instead")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        src = args.source or str(Path(tmp) / "sevir")
        if args.source is None:
            write_synthetic_sevir(src, SyntheticConfig(n_events=args.events, size=384, seed=0),
                                  workers=os.cpu_count() or 1)
        store = str(Path(tmp) / "lr.zarr")
        t0 = time.perf_counter()
        build_store(src, store, BuildConfig(lr=True))
        build_s = time.perf_counter() - t0
        zarr_ds, h5_ds = WindowDataset(store, split=None), DirectHDF5Windows(src)
        results = {}
        for workers in (0, 2):
            results[f"zarr_workers{workers}"] = windows_per_second(zarr_ds, args.windows, workers)
            results[f"hdf5_workers{workers}"] = windows_per_second(h5_ds, args.windows, workers)
        sizes = {"hdf5_bytes": _du(Path(src) / "data"), "zarr_bytes": _du(Path(store))}
        n_events = len(zarr_ds.events)
    meta = provenance(" ".join(["python benchmarks/data_throughput.py"] + list(sys.argv[1:] if argv is None else argv)))
    meta.update({"events": n_events, "windows_timed": args.windows, "store_build_seconds": round(build_s, 1)})
    out = {**meta, "windows_per_second": {k: round(v, 1) for k, v in results.items()}, **sizes}
    md = header("Data throughput: random SEVIR-LR windows per second", meta) + [
          f"- {n_events} synthetic events (384×384×49), {args.windows} random "
          f"windows per cell, batch 1; store build {build_s:.1f} s", "",
          "| reader | 0 workers | 2 workers |", "|---|---|---|",
          f"| zarr store (SEVIR-LR chunk per event) | {results['zarr_workers0']:.1f} | {results['zarr_workers2']:.1f} |",
          f"| direct HDF5, whole event per window (Earthformer/PreDiff) | {results['hdf5_workers0']:.1f} | "
          f"{results['hdf5_workers2']:.1f} |",
          f"| ratio zarr / HDF5 | {results['zarr_workers0'] / results['hdf5_workers0']:.1f}× | "
          f"{results['zarr_workers2'] / results['hdf5_workers2']:.1f}× |", "",
          f"Bytes on disk: HDF5 {sizes['hdf5_bytes'] / 1e6:.1f} MB (full resolution, uncompressed), "
          f"zarr {sizes['zarr_bytes'] / 1e6:.1f} MB (SEVIR-LR, compressed).", ""]
    write_results(args.out, "data_throughput", out, md)
    return 0


if __name__ == "__main__":
    from nowcast.foundation.cli import run_main

    raise SystemExit(run_main(main))
