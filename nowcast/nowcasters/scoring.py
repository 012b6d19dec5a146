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

__all__ = ["select_windows", "window_bytes", "score_nowcasters", "choose_levels", "evaluate_samplers", "VIEW_SUFFIX"]


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


VIEW_SUFFIX = {"members": "", "mean": "+mean", "pm": "+pm", "probability": "+prob"}


def score_nowcasters(nowcasters, store: str, split: str = "test", windows: int | None = None, members: int = 4,
                     seed: int = 0, batch: int = 4, progress: bool = True, views=("members",), levels=None,
                     level_split: str = "val", level_windows: int | None = None) -> dict:
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
    views : sequence of {'members', 'mean', 'pm', 'probability'}
        Which fields of an ensemble the categorical scores judge, each from the same forecasts (see
        :mod:`nowcast.verification.accumulate`): its members (always scored), its ensemble mean, its
        probability-matched mean, its exceedance probabilities turned into yes/no at a level per
        threshold. A deterministic forecast (one member) is scored as it is.
    levels : dict, optional
        Nowcaster name → one probability level per threshold for the ``probability`` view; a
        nowcaster without one gets the levels that maximise its CSI (pixel scale, pooled over lead
        times) on ``level_windows`` windows of ``level_split`` (not the scored split).

    Returns
    -------
    dict
        Name (with ``+mean``, ``+pm``, ``+prob`` for the other views) → xarray Dataset with
        attributes ``nfe``, ``steps``, ``wall_s``, ``s_per_forecast``, ``n_windows``, ``n_members``
        (the members scored: 1 for a deterministic baseline, whatever ``members`` is), ``sampler``
        and ``categorical`` (the view); the ``probability`` view also has ``levels`` and the split
        they were chosen on.
    """
    from ..verification.accumulate import VIEWS

    bad = [v for v in views if v not in VIEWS]
    if bad:
        raise ValueError(f"unknown views {bad}; choose from {list(VIEWS)}")
    views = ("members",) + tuple(v for v in views if v != "members")
    tasks = {n.task for n in nowcasters}
    if len(tasks) != 1:
        raise ValueError(f"nowcasters of different tasks cannot be scored together: {sorted(t.name for t in tasks)}")
    t = tasks.pop()
    ds, idx = select_windows(store, t.name, split, windows)
    warm = next((n for n in nowcasters if hasattr(n, "warm_up")), None)
    if warm is not None:
        warm.warm_up()
    levels = dict(levels or {})
    out = {}
    for n in nowcasters:
        if "probability" in views and n.name not in levels and members > 1:
            levels[n.name] = choose_levels(n, store, level_split, level_windows, members, seed, batch, progress)
        out.update(_score_one(n, ds, idx, members, seed, batch, progress, views, levels.get(n.name)))
    return out


def choose_levels(nowcaster, store: str, split: str = "val", windows: int | None = None, members: int = 4,
                  seed: int = 0, batch: int = 4, progress: bool = True) -> dict:
    """Per threshold, the probability level whose yes/no forecast has the best CSI on a split.

    Returns
    -------
    dict
        ``levels`` (tuple, one per threshold; 1.0 where no level has a CSI), ``csi`` (their CSI,
        pixel scale, pooled over lead times), ``split`` and ``n_windows``.
    """
    from ..verification.ensemble import best_probability_level

    ds, idx = select_windows(store, nowcaster.task.name, split, windows)
    res = _score_one(nowcaster, ds, idx, members, seed, batch, progress, ("members",), None,
                     desc=f"{nowcaster.name}: probability levels on {split}")[nowcaster.name]
    n_k = res.probability_forecasts.sum("lead_time").values
    o_k = res.probability_events.sum("lead_time").values
    best = [best_probability_level(n, o) for n, o in zip(n_k, o_k)]
    return {"levels": tuple(1.0 if not np.isfinite(lv) else lv for lv, _ in best),
            "csi": tuple(c for _, c in best), "split": split, "n_windows": len(idx)}


def _score_one(nowcaster, ds, idx, members, seed, batch, progress, views, levels, desc=None) -> dict:
    from tqdm.auto import tqdm

    t = nowcaster.task
    leads = [t.frame_minutes * (i + 1) for i in range(t.out_len)]
    accs, wall, nfe = None, 0.0, 0
    bar = tqdm(total=len(idx), desc=desc or nowcaster.name, unit="window", disable=not progress)
    for start in range(0, len(idx), batch):
        data = np.stack([window_bytes(ds, i) for i in idx[start:start + batch]])
        context, target = data[:, :t.in_len], data[:, t.in_len:]
        t0 = time.perf_counter()
        pred, nfe = nowcaster.predict(context, t.out_len, members, seed)
        wall += time.perf_counter() - t0
        if accs is None:
            ensemble = np.ndim(pred) == 5 and np.shape(pred)[1] > 1
            accs = {v: _accumulator(v, leads, seed, levels) for v in (views if ensemble else ("members",))
                    if v != "probability" or levels is not None}
        for acc in accs.values():
            acc.update(pred, target)
        bar.update(len(data))
    bar.close()
    out = {}
    for view, acc in accs.items():
        res = acc.result()
        # n_members stays the accumulator's: the members actually scored (1 for a deterministic baseline)
        res.attrs.update(sampler=nowcaster.name, nfe=int(nfe), steps=int(getattr(nowcaster, "steps", 0)), wall_s=wall,
                         n_windows=len(idx), s_per_forecast=wall / len(idx))
        if view == "probability":
            res.attrs.update(levels_split=levels["split"], levels_windows=levels["n_windows"],
                             levels_csi=[float(c) for c in levels["csi"]])
        out[nowcaster.name + VIEW_SUFFIX[view]] = res
    return out


def _accumulator(view, leads, seed, levels) -> EvaluationAccumulator:
    members = view == "members"
    return EvaluationAccumulator(len(leads), lead_times=leads, lpips="auto" if members else None, seed=seed,
                                 categorical=view, ensemble_scores=members,
                                 levels=levels["levels"] if view == "probability" else None)


def evaluate_samplers(specs, store: str, task: str = "sevirlr", split: str = "test", model=None,
                      windows: int | None = None, members: int = 4, seed: int = 0, batch: int = 4,
                      device="cpu", progress: bool = True, views=("members",)) -> dict:
    """:func:`score_nowcasters` of specifications (``ddim:100``, ``spanlift:RUN_DIR``, ``persistence``, …)
    resolved with ``model`` (see :func:`~.resolve.resolve_nowcaster`; samplers need their steps).

    Raises
    ------
    ValueError
        For a bad specification, or samplers without a model.
    """
    nowcasters = [resolve_nowcaster(s, model, device, require_steps=True, task=task) for s in specs]
    return score_nowcasters(nowcasters, store, split, windows, members, seed, batch, progress, views)
