"""Bring a validated event to a model's pixels and time step.

The grid: :func:`~.regrid.plan_grid` (any projection or latitude/longitude; finer pixels
aggregated by the maximum, coarser ones refined; smaller domains padded with *no data*, larger
ones tiled). The time axis: :func:`~.timeaxis.to_model_steps` (thinned, or Lagrangian
interpolation; coarser steps refused). Rows of the model grid run south to north (row 0 = south,
as SEVIR stores frames) whatever the file's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .events import EventError
from .grids import source_grid
from .regrid import GridPlan, plan_grid
from .timeaxis import TimeAxisError, to_model_steps

__all__ = ["Conformed", "conform_event"]


@dataclass
class Conformed:
    """An event on a model's grid.

    Attributes
    ----------
    event : xarray.Dataset
        ``vil (time, y, x)`` bytes on the model grid (the whole domain: padded, or larger than the
        model's frame when it is tiled), ``x``/``y`` in metres and the grid's ``crs``.
    plan : GridPlan
        The model grid and its maps to and from the file's pixels.
    source : xarray.Dataset
        The event as read, on the file's own grid (for the forecast's coordinates and masks).
    notes : list of str
        What was done (the forecast's provenance).
    """

    event: object
    plan: GridPlan
    source: object
    notes: list = field(default_factory=list)


def conform_event(ds, frame_minutes: int, pixel_m: float, shape: tuple, min_frames: int, name: str = "event",
                  overlap: int | None = None) -> Conformed:
    """Event on the model's grid.

    Parameters
    ----------
    ds : xarray.Dataset
        A validated event (:func:`~.events.read_event` with ``check_time=False``): ``vil`` bytes
        ``(time, Y, X)`` with its coordinates and ``crs``.
    frame_minutes : int
        The model's frame interval.
    pixel_m : float
        The model's pixel size (m).
    shape : tuple
        The model's frame shape ``(H, W)``.
    min_frames : int
        Context frames the model needs (at its step).
    name : str
        What to call the input in messages (its path).
    overlap : int, optional
        Minimum overlap of tiles (pixels; default a quarter of the frame).

    Returns
    -------
    Conformed

    Raises
    ------
    EventError
        When the time axis cannot be brought to the model's step.
    """
    import xarray as xr

    grid = source_grid(ds, "vil", name=name)
    plan = plan_grid(grid, pixel_m, shape, overlap)
    notes = []
    if plan.method == "max":
        notes.append(f"aggregated to {pixel_m:g} m pixels by the maximum of the file's pixels")
    elif plan.method == "bilinear":
        notes.append(f"interpolated (bilinear) to {pixel_m:g} m pixels")
    if grid.lonlat:
        notes.append("latitude/longitude regridded to a local Lambert azimuthal equal-area grid")
    tiles = len(plan.tiles)
    if tiles > 1:
        notes.append(f"domain of {plan.shape[0]}×{plan.shape[1]} model pixels forecast in {tiles} overlapping tiles "
                     f"of {shape[0]}×{shape[1]}")
    if plan.covered[0] < shape[0] or plan.covered[1] < shape[1]:
        notes.append(f"domain of {plan.covered[0]}×{plan.covered[1]} model pixels padded with no data to "
                     f"{plan.shape[0]}×{plan.shape[1]}")
    frames = plan.to_model(ds["vil"].values)
    try:
        frames, times, more = to_model_steps(frames, ds["time"].values, frame_minutes, min_frames, name)
    except TimeAxisError as e:
        raise EventError(str(e)) from None
    notes += more
    from .events import coordinate_attrs

    ca = coordinate_attrs()
    event = xr.Dataset({"vil": (("time", "y", "x"), frames, {"long_name": "vertically integrated liquid (SEVIR byte "
                                                                          "encoding)", "units": "1",
                                                             "grid_mapping": "crs"}),
                        "crs": ((), np.int32(0), dict(plan.crs_attrs))},
                       coords={"time": ("time", times, ca["time"]), "y": ("y", plan.y, ca["y"]),
                               "x": ("x", plan.x, ca["x"])}, attrs=dict(ds.attrs))
    return Conformed(event=event, plan=plan, source=ds, notes=notes)
