"""Reading SEVIR: the catalog, VIL events from HDF5, and SEVIR-LR downsampling.

Layout of a SEVIR root (as on the public bucket)::

    ROOT/CATALOG.csv
    ROOT/data/vil/2019/SEVIR_VIL_STORMEVENTS_2019_0101_0630.h5   (datasets id (N,), vil (N,384,384,49))

``file_name`` in the catalog is relative to ``ROOT/data``. VIL files hold uint8 ``N×H×W×T``
("NHWT"); :meth:`SevirReader.read_event` returns ``(T, H, W)``. HDF5 files are opened lazily, once
per process, so DataLoader workers work with both fork and spawn.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["SEVIR_PROJ", "CATALOG_COLUMNS", "read_catalog", "parse_minute_offsets",
           "filter_catalog", "SevirReader", "downsample_lr", "LR_TIME_STRIDE", "LR_POOL"]

#: Projection of every SEVIR patch (Lambert azimuthal equal-area on a sphere).
SEVIR_PROJ = "+proj=laea +lat_0=38 +lon_0=-98 +units=m +a=6370997.0 +ellps=sphere"
#: The 21 columns of SEVIR's CATALOG.csv, in order.
CATALOG_COLUMNS = ("id", "file_name", "file_index", "img_type", "time_utc", "minute_offsets",
                   "episode_id", "event_id", "event_type", "llcrnrlat", "llcrnrlon", "urcrnrlat",
                   "urcrnrlon", "proj", "size_x", "size_y", "height_m", "width_m", "data_min",
                   "data_max", "pct_missing")
#: SEVIR-LR (PreDiff): every second frame and 3×3 max pooling.
LR_TIME_STRIDE, LR_POOL = 2, 3


def read_catalog(path: str | os.PathLike):
    """Read a SEVIR ``CATALOG.csv`` (all columns; ``time_utc`` parsed as UTC-naive datetimes).

    Parameters
    ----------
    path : path-like or fsspec URL
        The catalog file.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    ValueError
        If a required column is missing.
    """
    import pandas as pd

    try:
        cat = pd.read_csv(path, low_memory=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a SEVIR catalog (a CSV file with the columns "
                         f"{list(CATALOG_COLUMNS)}): {str(err).splitlines()[0]}") from None
    missing = [c for c in CATALOG_COLUMNS if c not in cat.columns]
    if missing:
        raise ValueError(f"{path} is not a SEVIR catalog: missing columns {missing}")
    try:
        cat["time_utc"] = pd.to_datetime(cat["time_utc"])
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: the time_utc column holds something that is not a time: "
                         f"{str(err).splitlines()[0]}") from None
    return cat


def parse_minute_offsets(value: str) -> np.ndarray:
    """Frame offsets in minutes from ``time_utc`` (the catalog's colon-separated string)."""
    return np.array([int(v) for v in str(value).split(":")], dtype=np.int64)


def filter_catalog(cat, img_type: str = "vil", max_pct_missing: float = 0.0,
                   start=None, end=None, drop_duplicates: bool = True):
    """Select events as the Earthformer/PreDiff loaders do.

    Parameters
    ----------
    cat : pandas.DataFrame
        The catalog.
    img_type : str
        Image type to keep (``vil``).
    max_pct_missing : float
        Keep rows with ``pct_missing <= max_pct_missing`` (default: only complete events).
    start, end : datetime-like, optional
        Keep ``start < time_utc <= end`` (exclusive start, inclusive end).
    drop_duplicates : bool
        Drop every id that has more than one row of this type (a known SEVIR catalog bug).

    Returns
    -------
    pandas.DataFrame
        Filtered rows sorted by id, with a fresh index.
    """
    import pandas as pd

    rows = cat[cat["img_type"] == img_type]
    if drop_duplicates:
        counts = rows["id"].value_counts()
        rows = rows[rows["id"].map(counts) == 1]
    rows = rows[rows["pct_missing"] <= max_pct_missing]
    if start is not None:
        rows = rows[rows["time_utc"] > pd.Timestamp(start)]
    if end is not None:
        rows = rows[rows["time_utc"] <= pd.Timestamp(end)]
    return rows.sort_values("id", kind="stable").reset_index(drop=True)


def _open_h5(path: str):
    import h5py

    if "://" in path:
        import fsspec

        return h5py.File(fsspec.open(path, "rb").open(), "r")
    return h5py.File(path, "r")


class SevirReader:
    """Lazily opened SEVIR HDF5 files (one handle per file per process).

    Parameters
    ----------
    root : path-like or fsspec URL
        SEVIR root holding ``CATALOG.csv`` and ``data/``.
    img_type : str
        Dataset to read (``vil``).
    """

    def __init__(self, root: str | os.PathLike, img_type: str = "vil"):
        self.root = str(root)
        self.img_type = img_type
        self._handles: dict = {}
        self._pid: Optional[int] = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handles"], state["_pid"] = {}, None
        return state

    def path(self, file_name: str) -> str:
        """Full path of a catalog ``file_name`` (under ``root/data``)."""
        return f"{self.root.rstrip('/')}/data/{file_name}"

    def _file(self, file_name: str):
        if self._pid != os.getpid():  # after a fork: never share HDF5 handles across processes
            self._handles, self._pid = {}, os.getpid()
        if file_name not in self._handles:
            path = self.path(file_name)
            if "://" not in path and not Path(path).exists():
                raise FileNotFoundError(f"SEVIR file {path} not found (catalog file_name {file_name!r})")
            self._handles[file_name] = _open_h5(path)
        return self._handles[file_name]

    def read_event(self, file_name: str, file_index: int, event_id: Optional[str] = None) -> np.ndarray:
        """One event as ``(T, H, W)`` uint8 (HDF5 stores ``H×W×T``).

        Parameters
        ----------
        file_name, file_index
            From the catalog row.
        event_id : str, optional
            Checked against the file's ``id`` dataset when given.

        Raises
        ------
        ValueError
            If the id stored at ``file_index`` differs from ``event_id``.
        """
        f = self._file(file_name)
        if event_id is not None and "id" in f:
            stored = f["id"][file_index]
            stored = stored.decode() if isinstance(stored, bytes) else str(stored)
            if stored != event_id:
                raise ValueError(f"{file_name}[{file_index}] holds event {stored!r}, the catalog says {event_id!r}")
        return np.ascontiguousarray(np.moveaxis(f[self.img_type][file_index], -1, 0))

    def close(self) -> None:
        """Close every open file."""
        for h in self._handles.values():
            h.close()
        self._handles = {}


def downsample_lr(event: np.ndarray) -> np.ndarray:
    """SEVIR → SEVIR-LR: frames 0, 2, …, and 3×3 max pooling (PreDiff's ``downsample_dict``).

    Parameters
    ----------
    event : numpy.ndarray
        ``(T, H, W)`` bytes with H and W divisible by 3.

    Returns
    -------
    numpy.ndarray
        ``(ceil(T/2), H/3, W/3)`` bytes. Missing (255) wins the max, so a block with any missing
        pixel is missing.
    """
    t, h, w = event.shape
    if h % LR_POOL or w % LR_POOL:
        raise ValueError(f"SEVIR-LR needs H and W divisible by {LR_POOL}, got {h}×{w}")
    frames = event[::LR_TIME_STRIDE]
    return frames.reshape(len(frames), h // LR_POOL, LR_POOL, w // LR_POOL, LR_POOL).max(axis=(2, 4))
