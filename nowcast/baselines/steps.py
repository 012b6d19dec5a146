"""STEPS (Bowler et al. 2006; Seed et al. 2013) through pysteps: an ensemble extrapolation nowcast.

The last three context frames are transformed to decibels of VIL, ``10·log10(V / 1 kg m⁻²)`` for
``V ≥`` :attr:`Steps.threshold` (0.1 kg m⁻², below SEVIR's first verification threshold of
0.154 kg m⁻² = byte 16) and ``10·log10(threshold) − 5`` dB below it, pysteps' convention. The
motion is the Lucas–Kanade field of :class:`~.extrapolation.Extrapolation`. pysteps'
``steps`` nowcast then runs with its documented defaults: 6 cascade levels (FFT, Gaussian band
pass), AR(2) per level, non-parametric noise, BPS velocity perturbations, probability matching to
the observed distribution (``cdf``), incremental masking. Members are transformed back and
encoded as VIL bytes. Missing pixels (byte 255) enter STEPS as no echo — STEPS needs a complete
field — and every forecast pixel is a value. The ensemble comes from one pysteps seed, so member
``m`` depends on the ensemble size (unlike the diffusion model's members).
"""

from __future__ import annotations

import numpy as np

from ..data.codec import decode_vil, encode_vil
from ..foundation.tasks import Grid
from .base import check_context
from .extrapolation import Extrapolation

__all__ = ["Steps"]


class Steps(Extrapolation):
    """pysteps' STEPS ensemble nowcast of VIL.

    Parameters
    ----------
    task, grid
        As :class:`~nowcast.baselines.base.Baseline` (the pixel size and time step are given to
        STEPS' velocity perturbations).
    n_motion_frames : int
        Context frames for the motion field.
    threshold : float
        Echo threshold in kg m⁻² (no echo below it).
    n_cascade_levels : int
        Cascade levels (pysteps' default 6).
    """

    name = "steps"

    def __init__(self, task: str = "sevirlr", grid: Grid | None = None, n_motion_frames: int = 3,
                 threshold: float = 0.1, n_cascade_levels: int = 6):
        super().__init__(task, grid, n_motion_frames=n_motion_frames)
        self.threshold, self.n_cascade_levels = float(threshold), int(n_cascade_levels)

    def _to_db(self, frames_bytes: np.ndarray) -> np.ndarray:
        vil = np.nan_to_num(decode_vil(frames_bytes).astype(np.float64), nan=0.0)     # missing: no echo
        zero = 10.0 * np.log10(self.threshold) - 5.0
        with np.errstate(divide="ignore"):
            return np.where(vil >= self.threshold, 10.0 * np.log10(np.maximum(vil, 1e-12)), zero)

    def _from_db(self, db: np.ndarray) -> np.ndarray:
        vil = np.where(np.isfinite(db) & (db >= 10.0 * np.log10(self.threshold)), 10.0 ** (db / 10.0), 0.0)
        return encode_vil(vil)

    def ensemble(self, sequence: np.ndarray, n_lead: int, members: int, seed: int) -> np.ndarray:
        """``(members, n_lead, H, W)`` forecast bytes of one ``(T, H, W)`` context."""
        pysteps = self._pysteps()
        if len(sequence) < 3:
            raise ValueError(f"STEPS needs 3 context frames (AR(2)), got {len(sequence)}")
        db = self._to_db(sequence[-3:])
        if not (db[-1] >= 10.0 * np.log10(self.threshold)).any():        # no echo: nothing to forecast
            return np.zeros((members, n_lead) + sequence.shape[1:], np.uint8)
        velocity = self.motion(sequence)
        nowcast = pysteps.nowcasts.get_method("steps")
        out = nowcast(db, velocity, n_lead, n_ens_members=members, n_cascade_levels=self.n_cascade_levels,
                      precip_thr=10.0 * np.log10(self.threshold), kmperpixel=self.grid.pixel_m / 1000.0,
                      timestep=self.task.frame_minutes, seed=int(seed), num_workers=1)
        return self._from_db(np.asarray(out).reshape(members, n_lead, *sequence.shape[1:]))

    def forecast(self, context, n_lead: int) -> np.ndarray:
        """One STEPS member per context (seed 0): ``(B, 1, n_lead, H, W)`` bytes."""
        return self.predict(context, n_lead, 1, 0)[0]

    def predict(self, context, n_lead: int, members: int = 1, seed: int = 0, progress: bool = False) -> tuple:
        """``((B, members, n_lead, H, W) bytes, 0)``; context ``b`` uses pysteps seed ``seed + b``."""
        ctx = check_context(context)
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):                  # pysteps prints its settings
            return np.stack([self.ensemble(seq, n_lead, members, seed + b) for b, seq in enumerate(ctx)]), 0
