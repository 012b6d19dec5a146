"""A forecast made on the model's grid, written on the input file's grid and in its units.

The members (VIL bytes on the model grid) are brought back to the file's pixels by bilinear
interpolation (:meth:`~.regrid.GridPlan.to_source`), rounded to the codec's bytes, masked where
the last observed frame had no data (outside radar coverage) and converted to the file's quantity
and unit (:func:`~.quantities.to_quantity`: rain rate in, rain rate out; an accumulation is given
per forecast step). The ensemble mean and the exceedance probabilities are computed in those
units, at thresholds in those units (:func:`default_thresholds`, or the user's).
"""

from __future__ import annotations

import numpy as np

from ..data.codec import MARSHALL_PALMER, MISSING, SEVIR_THRESHOLDS, decode_vil
from .forecast import forecast_dataset
from .quantities import NO_ECHO_DBZ, to_quantity

__all__ = ["default_thresholds", "user_forecast"]

_RAIN_THRESHOLDS = (0.1, 1.0, 5.0, 10.0, 20.0)          # mm h-1
_DBZ_THRESHOLDS = (20.0, 30.0, 40.0, 50.0)


def default_thresholds(quantity: str, factor: float = 1.0, step_minutes: float | None = None) -> tuple:
    """Exceedance thresholds in a file's unit: SEVIR's VIL thresholds for VIL, 0.1, 1, 5, 10 and 20 mm h⁻¹
    for rain rates (their amounts per step for accumulations), 20–50 dBZ for reflectivity."""
    if quantity == "vil_bytes":
        return tuple(int(t) for t in SEVIR_THRESHOLDS)
    if quantity == "vil":
        return tuple(float(f"{v / factor:.3g}") for v in decode_vil(np.asarray(SEVIR_THRESHOLDS, np.uint8)))
    if quantity == "reflectivity":
        return tuple(t / factor for t in _DBZ_THRESHOLDS)
    per = (step_minutes / 60.0) if quantity == "accumulation" else 1.0
    return tuple(float(f"{t * per / factor:.3g}") for t in _RAIN_THRESHOLDS)


def _variable_attrs(source, quantity: str, step_minutes: float) -> dict:
    var = source.attrs.get("source_variable", "vil")
    keep = {k: source.attrs[f"source_{k}"] for k in ("units", "standard_name", "long_name")
            if source.attrs.get(f"source_{k}")}
    if quantity == "vil_bytes":
        return {"long_name": "forecast VIL (SEVIR byte encoding)", "units": "1", "missing_byte": MISSING}
    attrs = {**keep, "long_name": f"forecast {keep.get('long_name', var)}"}
    if quantity == "accumulation":
        attrs["cell_methods"] = f"time: sum (interval: {step_minutes:g} minutes)"
        attrs["comment"] = f"precipitation over each {step_minutes:g}-min forecast step ending at valid_time"
    if quantity == "reflectivity":
        attrs["comment"] = f"{NO_ECHO_DBZ:g} dBZ = no echo"
    return attrs


def user_forecast(members: np.ndarray, conformed, frame_minutes: int, thresholds=None, provenance: dict | None = None,
                  zr=MARSHALL_PALMER):
    """The forecast dataset on the input file's grid and in its units.

    Parameters
    ----------
    members : numpy.ndarray
        ``(member, lead_time, H, W)`` VIL bytes on the whole model grid (``conformed.plan``).
    conformed : nowcast.io.conform.Conformed
        The event as conformed for the model (its plan and the event as read).
    frame_minutes : int
        The forecast's step.
    thresholds : sequence of float, optional
        Exceedance thresholds in the file's unit (default: :func:`default_thresholds`).
    provenance : dict, optional
        Attributes of the forecast (model, solver, …).
    zr : tuple of float
        The Z–R law the input was converted with.

    Returns
    -------
    xarray.Dataset
        As :func:`~.forecast.forecast_dataset`, with the file's variable name, units, grid mapping
        and coordinates.
    """
    src, plan = conformed.source, conformed.plan
    quantity = src.attrs.get("source_quantity", "vil_bytes")
    factor = float(src.attrs.get("source_factor", 1.0))
    m = np.asarray(members)
    on_file = plan.to_source(m.astype(np.float64))
    coverage = src["vil"].values[-1] != MISSING                   # the last observed frame's radar coverage
    on_file = np.where(coverage & np.isfinite(on_file), on_file, np.nan)
    bytes_ = np.where(np.isnan(on_file), MISSING, np.clip(np.rint(on_file), 0, 254)).astype(np.uint8)
    values = to_quantity(bytes_, quantity, factor, frame_minutes, zr)
    if thresholds is None:
        thresholds = default_thresholds(quantity, factor, frame_minutes)
    grid = plan.source
    coords = grid.file_coords()
    (ydim, xdim) = grid.dims
    variable = src.attrs.get("source_variable", "vil")
    return forecast_dataset(values, src["time"].values[-1], frame_minutes, coords[xdim][0], coords[ydim][0],
                            thresholds=thresholds, provenance=provenance, grid_mapping=grid.crs_attrs,
                            variable=variable, attrs=_variable_attrs(src, quantity, frame_minutes), dims=grid.dims,
                            coord_attrs={d: coords[d][1] for d in grid.dims})
