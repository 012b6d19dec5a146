"""Skill of nowcasters on a store split: every nowcaster forecasts the same windows with the same
member seeds and is scored in one pass (:class:`~nowcast.verification.accumulate.EvaluationAccumulator`).

The result, per nowcaster, is an xarray Dataset over threshold × scale × lead time with the NFE per
forecast, the steps, the wall time and the numbers of windows and members in its attributes;
:mod:`nowcast.verification.report` turns it into tables and JSON.
"""

from __future__ import annotations

import time

import numpy as np

from ..data.windows import WindowDataset
from ..verification.accumulate import EvaluationAccumulator
from .resolve import resolve_nowcaster

__all__ = ["select_windows", "window_bytes", "score_nowcasters", "evaluate_samplers"]


def select_windows(store: str, task: str, split: str, n: int | None) -> tuple:
    """The split's windows (all, or ``n`` evenly spaced ones): ``(dataset, indices)``."""
    ds = WindowDataset(store, task, split)
    if n is None or n >= len(ds):
        return ds, np.arange(len(ds))
    if n < 1:
        raise ValueError(f"need at least one window, got {n}")
    return ds, np.unique(np.linspace(0, len(ds) - 1, n).round().astype(int))


def window_bytes(ds: WindowDataset, index: int) -> np.ndarray:
    """The window's stored bytes (255 = missing kept): ``x`` is exactly byte/255."""
    return np.rint(ds[int(index)]["x"][:, 0].numpy() * 255.0).astype(np.uint8)


def score_nowcasters(nowcasters, store: str, split: str = "test", windows: int | None = None, members: int = 4,
                     seed: int = 0, batch: int = 4, progress: bool = True, ensemble_mean: bool = False) -> dict:
    """Score nowcasters on the same windows of a store split.

    Parameters
    ----------
    nowcasters : sequence of Nowcaster
        What to score (all of one task).
    store, split : str
        The data.
    windows : int, optional
        Evenly spaced subset of the split's windows (default: all).
    members : int
        Ensemble members per context (member ``m`` uses seed ``seed + m``; deterministic
        baselines give one member).
    batch : int
        Contexts per ``predict`` call.
    ensemble_mean : bool
        Also score the ensemble mean of every sampled nowcaster (categorical scores and FSS of the
        mean field, as in PreDiff's App. D.2; the continuous scores are the ensemble's), from the
        same forecasts, under the key ``"<name> mean"``.

    Returns
    -------
    dict
        Name → xarray Dataset with attributes ``nfe``, ``steps``, ``wall_s``, ``s_per_forecast``,
        ``n_windows``, ``n_members`` (the members scored: 1 for a deterministic baseline, whatever
        ``members`` is), ``sampler`` and ``categorical`` (``members`` or ``mean``).
    """
    tasks = {n.task for n in nowcasters}
    if len(tasks) != 1:
        raise ValueError(f"nowcasters of different tasks cannot be scored together: {sorted(t.name for t in tasks)}")
    t = tasks.pop()
    ds, idx = select_windows(store, t.name, split, windows)
    warm = next((n for n in nowcasters if hasattr(n, "warm_up")), None)
    if warm is not None:
        warm.warm_up()
    return {k: v for n in nowcasters
            for k, v in _score_one(n, ds, idx, members, seed, batch, progress, ensemble_mean).items()}


def _score_one(nowcaster, ds, idx, members, seed, batch, progress, ensemble_mean) -> dict:
    from tqdm.auto import tqdm

    t = nowcaster.task
    sampled = hasattr(nowcaster, "steps")
    modes = ("members", "mean") if ensemble_mean and sampled else ("members",)
    leads = [t.frame_minutes * (i + 1) for i in range(t.out_len)]
    accs = [EvaluationAccumulator(t.out_len, lead_times=leads, lpips="auto" if mode == "members" else None,
                                  seed=seed, categorical=mode) for mode in modes]
    wall, nfe = 0.0, 0
    bar = tqdm(total=len(idx), desc=nowcaster.name, unit="window", disable=not progress)
    for start in range(0, len(idx), batch):
        data = np.stack([window_bytes(ds, i) for i in idx[start:start + batch]])
        context, target = data[:, :t.in_len], data[:, t.in_len:]
        t0 = time.perf_counter()
        pred, nfe = nowcaster.predict(context, t.out_len, members, seed)
        wall += time.perf_counter() - t0
        for acc in accs:
            acc.update(pred, target)
        bar.update(len(data))
    bar.close()
    out = {}
    for mode, acc in zip(modes, accs):
        res = acc.result()
        # n_members stays the accumulator's: the members actually scored (1 for a deterministic baseline)
        res.attrs.update(sampler=nowcaster.name, nfe=int(nfe), steps=int(getattr(nowcaster, "steps", 0)), wall_s=wall,
                         n_windows=len(idx), s_per_forecast=wall / len(idx))
        out[nowcaster.name if mode == "members" else f"{nowcaster.name} mean"] = res
    return out


def evaluate_samplers(specs, store: str, task: str = "sevirlr", split: str = "test", model=None,
                      windows: int | None = None, members: int = 4, seed: int = 0, batch: int = 4,
                      device="cpu", progress: bool = True, ensemble_mean: bool = False) -> dict:
    """:func:`score_nowcasters` of specifications (``ddim:100``, ``spanlift:RUN_DIR``, ``persistence``, …)
    resolved with ``model`` (see :func:`~.resolve.resolve_nowcaster`; samplers need their steps).

    Raises
    ------
    ValueError
        For a bad specification, or samplers without a model.
    """
    nowcasters = [resolve_nowcaster(s, model, device, require_steps=True, task=task) for s in specs]
    return score_nowcasters(nowcasters, store, split, windows, members, seed, batch, progress, ensemble_mean)
