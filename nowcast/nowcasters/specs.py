"""Nowcaster specifications: the strings users write to choose a forecasting method.

* ``ddim:5``, ``ipndm:4``, ``unipc``, … — a hand-crafted solver of the core with that many steps;
* ``ddpm`` or ``ddpm:1000`` — ancestral DDPM (the reference);
* ``spanlift``, ``spanlift:default`` — the learned solver shipped with the default model;
  ``spanlift:RUN_DIR``, ``dyweight:RUN_DIR`` (or a ``solver.pt`` file) — one trained by
  ``python -m nowcast.train``, with the steps it was trained for;
* ``persistence``, ``extrapolation`` (alias ``pysteps``) — the baselines.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..baselines import BASELINES
from ..solvers.registry import LEARNED_SOLVERS, SOLVERS

__all__ = ["Spec", "parse_spec", "SPEC_HELP"]

#: One line listing every form, for help texts and errors.
SPEC_HELP = ("SOLVER:STEPS (e.g. ddim:100, ipndm:5), ddpm[:STEPS], spanlift (the shipped one), "
             "spanlift:RUN_DIR or dyweight:RUN_DIR (trained with python -m nowcast.train), persistence, extrapolation")


@dataclass(frozen=True)
class Spec:
    """A parsed specification.

    Attributes
    ----------
    text : str
        As given.
    kind : str
        ``solver`` (hand-crafted), ``ancestral`` (DDPM), ``learned`` or ``baseline``.
    name : str
        Solver or baseline name (lower case).
    steps : int or None
        Steps of a hand-crafted or ancestral sampler (``None``: not given).
    path : str or None
        Where a learned solver is (``None``: the shipped one).
    """

    text: str
    kind: str
    name: str
    steps: int | None = None
    path: str | None = None


def parse_spec(text: str) -> Spec:
    """Parse a specification (see the module docstring).

    Raises
    ------
    ValueError
        For an unknown name or malformed steps, saying what is expected.
    """
    text = str(text)
    name, sep, rest = text.partition(":")
    name = name.lower()
    if name in BASELINES and not sep:
        return Spec(text, "baseline", name)
    if name in LEARNED_SOLVERS:
        if rest.isdigit():
            raise ValueError(f"{text!r}: a learned solver is given by its run directory or file "
                             f"({name}:RUN_DIR) and runs the steps it was trained for")
        return Spec(text, "learned", name, path=rest or None)
    if name != "ddpm" and name not in SOLVERS:
        raise ValueError(f"{text!r}: unknown solver {name!r}; available: "
                         f"{['ddpm', *sorted(n for n in SOLVERS if n not in LEARNED_SOLVERS)]}, "
                         f"{list(LEARNED_SOLVERS)} and the baselines {sorted(BASELINES)}")
    if sep and (not rest.isdigit() or int(rest) < 1):
        raise ValueError(f"{text!r}: expected {SPEC_HELP}")
    return Spec(text, "ancestral" if name == "ddpm" else "solver", name, int(rest) if sep else None)
