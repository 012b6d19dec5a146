"""Event files (``event.nc``): radar frames in, with CF coordinates, validated.

An event file holds radar frames ``(time, y, x)`` — SEVIR VIL bytes (uint8, 255 = missing), VIL in
kg m⁻², rain rate, precipitation per step or reflectivity, told apart by their CF units or
standard name (:mod:`.quantities`; NaN and fill values are *no data*) and converted to VIL bytes
through the codec — a CF ``time`` coordinate,
projected ``x``/``y`` coordinates in metres (pixel centres; ``y`` increases northwards, so the
orientation is explicit) and a ``crs`` grid-mapping variable (SEVIR's LAEA).

:func:`read_event` validates a file against a task preset and raises one :class:`EventError`
naming the problem, what was expected and how to fix it. :func:`event_from_store` and
:func:`write_event` produce such files from a store; writes are atomic and never overwrite an
existing file unless asked.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..data.codec import MARSHALL_PALMER, MISSING
from ..foundation.files import atomic_write
from ..foundation.tasks import SEVIR_DOMAIN_M
from ..data.projection import CF_GRID_MAPPING, lonlat_to_laea
from .grids import GridError, source_grid
from .timeaxis import TimeAxisError, check_time_axis

__all__ = ["EventError", "read_event", "validate_event", "write_event", "write_netcdf", "event_from_store",
           "event_dataset", "coordinate_attrs"]


class EventError(ValueError):
    """An event file that cannot be used, with a message saying why and how to fix it."""


def coordinate_attrs() -> dict:
    """CF attributes of the ``x``, ``y`` and ``time`` coordinates."""
    return {"x": {"standard_name": "projection_x_coordinate", "units": "m"},
            "y": {"standard_name": "projection_y_coordinate", "units": "m"},
            "time": {"standard_name": "time"}}


def event_dataset(vil: np.ndarray, times, x: np.ndarray, y: np.ndarray, attrs: dict | None = None):
    """Assemble a CF event dataset from bytes ``(time, y, x)``, times and pixel-centre coordinates."""
    import xarray as xr

    ca = coordinate_attrs()
    ds = xr.Dataset(
        {"vil": (("time", "y", "x"), np.asarray(vil, dtype=np.uint8),
                 {"long_name": "vertically integrated liquid (SEVIR byte encoding)", "units": "1",
                  "missing_byte": MISSING, "grid_mapping": "crs",
                  "comment": "kg m-2 = 0 if X<=5; (X-2)/90.66 if X<=18; exp((X-83.9)/38.9); 255 missing"}),
         "crs": ((), np.int32(0), dict(CF_GRID_MAPPING))},
        coords={"time": ("time", np.asarray(times, dtype="datetime64[ns]"), ca["time"]),
                "y": ("y", np.asarray(y, dtype=np.float64), ca["y"]),
                "x": ("x", np.asarray(x, dtype=np.float64), ca["x"])},
        attrs={"Conventions": "CF-1.8", **(attrs or {})})
    return ds


def event_from_store(ds, index: int):
    """Event ``index`` of a store as an event dataset (times centred on ``time_utc``)."""
    ev = ds.isel(event=index)
    vil = np.asarray(ev["vil"].values)
    t, h, w = vil.shape
    minutes = int(ds.attrs.get("frame_minutes", 5))
    t0 = np.datetime64(ev["time_utc"].values, "ns")
    times = t0 + (np.arange(t) - t // 2) * np.timedelta64(minutes, "m")
    x_ll, y_ll = lonlat_to_laea(float(ev["llcrnrlon"]), float(ev["llcrnrlat"]))
    pixel = SEVIR_DOMAIN_M / w
    x = float(x_ll) + (np.arange(w) + 0.5) * pixel
    y = float(y_ll) + (np.arange(h) + 0.5) * pixel
    return event_dataset(vil, times, x, y, {"event_id": str(ev["id"].values),
                                            "source": str(ds.attrs.get("source", "")),
                                            "task": str(ds.attrs.get("task", ""))})


def write_event(ds, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write an event dataset to netCDF-4 atomically (see :func:`write_netcdf`)."""
    return write_netcdf(ds, path, overwrite)


def write_netcdf(ds, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a dataset to netCDF-4 atomically (temporary file in the same folder, then rename), fields
    compressed (zlib).

    Nothing is left behind on failure, and an existing file is never replaced unless asked.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; choose another name, or replace it (--overwrite on the command line, "
                              "overwrite=True from Python)")
    encoding = {v: {"zlib": True, "complevel": 4} for v in ds.data_vars if ds[v].ndim >= 2}   # fields compressed
    return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding))


def _open(path: Path):
    import xarray as xr

    if not path.exists():
        raise EventError(f"{path}: no such file")
    if path.is_dir():
        try:
            return xr.open_zarr(path, decode_times=True, mask_and_scale=True)
        except Exception as e:  # noqa: BLE001 - any failure to parse means "not a readable zarr store"
            raise EventError(f"{path}: a folder that cannot be read as a zarr store ({type(e).__name__}: {e}); "
                             "expected a netCDF file or a zarr store of radar frames") from None
    try:
        # lazily: metadata, grid and time axis are checked before the frames are read
        return xr.open_dataset(path, engine="netcdf4", decode_times=True, mask_and_scale=True)
    except Exception as e:  # noqa: BLE001 - any failure to parse means "not a readable netCDF file"
        raise EventError(f"{path}: cannot be read as netCDF ({type(e).__name__}: {e}); "
                         "expected a netCDF-4 event file such as `python -m nowcast.data export-event` writes"
                         ) from None


def _check_time(path: Path, ds, task, exact: bool = True) -> None:
    if "time" not in ds.coords or not np.issubdtype(ds["time"].dtype, np.datetime64):
        raise EventError(f"{path}: no CF time coordinate (expected 'time' with units such as "
                         "'minutes since 2019-06-01 00:00')")
    n = ds.sizes["time"]
    if not exact:
        steps = np.diff(ds["time"].values).astype("timedelta64[s]").astype(np.int64)
        if n >= 2 and (np.any(steps <= 0) or np.abs(steps - steps.mean()).max() > 1):
            raise EventError(f"{path}: times must increase at a regular step (found steps "
                             f"{sorted(set((steps / 60).round(2).tolist()))} min)")
        try:
            check_time_axis(ds["time"].values, task.frame_minutes, task.in_len, name=str(path))
        except TimeAxisError as e:
            raise EventError(str(e)) from None
        return
    if n < task.in_len:
        raise EventError(f"{path}: too few frames: {n}, the {task.name} task needs at least "
                         f"{task.in_len} context frames")
    steps = np.diff(ds["time"].values).astype("timedelta64[s]").astype(np.int64)
    if len(np.unique(steps)) > 1:
        raise EventError(f"{path}: irregular time step ({sorted(set((steps // 60).tolist()))} min); "
                         f"frames must be every {task.frame_minutes} min")
    if steps[0] != task.frame_minutes * 60:
        raise EventError(f"{path}: time step is {steps[0] / 60:g} min, the {task.name} task needs "
                         f"{task.frame_minutes} min")


def read_event(path: str | os.PathLike, task: str = "sevirlr", check_time: bool = True,
               variable: str | None = None, zr=MARSHALL_PALMER):
    """Read and validate an event file for a task.

    Parameters
    ----------
    path : path-like
        The netCDF event file.
    task : str
        Task preset (``sevirlr`` or ``sevir``) whose frame interval and context length apply.
    check_time : bool
        Require exactly the task's time step and context length; with ``False`` only a regular,
        increasing time axis is required (:func:`~.conform.conform_event` thins it afterwards).
    variable : str, optional
        The radar variable (default: found from units and standard names, see :mod:`.quantities`).
    zr : tuple of float
        ``(a, b)`` of the Z–R law ``Z = a·R^b`` for rain rates and accumulations.

    Returns
    -------
    xarray.Dataset
        ``vil (time, y, x)`` uint8 bytes plus ``x``, ``y``, ``time`` and ``crs``; attributes
        ``source_variable`` and ``source_quantity`` say what the file held.

    Raises
    ------
    EventError
        One message per problem: missing file, not netCDF, no radar variable or an ambiguous one,
        units that contradict the values, wrong dimensions, no grid mapping, bad coordinates, too
        few frames, irregular or wrong time step, values out of range, all missing.
    """
    path = Path(path)
    ds = _open(path)
    try:
        return validate_event(ds, str(path), task, check_time, variable, zr)
    finally:
        ds.close()


def validate_event(ds, name: str, task: str = "sevirlr", check_time: bool = True, variable: str | None = None,
                   zr=MARSHALL_PALMER):
    """Validate an opened radar dataset as :func:`read_event` does a file (``name`` in messages).

    Returns
    -------
    xarray.Dataset
        As :func:`read_event`.

    Raises
    ------
    EventError
        As :func:`read_event`.
    """
    from ..foundation.tasks import get_task
    from .quantities import QuantityError, identify, to_vil_bytes

    path, tk = name, get_task(task)
    try:
        var, quantity, factor = identify(ds, variable, name=str(path))
    except QuantityError as e:
        raise EventError(str(e)) from None
    try:
        grid = source_grid(ds, var, name=str(path))
    except GridError as e:
        raise EventError(str(e)) from None
    _check_time(path, ds, tk, exact=check_time)
    step = float(np.diff(ds["time"].values[-2:]).astype("timedelta64[s]").astype(np.int64)[0]) / 60 \
        if ds.sizes["time"] > 1 else None
    try:
        data = to_vil_bytes(ds[var].values, quantity, factor, step, zr, var, str(path))
    except QuantityError as e:
        raise EventError(str(e)) from None
    if np.all(data == MISSING):
        raise EventError(f"{path}: every pixel is missing (255 or NaN); nothing to forecast from")
    gm = ds[var].attrs.get("grid_mapping", ds[var].encoding.get("grid_mapping"))
    out = ds.drop_vars([v for v in ds.data_vars]).load()
    out["vil"] = (ds[var].dims, data, {"long_name": "vertically integrated liquid (SEVIR byte encoding)",
                                       "units": "1", "grid_mapping": "crs"})
    out["crs"] = ((), np.int32(0), dict(grid.crs_attrs))
    if gm is not None and gm != "crs" and gm in out.variables:
        out = out.drop_vars(gm)
    out.attrs.update({f"source_{k}": str(ds[var].attrs[k]) for k in ("units", "standard_name", "long_name")
                      if k in ds[var].attrs})
    out.attrs["source_factor"] = float(factor)
    out.attrs.update(source_variable=var, source_quantity=quantity)
    return out
