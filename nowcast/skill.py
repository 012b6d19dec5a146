"""Skill of a nowcaster's samplers and of baselines on a store split, scored in one pass each.

Sampler specifications (strings):

* ``ddpm:1000`` — ancestral DDPM with that many steps (the reference);
* ``ddim:100``, ``euler:10``, ``ipndm:5``, … — any solver of the core with that many steps;
* ``persistence``, ``pysteps`` — the baselines of :mod:`nowcast.verification.baselines`.

:func:`evaluate_samplers` runs each sampler over the same windows with the same member seeds and
returns, per sampler, the :class:`~nowcast.verification.evaluation.EvaluationAccumulator` result
(an xarray Dataset over threshold × scale × lead time) with the NFE per forecast, the wall time
and the numbers of windows and members in its attributes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .data.codec import MISSING, from_unit
from .data.windows import WindowDataset, get_task
from .verification.baselines import get_baseline
from .verification.evaluation import EvaluationAccumulator

__all__ = ["SamplerSpec", "parse_sampler", "select_windows", "evaluate_samplers"]

BASELINES = ("persistence", "pysteps")


@dataclass(frozen=True)
class SamplerSpec:
    """A parsed sampler specification: ``kind`` (``model`` or ``baseline``), ``name``, ``steps``."""

    text: str
    kind: str
    name: str
    steps: int = 0


def parse_sampler(text: str) -> SamplerSpec:
    """Parse ``solver:steps`` or a baseline name.

    Raises
    ------
    ValueError
        For a malformed specification or an unknown solver/baseline.
    """
    from .solvers.registry import SOLVERS

    if text in BASELINES:
        return SamplerSpec(text, "baseline", text)
    name, _, steps = text.partition(":")
    if not steps.isdigit() or int(steps) < 1:
        raise ValueError(f"sampler {text!r}: expected SOLVER:STEPS (e.g. ddim:100, ddpm:1000) or one of {list(BASELINES)}")
    if name != "ddpm" and name not in SOLVERS:
        raise ValueError(f"sampler {text!r}: unknown solver {name!r}; available: ['ddpm', {', '.join(map(repr, sorted(SOLVERS)))}]")
    return SamplerSpec(text, "model", name, int(steps))


def select_windows(store: str, task: str, split: str, n: int | None) -> tuple:
    """The split's windows (all, or ``n`` evenly spaced ones): ``(dataset, indices)``."""
    ds = WindowDataset(store, task, split)
    if n is None or n >= len(ds):
        return ds, np.arange(len(ds))
    if n < 1:
        raise ValueError(f"need at least one window, got {n}")
    return ds, np.unique(np.linspace(0, len(ds) - 1, n).round().astype(int))


def _window_bytes(ds: WindowDataset, index: int) -> np.ndarray:
    """The window's stored bytes (255 = missing kept): ``x`` is exactly byte/255."""
    return np.rint(ds[int(index)]["x"][:, 0].numpy() * 255.0).astype(np.uint8)


def _model_forecast(ldm, spec: SamplerSpec, context: np.ndarray, seeds, device, calls: list) -> np.ndarray:
    x = torch.from_numpy(np.where(context == MISSING, 0, context).astype(np.float32) / 255.0).to(device)
    solver = "ddpm" if spec.name == "ddpm" else spec.name
    before = calls[0]
    out = ldm.forecast(x, seeds=seeds, solver=solver, steps=spec.steps)
    calls[1] = calls[0] - before
    return from_unit(out.cpu().numpy())              # 0–254: a forecast pixel is never 'missing


def evaluate_samplers(samplers, store: str, task: str = "sevirlr", split: str = "test", model=None,
                      windows: int | None = None, members: int = 4, seed: int = 0, batch: int = 4,
                      device: str | torch.device = "cpu", progress: bool = True) -> dict:
    """Score samplers and baselines on the same windows.

    Parameters
    ----------
    samplers : sequence of str or SamplerSpec
        What to evaluate (see the module docstring).
    store, task, split : str
        The data.
    model : nowcast.models.pretrained.LoadedModel, optional
        Needed by model samplers.
    windows : int, optional
        Evenly spaced subset of the split's windows (default: all).
    members : int
        Ensemble members per context (member ``m`` uses seed ``seed + m``; baselines that are
        deterministic give identical members).
    batch : int
        Contexts per model call (each with all its members).

    Returns
    -------
    dict
        Sampler text → xarray Dataset with attributes ``nfe``, ``wall_s``, ``n_windows``,
        ``n_members``, ``sampler``.
    """
    from tqdm.auto import tqdm

    specs = [s if isinstance(s, SamplerSpec) else parse_sampler(s) for s in samplers]
    if any(s.kind == "model" for s in specs) and model is None:
        raise ValueError("model samplers need a model")
    t = get_task(task)
    ds, idx = select_windows(store, task, split, windows)
    seeds = [seed + m for m in range(members)]
    calls = [0, 0]
    hook = None
    if model is not None:
        model.ldm.to(device).eval()
        hook = model.ldm.unet.register_forward_hook(lambda *a: calls.__setitem__(0, calls[0] + 1))
    results = {}
    try:
        for spec in specs:
            acc = EvaluationAccumulator(t.out_len, lead_times=[t.frame_minutes * (i + 1) for i in range(t.out_len)],
                                        lpips="auto", seed=seed)
            base = get_baseline(spec.name) if spec.kind == "baseline" else None
            wall, nfe = 0.0, 0
            bar = tqdm(total=len(idx), desc=spec.text, unit="window", disable=not progress)
            for start in range(0, len(idx), batch):
                data = np.stack([_window_bytes(ds, i) for i in idx[start:start + batch]])
                context, target = data[:, :t.in_len], data[:, t.in_len:]
                t0 = time.perf_counter()
                if base is not None:
                    pred = base.predict(context, t.out_len, members, seed)
                else:
                    pred = _model_forecast(model.ldm, spec, context, seeds, device, calls)
                    nfe = calls[1]
                wall += time.perf_counter() - t0
                acc.update(pred, target)
                bar.update(len(data))
            bar.close()
            res = acc.result()
            res.attrs.update(sampler=spec.text, nfe=int(nfe), wall_s=wall, n_windows=len(idx), n_members=members,
                             s_per_forecast=wall / len(idx))
            results[spec.text] = res
    finally:
        if hook is not None:
            hook.remove()
    return results
