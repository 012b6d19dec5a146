"""One resolver from a specification (:mod:`.specs`) to a :class:`~.protocol.Nowcaster`."""

from __future__ import annotations

import os

from ..baselines import get_baseline
from ..foundation.provenance import file_digest
from ..foundation.tasks import Grid, get_task
from .diffusion import DiffusionNowcaster
from .specs import SPEC_HELP, Spec, parse_spec

__all__ = ["resolve_nowcaster", "load_learned", "DEFAULT_STEPS"]

#: Steps of a hand-crafted or ancestral sampler when neither the spec nor the caller gives them.
DEFAULT_STEPS = {"solver": 5, "ancestral": 1000}


def resolve_nowcaster(spec: str | Spec, model=None, device="cpu", steps: int | None = None,
                      require_steps: bool = False, task: str = "sevirlr"):
    """The nowcaster a specification names.

    Parameters
    ----------
    spec : str or Spec
        What to build (``ddim:5``, ``spanlift``, ``spanlift:RUN_DIR``, ``ddpm``, ``persistence``, …).
    model : LoadedModel, str or path-like, optional
        The diffusion model (loaded here when a name or path is given); needed by every sampler,
        not by the baselines, which then take its task and grid.
    device : str or torch.device
        Where the model runs.
    steps : int, optional
        Steps of a hand-crafted or ancestral sampler whose spec does not give them (a learned
        solver refuses any other number than the one it was trained for).
    require_steps : bool
        Refuse a hand-crafted or ancestral spec without steps (``ddim`` instead of ``ddim:5``).
    task : str
        The task of a baseline when no model is given.

    Raises
    ------
    ValueError, FileNotFoundError
        For a bad spec, a missing model or solver, or a solver trained for another model.
    """
    s = parse_spec(spec) if isinstance(spec, str) else spec
    if s.kind == "baseline":
        return _baseline(s, model, task)
    if model is None:
        raise ValueError(f"{s.text!r}: model samplers need a model")
    if isinstance(model, (str, os.PathLike)):
        from ..models.model_files import load_model

        model = load_model(model, device)
    if s.kind == "learned":
        return _learned(s, model, device, steps)
    if s.steps is not None and steps is not None and s.steps != steps:
        raise ValueError(f"{s.text!r} and --steps {steps} disagree; give the steps once")
    n = s.steps if s.steps is not None else steps
    if n is None and require_steps:
        raise ValueError(f"{s.text!r}: expected {SPEC_HELP}")
    n = DEFAULT_STEPS[s.kind] if n is None else int(n)
    if n < 1:
        raise ValueError(f"--steps must be ≥ 1, got {n}")
    return DiffusionNowcaster(model, s.text, s.name, n, device=device)


def _baseline(s: Spec, model, task: str):
    if model is not None and not isinstance(model, (str, os.PathLike)):
        t = get_task(model.task)
        b = get_baseline(s.name, task=t, grid=Grid.sevir(t, model.frame_shape[0]))
    else:
        b = get_baseline(s.name, task=task)
    b.name = s.text
    return b


def load_learned(s: Spec, model, device="cpu") -> tuple:
    """``(solver, meta)`` of a learned spec for ``model``.

    ``spanlift`` without a path is the solver shipped with the default model (only for it);
    ``spanlift:default`` names it explicitly; otherwise the path is a run directory or file.

    Raises
    ------
    ValueError
        When the solver is of another kind or was trained for another model file.
    """
    from ..models.model_files import load_trained_solver

    where = s.path or "default"
    if s.path is None and not model.is_shipped_default:
        raise ValueError(f"--solver {s.name}: no {s.name} solver ships for model {model.path}; train one "
                         f"(python -m nowcast.train) and give --solver {s.name}:RUN_DIR, or use --solver ddim")
    solver, meta = load_trained_solver(where, device)
    if solver.name != s.name:
        raise ValueError(f"sampler {s.text!r}: {where} holds a {solver.name!r} solver")
    if model.path is not None and meta.get("model_sha256") not in (None, file_digest(model.path)):
        raise ValueError(f"sampler {s.text!r} was trained for another model ({meta.get('model')}); "
                         f"evaluate it with that model")
    return solver, meta


def _learned(s: Spec, model, device, steps: int | None) -> DiffusionNowcaster:
    solver, meta = load_learned(s, model, device)
    if steps is not None and steps != meta["steps"]:
        raise ValueError(f"--steps {steps}: this {s.name} solver was trained for {meta['steps']} steps")
    return DiffusionNowcaster(model, f"{s.name}:{s.path or 'default'}", solver, meta["steps"],
                              {"spacing": meta["spacing"], "afs": meta["afs"]}, device)
