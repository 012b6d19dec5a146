"""Nowcaster specifications: the strings users write to choose a forecasting method.

* ``ddim:5``, ``ipndm:4``, ``unipc``, … — a hand-crafted solver of the core with that many steps;
* ``ddpm`` or ``ddpm:1000`` — ancestral DDPM (the reference);
* ``spanlift``, ``spanlift:default`` — the learned solver shipped with the default model;
  ``spanlift:RUN_DIR``, ``dyweight:RUN_DIR`` (or a ``solver.pt`` file) — one trained by
  ``python -m nowcast.train``, with the steps it was trained for;
* ``persistence``, ``extrapolation`` (alias ``pysteps``), ``steps`` (pysteps' STEPS ensemble) — the baselines.

The sampler grammar is the solver core's (:func:`nowcast.solvers.registry.read_solver_spec`);
this module adds the baselines.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..baselines import BASELINES
from ..solvers.registry import SolverSpec, read_solver_spec

__all__ = ["Spec", "parse_spec", "SPEC_HELP"]

#: One line listing every form, for help texts and errors.
SPEC_HELP = ("SOLVER:STEPS (e.g. ddim:100, ipndm:5), ddpm[:STEPS], spanlift (the shipped one), "
             "spanlift:RUN_DIR or dyweight:RUN_DIR (trained with python -m nowcast.train), persistence, extrapolation, "
             "steps")


@dataclass(frozen=True)
class Spec(SolverSpec):
    """A parsed specification: a :class:`~nowcast.solvers.registry.SolverSpec` and its ``kind``,
    ``solver`` (hand-crafted), ``ancestral`` (DDPM), ``learned`` or ``baseline``."""

    kind: str = "solver"


def parse_spec(text: str) -> Spec:
    """Parse a specification (see the module docstring).

    Raises
    ------
    ValueError
        For an unknown name or malformed steps, saying what is expected.
    """
    text = str(text)
    if text.lower() in BASELINES:
        return Spec(text, text.lower(), kind="baseline")
    try:
        s = read_solver_spec(text)
    except ValueError as err:
        raise ValueError(f"{err}; or a baseline: {sorted(BASELINES)}") from None
    kind = "learned" if s.learned else "ancestral" if s.ancestral else "solver"
    return Spec(text, s.name, s.steps, s.path, kind)
