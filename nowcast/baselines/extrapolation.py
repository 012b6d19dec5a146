"""Lagrangian extrapolation with pysteps (optional dependency).

Lucas–Kanade motion from the last ``n_motion_frames`` frames, semi-Lagrangian advection of the last
frame. Bytes are decoded to VIL (kg m⁻²) for advection and encoded back; the motion field is
estimated on ``10·log10(VIL)`` with a floor (pysteps' motion methods expect log-scaled fields).
Missing pixels are NaN for pysteps; values advected in from outside the domain are 0 (no echo).
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np

from ..data.codec import decode_vil, encode_vil
from ..foundation.tasks import Grid
from .base import Baseline, check_context

__all__ = ["Extrapolation"]


class Extrapolation(Baseline):
    """Lagrangian extrapolation of the last frame along Lucas–Kanade motion (pysteps).

    Parameters
    ----------
    task, grid
        As :class:`~nowcast.baselines.base.Baseline`.
    n_motion_frames : int
        Context frames used to estimate the motion (at least 2).
    db_floor : float
        Floor (kg m⁻²) of the log transform used for motion estimation.
    interp_order : int
        Interpolation order of the semi-Lagrangian advection (1 = bilinear, keeps VIL ≥ 0).
    """

    name = "extrapolation"

    def __init__(self, task: str = "sevirlr", grid: Grid | None = None, n_motion_frames: int = 3,
                 db_floor: float = 0.1, interp_order: int = 1):
        super().__init__(task, grid)
        if n_motion_frames < 2:
            raise ValueError("motion estimation needs at least 2 frames")
        self.n_motion_frames, self.db_floor, self.interp_order = n_motion_frames, db_floor, interp_order

    @staticmethod
    def _pysteps():
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pysteps prints its config path on import
                import pysteps.motion
                import pysteps.nowcasts
        except ImportError as err:
            raise ImportError("the pysteps baseline needs pysteps: pip install 'nowcast-diffusion[baselines]'") from err
        return pysteps

    def motion(self, frames_bytes: np.ndarray) -> np.ndarray:
        """Velocity ``(2, H, W)`` in pixels per frame from ``(T, H, W)`` bytes."""
        pysteps = self._pysteps()
        vil = decode_vil(frames_bytes[-self.n_motion_frames:]).astype(np.float64)
        db = 10.0 * np.log10(np.maximum(vil, self.db_floor))    # NaN (missing) stays NaN
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            # pysteps' outlier filter divides by zero when a frame has few feature points
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.filterwarnings("ignore", message=".*during outlier detection", category=UserWarning)
            return pysteps.motion.get_method("lucaskanade")(db, verbose=False)

    def forecast(self, context, n_lead: int) -> np.ndarray:
        """Extrapolate each context's last frame ``n_lead`` steps: ``(B, 1, n_lead, H, W)`` bytes."""
        return self.lagrangian_history(context, n_lead, 1)

    def lagrangian_history(self, context, n_lead: int, history: int = 1) -> np.ndarray:
        """The last ``history`` context frames, each moved on to the forecast's lead times.

        Row ``j`` of the result is context frame ``−history + j`` extrapolated ``n_lead + history − 1 − j``
        steps along the one motion field, of which the last ``n_lead`` are kept: every row lands on the
        lead times ``1 … n_lead``, the last row is :meth:`predict`'s forecast, and the rows side by side
        give each target pixel the Lagrangian history of the echo that arrives there.

        Parameters
        ----------
        context : array_like
            ``(B, T, H, W)`` context bytes.
        n_lead : int
            Lead times.
        history : int
            Context frames to move on (1 … T).

        Returns
        -------
        numpy.ndarray
            ``(B, history, n_lead, H, W)`` bytes.
        """
        pysteps = self._pysteps()
        ctx = check_context(context)
        if ctx.shape[1] < self.n_motion_frames:
            raise ValueError(f"pysteps extrapolation needs {self.n_motion_frames} context frames, "
                             f"got {ctx.shape[1]}")
        if not 1 <= history <= ctx.shape[1]:
            raise ValueError(f"history must be between 1 and the {ctx.shape[1]} context frames, got {history}")
        extrapolate = pysteps.nowcasts.get_method("extrapolation")
        out = np.empty((ctx.shape[0], history, n_lead) + ctx.shape[2:], dtype=np.uint8)
        for i, seq in enumerate(ctx):
            velocity = self.motion(seq)
            for j in range(history):
                back = history - 1 - j                      # frames before the last one
                frame = decode_vil(seq[-1 - back]).astype(np.float64)
                fc = extrapolate(frame, velocity, n_lead + back,
                                 extrap_kwargs={"outval": 0.0, "interp_order": self.interp_order,
                                                "allow_nonfinite_values": bool(np.isnan(frame).any())})[back:]
                fc = np.where(np.isfinite(fc), np.maximum(fc, 0.0), np.nan)
                out[i, j] = encode_vil(fc)
        return out
