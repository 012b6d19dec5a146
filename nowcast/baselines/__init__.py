"""Forecasting methods that are not learned: the references a nowcaster must beat.

``persistence``
    Eulerian persistence (:class:`Persistence`).
``extrapolation`` (alias ``pysteps``)
    Lagrangian extrapolation with pysteps' Lucas–Kanade motion and semi-Lagrangian advection
    (:class:`Extrapolation`); also the first guess of residual diffusion models.
``steps``
    pysteps' STEPS ensemble nowcast (:class:`Steps`): the ensemble a generative nowcaster's
    members are compared with.

Every baseline is a :class:`~nowcast.nowcasters.Nowcaster` (``predict`` → ``(forecast, 0)``);
:func:`get_baseline` builds one by name, as pysteps' ``get_method`` does.
"""

from __future__ import annotations

from ..foundation.registry import lookup
from .base import Baseline, check_context
from .extrapolation import Extrapolation
from .persistence import Persistence
from .steps import Steps

__all__ = ["Baseline", "Persistence", "Extrapolation", "Steps", "BASELINES", "get_baseline", "check_context"]

#: Baselines by name (``pysteps`` is the name earlier models and reports use for ``extrapolation``).
BASELINES = {"persistence": Persistence, "extrapolation": Extrapolation, "pysteps": Extrapolation, "steps": Steps}


def get_baseline(name: str, **kwargs) -> Baseline:
    """A baseline nowcaster by name (``persistence``, ``extrapolation``).

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    """
    return lookup(BASELINES, "baseline", name)(**kwargs)
