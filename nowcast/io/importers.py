"""Native radar products (ODIM HDF5, MeteoSwiss GIF, FMI PGM, KNMI HDF5, MRMS GRIB, BoM netCDF, …)
read through pysteps' importers into the same CF dataset a netCDF event file gives.

One file per time step, given as a glob pattern. The time of each file comes from the file itself
for ODIM/OPERA HDF5 (``what/date`` and ``what/time``, or ``dataset1/what/enddate``/``endtime``)
and otherwise from its name with ``time_format`` (``strftime`` codes, e.g. ``%Y%m%d%H%M``). The
importer's metadata give the grid (``projection`` as a proj string, ``x1``/``y2`` corners, pixel
sizes, ``yorigin``) and the unit (``mm/h``, ``mm`` per ``accutime`` minutes, ``dBZ``); a dBR
transform is undone. The result goes through :func:`~.events.validate_event` like any file.
"""

from __future__ import annotations

import glob
import os
from datetime import datetime

import numpy as np

from .events import EventError

__all__ = ["import_native", "importer_names"]


def importer_names() -> list:
    """The importers pysteps offers (``odim_hdf5``, ``mch_gif``, ``fmi_pgm``, ``knmi_hdf5``, …)."""
    from pysteps.io import interface

    return sorted(interface._importer_methods)


def _odim_time(path: str):
    """The nominal time of an ODIM/OPERA HDF5 file, or None."""
    try:
        import h5py

        with h5py.File(path, "r") as f:
            for group, d, t in (("what", "date", "time"), ("dataset1/what", "enddate", "endtime")):
                if group in f and d in f[group].attrs and t in f[group].attrs:
                    text = [f[group].attrs[k] for k in (d, t)]
                    text = [v.decode() if isinstance(v, bytes) else str(v) for v in text]
                    return np.datetime64(datetime.strptime("".join(text), "%Y%m%d%H%M%S"), "ns")
    except (OSError, ValueError):
        return None
    return None


def _name_time(path: str, time_format: str):
    """The time written in a file's name with ``time_format``, or None."""
    name = os.path.basename(path)
    width = len(datetime(2000, 1, 1, 0, 0, 0).strftime(time_format))
    for i in range(0, len(name) - width + 1):
        try:
            return np.datetime64(datetime.strptime(name[i:i + width], time_format), "ns")
        except ValueError:
            continue
    return None


def import_native(pattern: str, importer: str, time_format: str | None = None, options: dict | None = None):
    """A radar sequence from native files, as an (unvalidated) CF dataset.

    Parameters
    ----------
    pattern : str
        Glob pattern of the files (one per time step).
    importer : str
        pysteps importer name (:func:`importer_names`).
    time_format : str, optional
        ``strftime`` pattern of the time in the file names (needed unless the files are ODIM HDF5).
    options : dict, optional
        Keyword arguments of the importer (e.g. ``{"qty": "DBZH"}``).

    Returns
    -------
    xarray.Dataset
        ``precip (time, y, x)`` with its units, ``x``/``y`` in metres (pixel centres) and ``crs``.

    Raises
    ------
    EventError
        No files, an unknown importer, a file it cannot read, times that cannot be told, or files
        on different grids.
    """
    import xarray as xr

    files = sorted(glob.glob(pattern))
    if not files:
        raise EventError(f"{pattern}: no file matches; give a quoted glob pattern such as 'radar/*.h5'")
    names = importer_names()
    if importer not in names:
        raise EventError(f"unknown importer {importer!r}; pysteps offers {', '.join(names)}")
    from pysteps.io import get_method

    read = get_method(importer, "importer")
    frames, times, meta = [], [], None
    for path in files:
        try:
            precip, _, m = read(path, **(options or {}))
        except Exception as e:  # noqa: BLE001 - any importer failure means "not such a product"
            raise EventError(f"{path}: the {importer} importer cannot read it ({type(e).__name__}: {e})") from None
        t = _odim_time(path) if importer in ("odim_hdf5", "opera_hdf5") else None
        if t is None and time_format:
            t = _name_time(path, time_format)
        if t is None:
            raise EventError(f"{path}: cannot tell its time; give --time-format with the strftime pattern of the "
                             "time in the file names (e.g. %Y%m%d%H%M)")
        key = tuple(m.get(k) for k in ("projection", "x1", "y1", "x2", "y2", "xpixelsize", "ypixelsize"))
        if meta is not None and (key != meta[0] or np.shape(precip) != np.shape(frames[0])):
            raise EventError(f"{path}: on another grid than {files[0]}; give files of one product")
        meta = meta or (key, m)
        frames.append(np.asarray(precip, dtype=np.float32))
        times.append(t)
    m = meta[1]
    order = np.argsort(np.asarray(times))
    data = np.stack(frames)[order]
    unit, transform = str(m.get("unit", "")), m.get("transform")
    if transform == "dB" and unit in ("mm/h", "mm"):
        data = 10.0 ** (data / 10.0)
    attrs = {"mm/h": {"units": "mm h-1", "standard_name": "rainfall_rate"},
             "mm": {"units": "mm", "standard_name": "precipitation_amount",
                    "comment": f"accumulated over {m.get('accutime', '?')} minutes"},
             "dBZ": {"units": "dBZ", "standard_name": "equivalent_reflectivity_factor"}}.get(unit)
    if attrs is None:
        raise EventError(f"{pattern}: the {importer} importer gives unit {unit!r}; expected mm/h, mm or dBZ")
    ny, nx = data.shape[1:]
    xs, ys = float(m["xpixelsize"]), float(m["ypixelsize"])
    x = float(m["x1"]) + (np.arange(nx) + 0.5) * xs
    y = (float(m["y2"]) - (np.arange(ny) + 0.5) * ys) if m.get("yorigin", "upper") == "upper" \
        else float(m["y1"]) + (np.arange(ny) + 0.5) * ys
    import pyproj

    crs = pyproj.CRS.from_user_input(m["projection"])
    ds = xr.Dataset({"precip": (("time", "y", "x"), data, {**attrs, "grid_mapping": "crs"}),
                     "crs": ((), np.int32(0), {"crs_wkt": crs.to_wkt(), "proj4": str(m["projection"])})},
                    coords={"time": ("time", np.asarray(times)[order].astype("datetime64[ns]")),
                            "y": ("y", y, {"standard_name": "projection_y_coordinate", "units": "m"}),
                            "x": ("x", x, {"standard_name": "projection_x_coordinate", "units": "m"})},
                    attrs={"source": f"{importer} files {pattern}", "institution": str(m.get("institution", ""))})
    return ds
