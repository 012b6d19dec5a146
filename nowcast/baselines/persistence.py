"""Eulerian persistence: the last observed frame, repeated."""

from __future__ import annotations

import numpy as np

from .base import Baseline, check_context

__all__ = ["Persistence"]


class Persistence(Baseline):
    """Eulerian persistence: every lead time repeats the last context frame."""

    name = "persistence"

    def forecast(self, context, n_lead: int) -> np.ndarray:
        """Repeat the last frame ``n_lead`` times: ``(B, 1, n_lead, H, W)`` bytes."""
        ctx = check_context(context)
        return np.repeat(ctx[:, -1][:, None, None], n_lead, axis=2)
