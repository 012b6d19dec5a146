"""Solver registry, and saving/loading solvers as tensors plus the config that builds them.

Names (lower-case): ``euler`` (alias ``ddim``), ``heun``, ``dpm2``, ``ipndm``, ``dpmpp-2m``,
``dpmpp-3m``, ``unipc`` (alias ``unipc-bh2``), ``unipc-bh1``, ``dyweight``, ``spanlift``.

Files written by :func:`save_solver` hold only tensors, numbers and strings: they load with
``torch.load(weights_only=True)``, so loading never executes code from the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..foundation.files import atomic_save
from ..foundation.registry import lookup
from .core import Solver
from .dyweight import DyWeight
from .multistep import IPNDM, DPMSolverPP, UniPC
from .singlestep import DPM2, Euler, Heun
from .spanlift import SpanLift

__all__ = ["SOLVERS", "BASE_SOLVERS", "LEARNED_SOLVERS", "get_solver", "solver_from_config",
           "solver_to_config", "save_solver", "load_solver", "load_learned_solver", "solver_meta",
           "ANCESTRAL", "SolverSpec", "read_solver_spec", "parse_solver_spec"]

SOLVER_FORMAT = "nowcast.solver/1"


def _spanlift(base: Any = "ipndm", **kwargs) -> SpanLift:
    if isinstance(base, dict):
        base = solver_from_config(base)
    elif isinstance(base, str):
        base_kwargs = {"num_steps": kwargs["num_steps"]} if base == "dyweight" else {}
        base = get_solver(base, **base_kwargs)
    return SpanLift(base, **kwargs)


SOLVERS: dict[str, Callable[..., Solver]] = {
    "euler": Euler,
    "ddim": Euler,
    "heun": Heun,
    "dpm2": DPM2,
    "ipndm": IPNDM,
    "dpmpp-2m": lambda **kw: DPMSolverPP(order=2, **kw),
    "dpmpp-3m": lambda **kw: DPMSolverPP(order=3, **kw),
    "dpmpp": DPMSolverPP,
    "unipc": lambda **kw: UniPC(**{"variant": "bh2", **kw}),
    "unipc-bh2": lambda **kw: UniPC(variant="bh2", **kw),
    "unipc-bh1": lambda **kw: UniPC(variant="bh1", **kw),
    "dyweight": DyWeight,
    "spanlift": _spanlift,
}
BASE_SOLVERS = ("euler", "ddim", "heun", "dpm2", "ipndm", "dpmpp-2m", "dpmpp-3m", "unipc",
                "unipc-bh1", "unipc-bh2")
LEARNED_SOLVERS = ("dyweight", "spanlift")


def get_solver(name: str, **kwargs) -> Solver:
    """Build a solver by registry name.

    Parameters
    ----------
    name : str
        One of :data:`SOLVERS` (case-insensitive).
    **kwargs
        Constructor arguments (e.g. ``max_order`` for ipndm; ``num_steps`` for dyweight;
        ``base``, ``num_steps``, ``channels`` for spanlift).

    Raises
    ------
    ValueError
        For an unknown name, listing the available ones.
    """
    return lookup(SOLVERS, "solver", name)(**kwargs)


#: Samplers that are not ODE solvers: ancestral DDPM (:func:`~.ancestral.sample_ddpm`).
ANCESTRAL = ("ddpm",)


@dataclass(frozen=True)
class SolverSpec:
    """A sampler named as users write it: ``ddim``, ``ddim:5``, ``ddpm:1000``, ``spanlift``,
    ``spanlift:RUN_DIR``.

    Attributes
    ----------
    text : str
        As given.
    name : str
        Registry name (lower case), or ``ddpm``.
    steps : int or None
        Steps, when given (hand-crafted and ancestral samplers).
    path : str or None
        Where a learned solver is (a run directory or ``solver.pt``); ``None`` for a shipped one.
    """

    text: str
    name: str
    steps: int | None = None
    path: str | None = None

    @property
    def learned(self) -> bool:
        """A trained solver (runs the steps it was trained for)."""
        return self.name in LEARNED_SOLVERS

    @property
    def ancestral(self) -> bool:
        """Ancestral sampling rather than an ODE solver."""
        return self.name in ANCESTRAL


def read_solver_spec(text: str) -> SolverSpec:
    """Parse ``SOLVER``, ``SOLVER:STEPS`` or ``LEARNED[:RUN_DIR]``.

    Raises
    ------
    ValueError
        For an unknown solver or malformed steps, saying what is expected.
    """
    text = str(text)
    name, sep, rest = text.partition(":")
    name = name.lower()
    if name in LEARNED_SOLVERS:
        if rest.isdigit():
            raise ValueError(f"{text!r}: a learned solver is given by its run directory or file "
                             f"({name}:RUN_DIR) and runs the steps it was trained for")
        return SolverSpec(text, name, path=rest or None)
    if name not in ANCESTRAL and name not in SOLVERS:
        raise ValueError(f"{text!r}: unknown solver {name!r}; available: "
                         f"{[*ANCESTRAL, *sorted(n for n in SOLVERS if n not in LEARNED_SOLVERS)]} "
                         f"and the learned {list(LEARNED_SOLVERS)}")
    if sep and (not rest.isdigit() or int(rest) < 1):
        raise ValueError(f"{text!r}: expected SOLVER:STEPS with STEPS ≥ 1, e.g. ddim:100 or ipndm:5")
    return SolverSpec(text, name, int(rest) if sep else None)


def parse_solver_spec(text: str) -> tuple[str, int]:
    """``'ddim:100'`` → ``('ddim', 100)``: a hand-crafted solver and its number of steps.

    Raises
    ------
    ValueError
        For a malformed specification, an unknown solver, or one without steps.
    """
    spec = read_solver_spec(text)
    if spec.learned or spec.ancestral or spec.steps is None:
        raise ValueError(f"{text!r}: expected SOLVER:STEPS, e.g. ddim:100 or ipndm:5")
    return spec.name, spec.steps


def solver_to_config(solver: Solver) -> dict:
    """``{'name': …, **constructor kwargs}`` describing a solver."""
    return {"name": solver.name, **solver.config()}


def solver_from_config(config: dict) -> Solver:
    """Rebuild a solver from :func:`solver_to_config` output."""
    cfg = dict(config)
    return get_solver(cfg.pop("name"), **cfg)


def save_solver(path: str | os.PathLike, solver: Solver, meta: dict | None = None) -> Path:
    """Write a solver's config and tensors (atomically) to ``path``.

    Parameters
    ----------
    path : path-like
        Destination file (``.pt``).
    solver : Solver
        The solver to save.
    meta : dict, optional
        Extra JSON-like information (schedule, NFE, training record).
    """
    state = {k: v.detach().cpu() for k, v in solver.state_dict().items()}
    return atomic_save({"format": SOLVER_FORMAT, "config": solver_to_config(solver),
                        "state_dict": state, "meta": meta or {}}, path)


def load_solver(path: str | os.PathLike, map_location: str | torch.device = "cpu"):
    """Load a solver written by :func:`save_solver` (no code is executed).

    Returns
    -------
    tuple
        ``(solver, meta)``.

    Raises
    ------
    ValueError
        If the file is not a nowcast solver file.
    """
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, … for foreign or broken files
        raise ValueError(f"{path} is not a nowcast solver file (tensors and plain containers only): "
                         f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    if not isinstance(obj, dict) or obj.get("format") != SOLVER_FORMAT:
        raise ValueError(f"{path} is not a nowcast solver file (expected format {SOLVER_FORMAT!r})")
    solver = solver_from_config(obj["config"])
    solver.load_state_dict(obj["state_dict"])
    return solver, obj.get("meta", {})


#: What every learned solver's ``meta`` says (written by the nowcast ``spanlift`` stage and by the
#: image solver trainer): the task it was trained for (a nowcast task name, or ``image``), the steps
#: it runs, its NFE, whether the first step is analytic, and the σ grid's family. Older files lack
#: some of these; :func:`solver_meta` fills them with what those files meant.
SOLVER_META_DEFAULTS = {"spacing": "leading", "afs": False}


def solver_meta(meta: dict, path: str | os.PathLike = "") -> dict:
    """A learned solver's metadata in the one schema (see :data:`SOLVER_META_DEFAULTS`).

    Raises
    ------
    ValueError
        When the metadata does not say the steps the solver was trained for.
    """
    if "steps" not in meta:
        raise ValueError(f"{path} is a solver file without the metadata of a trained solver (steps, task); "
                         "train one with `python -m nowcast.train --stage spanlift` or "
                         "`python -m nowcast.imagegen train-solver`")
    out = {**SOLVER_META_DEFAULTS, **meta}
    out["steps"], out["afs"] = int(out["steps"]), bool(out["afs"])
    return out


def load_learned_solver(path: str | os.PathLike, task: str | None = None,
                        map_location: str | torch.device = "cpu") -> tuple:
    """A trained solver from its file or run directory (``RUN_DIR/solver.pt``), in eval mode.

    Parameters
    ----------
    path : path-like
        A ``solver.pt`` file or the run directory holding it.
    task : str, optional
        The task it must have been trained for (``image``; a nowcast task name).
    map_location : str or torch.device
        Where its tensors go.

    Returns
    -------
    tuple
        ``(solver, meta)`` with ``meta`` in the schema of :func:`solver_meta`.

    Raises
    ------
    FileNotFoundError
        For a missing file.
    ValueError
        For a file that is not a trained solver (of that task).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "solver.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no learned solver at {path}")
    solver, meta = load_solver(path, map_location)
    meta = solver_meta(meta, path)
    if task is not None and (meta.get("task") == "image") != (task == "image"):
        raise ValueError(f"{path}: a solver trained for {meta.get('task')!r}, not for {task!r}")
    return solver.to(map_location).eval(), meta

