"""The one student builder of endpoint teacher matching: DyWeight, or SpanLift on a base solver."""

from __future__ import annotations

import os

from ..solvers.registry import get_solver, load_learned_solver
from ..solvers.spanlift import SpanLift

__all__ = ["build_student", "load_base"]


def load_base(path: str | os.PathLike, steps: int | None = None, device="cpu", freeze: bool = True) -> tuple:
    """A trained solver to put SpanLift on: ``(solver, steps)``.

    Parameters
    ----------
    path : path-like
        Its ``solver.pt`` or run directory.
    steps : int, optional
        The steps the student must have; a solver trained for others is refused.
    freeze : bool
        Keep its parameters fixed while the operator trains.

    Raises
    ------
    ValueError, FileNotFoundError
        For a missing file, or one trained for other steps.
    """
    solver, meta = load_learned_solver(path, map_location=device)
    if steps is not None and meta["steps"] != steps:
        raise ValueError(f"{path} was trained for {meta['steps']} steps, not {steps}")
    if freeze:
        for p in solver.parameters():
            p.requires_grad_(False)
    return solver, meta["steps"]


def build_student(kind: str, steps: int, channels: int, base=None, sigma_data: float = 0.5, **operator):
    """The untrained student.

    Parameters
    ----------
    kind : {'dyweight', 'spanlift'}
        DyWeight (a weight table initialised to iPNDM) or SpanLift.
    steps : int
        Solver steps.
    channels : int
        Channels of the state (SpanLift's operator input).
    base : str or Solver, optional
        SpanLift's base: a registry name or a (trained) solver.
    sigma_data : float
        Data scale of SpanLift's input normalisation.
    **operator
        SpanLift's operator options (``hidden``, ``blocks``, ``history``, ``spatial_dims`` …).

    Raises
    ------
    ValueError
        For another kind.
    """
    if kind == "dyweight":
        return get_solver("dyweight", num_steps=steps)
    if kind != "spanlift":
        raise ValueError(f"unknown learned solver {kind!r}; choose spanlift or dyweight")
    base_solver = get_solver(base) if isinstance(base, str) else base
    return SpanLift(base_solver, num_steps=steps, channels=channels, sigma_data=sigma_data, **operator)
