"""Bring radar frames to the model's time step.

* A step that divides the model's (2 or 5 min for a 10-min model) is **thinned**: every k-th frame,
  ending at the last observed one.
* Another step finer than the model's (e.g. 6 min) is brought to it by **Lagrangian interpolation**:
  the motion field of the sequence (pysteps' Lucas–Kanade) carries the frame before a wanted time
  forward and the frame after it backward to that time, and the two are blended by their time
  weights — the rain moves instead of fading from one place to the other (as in the
  motion-compensated interpolation of radar accumulation products).
* A step coarser than the model's is refused: a 30-min sequence cannot show how the rain moved in
  between, and interpolating it would invent the evolution the model is asked to forecast.

The frames used end at the last observed one (the forecast's initial time).
"""

from __future__ import annotations

import numpy as np

from ..data.codec import MISSING

__all__ = ["TimeAxisError", "check_time_axis", "to_model_steps"]


class TimeAxisError(ValueError):
    """A time axis that cannot be brought to the model's step."""


def _step_seconds(times) -> int:
    return int(np.diff(np.asarray(times)[-2:]).astype("timedelta64[s]").astype(np.int64)[0])


def check_time_axis(times, frame_minutes: int, min_frames: int, name: str = "file") -> None:
    """Refuse a time axis the model cannot use (before any work is done).

    Raises
    ------
    TimeAxisError
        A step coarser than the model's, or fewer minutes of radar than the model's context spans.
    """
    times = np.asarray(times)
    need = (min_frames - 1) * frame_minutes
    if len(times) < 2:
        raise TimeAxisError(f"{name}: one frame only; the model needs {need} minutes of radar ({min_frames} frames "
                            f"{frame_minutes} min apart, ending at the forecast's start)")
    step = _step_seconds(times) / 60
    if step > frame_minutes:
        raise TimeAxisError(f"{name}: frames are {step:g} min apart, coarser than the model's {frame_minutes}-min "
                            f"steps; the motion between them cannot be told, so they are not interpolated. Give "
                            f"frames at most {frame_minutes} min apart (e.g. the radar's native "
                            "5-min or 10-min composites)")
    span = (len(times) - 1) * step
    if span + 1e-6 < need:
        raise TimeAxisError(f"{name}: too few frames: {len(times)} frames {step:g} min apart cover {span:g} minutes; "
                            f"the model needs {need} minutes of radar ({min_frames} frames at {frame_minutes} min) "
                            "ending at the forecast's start")


def _warp(frame: np.ndarray, velocity: np.ndarray, factor: float) -> np.ndarray:
    """``frame`` carried by ``factor`` × ``velocity`` (pixels per step; backward semi-Lagrangian, bilinear)."""
    from scipy.ndimage import map_coordinates

    h, w = frame.shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    coords = [rows - factor * velocity[1], cols - factor * velocity[0]]
    return map_coordinates(frame, coords, order=1, mode="constant", cval=np.nan)


def motion_field(frames: np.ndarray) -> np.ndarray:
    """``(2, H, W)`` motion (pixels per step; x then y) of byte frames by pysteps' Lucas–Kanade."""
    from pysteps import motion

    f = np.where(frames == MISSING, 0, frames).astype(np.float64)
    return np.asarray(motion.get_method("LK")(f, verbose=False), dtype=np.float64)


def to_model_steps(frames: np.ndarray, times, frame_minutes: int, min_frames: int, name: str = "file") -> tuple:
    """Frames at the model's step, ending at the last observed one.

    Parameters
    ----------
    frames : numpy.ndarray
        ``(T, H, W)`` VIL bytes (255 = missing) at a regular step.
    times : array-like of datetime64
        Their times.
    frame_minutes : int
        The model's step.
    min_frames : int
        Context frames the model needs.
    name : str
        What to call the input in messages.

    Returns
    -------
    tuple
        ``(frames, times, notes)``: at least ``min_frames`` frames ``frame_minutes`` apart, and what was done.

    Raises
    ------
    TimeAxisError
        See :func:`check_time_axis`.
    """
    times = np.asarray(times).astype("datetime64[ns]")
    check_time_axis(times, frame_minutes, min_frames, name)
    step = _step_seconds(times)
    want = frame_minutes * 60
    if want % step == 0:
        k = want // step
        if k == 1:
            return frames, times, []
        idx = np.arange(len(times) - 1, -1, -k)[::-1]
        return frames[idx], times[idx], [f"one frame in {k} kept ({step / 60:g} → {frame_minutes} min), "
                                         "ending at the last one"]
    elapsed = (times - times[0]).astype("timedelta64[s]").astype(np.int64)
    targets = elapsed[-1] - np.arange(0, elapsed[-1] + 1, want)[::-1]
    velocity = motion_field(frames[-min(len(frames), 4):])            # pixels per file step
    out = []
    for t in targets:
        i = min(int(t // step), len(frames) - 2)
        a = (t - elapsed[i]) / step
        if abs(a) < 1e-9 or abs(a - 1) < 1e-9:
            out.append(frames[i + int(round(a))])
            continue
        f0 = np.where(frames[i] == MISSING, np.nan, frames[i].astype(np.float64))
        f1 = np.where(frames[i + 1] == MISSING, np.nan, frames[i + 1].astype(np.float64))
        blend = (1 - a) * _warp(f0, velocity, a) + a * _warp(f1, velocity, -(1 - a))
        out.append(np.where(np.isnan(blend), MISSING, np.clip(np.rint(blend), 0, 254)).astype(np.uint8))
    note = (f"Lagrangian (motion-compensated) interpolation from {step / 60:g}-min to {frame_minutes}-min frames "
            "(pysteps Lucas-Kanade motion)")
    return np.stack(out), times[0] + targets.astype("timedelta64[s]"), [note]
