"""Forecast files (``forecast.nc``): an ensemble ``(member, lead_time, y, x)`` in VIL bytes.

Besides the members the file holds the valid time of every lead time, the ensemble mean, the
exceedance probability of each SEVIR threshold (``>=``, the fraction of members at or above it;
missing pixels excluded) and provenance attributes (model, solver, steps, NFE, seeds, package
version). It opens with xarray and with plain netCDF4.
"""

from __future__ import annotations

import numpy as np

from ..data.codec import MISSING, SEVIR_THRESHOLDS
from ..data.projection import CF_GRID_MAPPING
from .events import coordinate_attrs

__all__ = ["forecast_dataset"]


def forecast_dataset(members: np.ndarray, init_time, frame_minutes: int, x: np.ndarray, y: np.ndarray,
                     thresholds=SEVIR_THRESHOLDS, provenance: dict | None = None, grid_mapping: dict | None = None,
                     variable: str = "vil", attrs: dict | None = None, dims: tuple = ("y", "x"),
                     coord_attrs: dict | None = None):
    """Assemble a CF forecast dataset.

    Parameters
    ----------
    members : numpy.ndarray
        ``(member, lead_time, y, x)``: uint8 VIL bytes (255 = missing), or floats in the units of
        ``attrs`` (NaN = no data).
    init_time : datetime-like
        Time of the last observed frame.
    frame_minutes : int
        Interval between lead times; lead k (1-based) is ``k·frame_minutes`` after ``init_time``.
    x, y : numpy.ndarray
        Pixel-centre coordinates (as the grid's coordinates are stored).
    thresholds : sequence of float
        Thresholds (in the members' units) of the exceedance probabilities.
    provenance : dict, optional
        Attributes (model, solver, steps, nfe, seeds, version …); lists are stored as strings.
    grid_mapping : dict, optional
        CF grid-mapping attributes of ``x``/``y`` — the event's own (default: SEVIR's Lambert azimuthal
        equal-area projection).
    variable : str
        Name of the members' variable (the input file's: ``vil``, ``precip``, ``DBZH`` …).
    attrs : dict, optional
        Its CF attributes (units, standard_name, long_name); default: SEVIR bytes.
    dims : tuple of str
        Names of the ``(y, x)`` dimensions (the input file's, e.g. ``("lat", "lon")``).
    coord_attrs : dict, optional
        Attributes of the two coordinates by dimension name (default: projected metres).

    Returns
    -------
    xarray.Dataset
    """
    import xarray as xr

    from ..foundation.version import __version__

    m = np.asarray(members)
    if m.ndim != 4 or m.dtype.kind not in "uf" or (m.dtype.kind == "u" and m.dtype != np.uint8):
        raise ValueError(f"members must be uint8 bytes or floats (member, lead_time, y, x), got {m.dtype} {m.shape}")
    n_lead = m.shape[1]
    lead = np.arange(1, n_lead + 1) * np.timedelta64(int(frame_minutes), "m")
    valid = np.datetime64(np.datetime64(init_time), "ns") + lead
    f = np.where(m == MISSING, np.nan, m.astype(np.float64)) if m.dtype == np.uint8 else m.astype(np.float64)
    ok = np.isfinite(f)
    count = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, np.where(ok, f, 0).sum(axis=0) / count, np.nan).astype(np.float32)
        prob = np.stack([np.where(count > 0, ((f >= t) & ok).sum(axis=0) / count, np.nan)
                         for t in thresholds]).astype(np.float32)
    if attrs is None:
        attrs = {"long_name": "forecast VIL (SEVIR byte encoding)", "units": "1", "missing_byte": MISSING}
    units = attrs.get("units", "1")
    ydim, xdim = dims
    cattrs = coord_attrs or {}
    ca = coordinate_attrs()
    head = {"Conventions": "CF-1.8", "nowcast_version": __version__, "forecast_variable": variable,
            "threshold_comparison": ">=", "init_time": str(np.datetime64(init_time, "s"))}
    for k, v in (provenance or {}).items():
        head[k] = v if isinstance(v, (str, int, float)) else str(v)
    what = attrs.get("long_name", variable)
    return xr.Dataset(
        {variable: (("member", "lead_time", ydim, xdim), m, {**attrs, "grid_mapping": "crs"}),
         "ensemble_mean": (("lead_time", ydim, xdim), mean,
                           {"long_name": f"ensemble mean of {what}", "units": units, "grid_mapping": "crs"}),
         "exceedance_probability": (("threshold", "lead_time", ydim, xdim), prob,
                                    {"long_name": f"fraction of members with {what} >= threshold",
                                     "units": "1", "grid_mapping": "crs"}),
         "crs": ((), np.int32(0), dict(CF_GRID_MAPPING if grid_mapping is None else grid_mapping))},
        coords={"member": ("member", np.arange(m.shape[0], dtype=np.int32)),
                "lead_time": ("lead_time", lead, {"standard_name": "forecast_period"}),
                "valid_time": ("lead_time", valid, {"standard_name": "time"}),
                "threshold": ("threshold", np.asarray(thresholds, dtype=np.float64 if m.dtype.kind == "f"
                                                      else np.int32), {"units": units}),
                ydim: (ydim, np.asarray(y, np.float64), cattrs.get(ydim, ca["y"])),
                xdim: (xdim, np.asarray(x, np.float64), cattrs.get(xdim, ca["x"]))},
        attrs=head)
