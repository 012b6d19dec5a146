"""Bring a validated event to a model's grid and time step, when that is well defined.

Only exact reductions are made: a time step that divides the model's (every k-th frame, ending at
the last observed one) and a pixel size that divides the model's (k×k max pooling, missing pixels
(255) winning, as SEVIR-LR is made from SEVIR). Rows and columns are put in increasing ``y``/``x``
order (row 0 = south, as SEVIR stores frames). Anything else — a coarser grid, a non-integer
ratio, a domain of another size, a step that does not divide the model's — is refused with a
:class:`~.events.EventError` that says what would be needed.
"""

from __future__ import annotations

import numpy as np

from .events import EventError

__all__ = ["conform_event"]


def _ratio(have: float, want: float) -> int | None:
    """Integer ``want / have`` when it is one (to 0.1 %), else ``None``."""
    r = want / have
    k = int(round(r))
    return k if k >= 1 and abs(r - k) < 1e-3 * r else None


def conform_event(ds, frame_minutes: int, pixel_m: float, shape: tuple, min_frames: int, name: str = "event"):
    """Event on the model's grid.

    Parameters
    ----------
    ds : xarray.Dataset
        A validated event (:func:`~.events.read_event` with ``check_time=False``): ``vil (time, y, x)``
        bytes with ``time``, ``x``, ``y`` and ``crs``.
    frame_minutes : int
        The model's frame interval.
    pixel_m : float
        The model's pixel size (m).
    shape : tuple
        The model's frame shape ``(H, W)``.
    min_frames : int
        Context frames the model needs (after thinning).
    name : str
        What to call the input in messages (its path).

    Returns
    -------
    tuple
        ``(dataset, notes)``: the conformed event and a list of what was done (for provenance).

    Raises
    ------
    EventError
        When the event cannot be brought to the model's grid exactly.
    """
    notes = []
    out = ds
    for c in ("y", "x"):
        if out[c].values[0] > out[c].values[-1]:
            out = out.isel({c: slice(None, None, -1)})
            notes.append(f"{c} reversed to increasing order")
    step = int(np.diff(out["time"].values[-2:]).astype("timedelta64[s]").astype(np.int64)[0]) if out.sizes["time"] > 1 \
        else frame_minutes * 60
    k_t = _ratio(step / 60, frame_minutes)
    if k_t is None:
        raise EventError(f"{name}: time step {step / 60:g} min cannot be brought to the model's {frame_minutes} min "
                         f"(only steps that divide it are thinned); resample the event to {frame_minutes} min")
    if k_t > 1:
        idx = np.arange(out.sizes["time"] - 1, -1, -k_t)[::-1]
        out = out.isel(time=idx)
        notes.append(f"one frame in {k_t} kept ({step / 60:g} → {frame_minutes} min), ending at the last one")
    if out.sizes["time"] < min_frames:
        raise EventError(f"{name}: too few frames: {out.sizes['time']} at {frame_minutes} min, the model needs "
                         f"{min_frames} context frames")
    px = float(np.abs(np.diff(out["x"].values)).mean())
    py = float(np.abs(np.diff(out["y"].values)).mean())
    k = _ratio(px, pixel_m)
    if k is None or _ratio(py, pixel_m) != k:
        raise EventError(f"{name}: pixels of {px:g} × {py:g} m cannot be brought to the model's {pixel_m:g} m by "
                         f"max pooling (needs an integer ratio, at most as coarse as the model)")
    h, w = out.sizes["y"], out.sizes["x"]
    if (h, w) != (shape[0] * k, shape[1] * k):
        raise EventError(f"{name}: a {h}×{w} grid of {px:g} m is {h * px / 1000:g}×{w * px / 1000:g} km; the model "
                         f"forecasts {shape[0]}×{shape[1]} pixels of {pixel_m:g} m "
                         f"({shape[0] * pixel_m / 1000:g}×{shape[1] * pixel_m / 1000:g} km); crop the event to "
                         f"{shape[0] * k}×{shape[1] * k} pixels")
    if k > 1:
        import xarray as xr

        v = out["vil"].values
        t = v.shape[0]
        pooled = v.reshape(t, shape[0], k, shape[1], k).max(axis=(2, 4))     # 255 (missing) wins the max
        coords = {c: out[c].values.reshape(-1, k).mean(axis=1) for c in ("y", "x")}
        new = xr.Dataset({"vil": (("time", "y", "x"), pooled.astype(np.uint8), out["vil"].attrs),
                          "crs": out["crs"]},
                         coords={"time": out["time"], "y": ("y", coords["y"], out["y"].attrs),
                                 "x": ("x", coords["x"], out["x"].attrs)}, attrs=out.attrs)
        out = new
        notes.append(f"{k}×{k} max pooling ({px:g} → {pixel_m:g} m)")
    return out, notes
