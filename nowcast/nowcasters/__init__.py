"""Nowcasters: every forecasting method behind one protocol, one resolver and one scoring service.

* :class:`Nowcaster` — ``name``, ``task``, ``grid`` and ``predict(context, n_lead, members, seed)
  → (forecast, nfe)``; the diffusion model with any sampler (:class:`DiffusionNowcaster`) and every
  baseline (:mod:`nowcast.baselines`) implement it;
* :func:`resolve_nowcaster` — a specification (``ddim:5``, ``spanlift``, ``spanlift:RUN_DIR``,
  ``dyweight:RUN_DIR``, ``ddpm``, ``persistence``, ``extrapolation``) to a nowcaster;
* :func:`score_nowcasters` — their skill on the same windows of a store split.
"""

from .diffusion import DiffusionNowcaster
from .protocol import Nowcaster
from .resolve import resolve_nowcaster
from .scoring import evaluate_samplers, score_nowcasters, select_windows
from .specs import SPEC_HELP, Spec, parse_spec
from .tiling import predict_domain

__all__ = ["Nowcaster", "DiffusionNowcaster", "resolve_nowcaster", "score_nowcasters", "evaluate_samplers",
           "select_windows", "Spec", "parse_spec", "SPEC_HELP", "predict_domain"]
