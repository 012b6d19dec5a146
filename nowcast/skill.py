"""Skill of a nowcaster's samplers and of baselines on a store split, scored in one pass each.

Sampler specifications (strings):

* ``ddpm:1000`` — ancestral DDPM with that many steps (the reference);
* ``ddim:100``, ``euler:10``, ``ipndm:5``, … — any solver of the core with that many steps;
* ``spanlift:RUN_DIR``, ``dyweight:FILE``, ``spanlift:default`` — a learned solver trained by
  ``python -m nowcast.train`` (a run directory holding ``solver.pt``, the file, or a shipped name),
  with the steps it was trained for;
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

__all__ = ["SamplerSpec", "parse_sampler", "select_windows", "evaluate_samplers", "load_learned",
           "combine_results", "summary_json", "sampler_table"]

BASELINES = ("persistence", "pysteps")


@dataclass(frozen=True)
class SamplerSpec:
    """A parsed sampler specification: ``kind`` (``model``, ``learned`` or ``baseline``), ``name``,
    ``steps`` and, for a learned solver, ``path`` (what it was given as)."""

    text: str
    kind: str
    name: str
    steps: int = 0
    path: str = ""


def parse_sampler(text: str) -> SamplerSpec:
    """Parse ``solver:steps`` or a baseline name.

    Raises
    ------
    ValueError
        For a malformed specification or an unknown solver/baseline.
    """
    from .solvers.registry import LEARNED_SOLVERS, SOLVERS

    if text in BASELINES:
        return SamplerSpec(text, "baseline", text)
    name, _, steps = text.partition(":")
    if name in LEARNED_SOLVERS and steps and not steps.isdigit():
        return SamplerSpec(text, "learned", name, path=steps)
    if not steps.isdigit() or int(steps) < 1:
        raise ValueError(f"sampler {text!r}: expected SOLVER:STEPS (e.g. ddim:100, ddpm:1000), "
                         f"LEARNED:RUN_DIR (e.g. spanlift:runs/00003-spanlift-ddim5-mse-teacher) "
                         f"or one of {list(BASELINES)}")
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


def load_learned(spec: SamplerSpec, model, device) -> tuple:
    """The solver of a ``learned`` spec and its keyword arguments for sampling; refuses a solver
    trained for another model file."""
    from .models.pretrained import load_trained_solver
    from .checkpoints import file_digest

    solver, meta = load_trained_solver(spec.path, device)
    if solver.name != spec.name:
        raise ValueError(f"sampler {spec.text!r}: {spec.path} holds a {solver.name!r} solver")
    if model.path is not None and meta.get("model_sha256") not in (None, file_digest(model.path)):
        raise ValueError(f"sampler {spec.text!r} was trained for another model ({meta.get('model')}); "
                         f"evaluate it with that model")
    return solver, {"steps": int(meta["steps"]), "spacing": meta.get("spacing", "leading"),
                    "afs": bool(meta.get("afs", False))}


def _model_forecast(ldm, spec: SamplerSpec, context: np.ndarray, seeds, device, calls: list,
                    learned: tuple | None = None) -> np.ndarray:
    x = torch.from_numpy(np.where(context == MISSING, 0, context).astype(np.float32) / 255.0).to(device)
    before = calls[0]
    if learned is not None:
        out = ldm.forecast(x, seeds=seeds, solver=learned[0], **learned[1])
    else:
        out = ldm.forecast(x, seeds=seeds, solver=spec.name, steps=spec.steps)
    calls[1] = calls[0] - before
    return from_unit(out.cpu().numpy())              # 0–254: a forecast pixel is never 'missing


def evaluate_samplers(samplers, store: str, task: str = "sevirlr", split: str = "test", model=None,
                      windows: int | None = None, members: int = 4, seed: int = 0, batch: int = 4,
                      device: str | torch.device = "cpu", progress: bool = True,
                      ensemble_mean: bool = False) -> dict:
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
    ensemble_mean : bool
        Also score the ensemble mean of every model sampler (categorical scores and FSS of the
        mean field, as in PreDiff's App. D.2; the continuous scores are the ensemble's), from the
        same forecasts, under the key ``"<sampler> mean"``.

    Returns
    -------
    dict
        Sampler text → xarray Dataset with attributes ``nfe``, ``wall_s``, ``n_windows``,
        ``n_members``, ``sampler`` and ``categorical`` (``members`` or ``mean``).
    """
    from tqdm.auto import tqdm

    specs = [s if isinstance(s, SamplerSpec) else parse_sampler(s) for s in samplers]
    if any(s.kind != "baseline" for s in specs) and model is None:
        raise ValueError("model samplers need a model")
    t = get_task(task)
    ds, idx = select_windows(store, task, split, windows)
    seeds = [seed + m for m in range(members)]
    calls = [0, 0]
    hook = None
    if model is not None:
        model.ldm.to(device).eval()
        with torch.no_grad():         # one-time set-up costs (kernels, allocator) stay out of the timings
            model.ldm.forecast(torch.zeros((1, t.in_len, *ds[0]["x"].shape[-2:]), device=device), seeds=[0],
                               solver="ddim", steps=1)
        hook = model.ldm.unet.register_forward_hook(lambda *a: calls.__setitem__(0, calls[0] + 1))
    results = {}
    try:
        for spec in specs:
            modes = ("members", "mean") if ensemble_mean and spec.kind != "baseline" else ("members",)
            accs = [EvaluationAccumulator(t.out_len, lead_times=[t.frame_minutes * (i + 1) for i in range(t.out_len)],
                                          lpips="auto" if mode == "members" else None, seed=seed, categorical=mode)
                    for mode in modes]
            base = get_baseline(spec.name) if spec.kind == "baseline" else None
            learned = load_learned(spec, model, device) if spec.kind == "learned" else None
            wall, nfe = 0.0, 0
            bar = tqdm(total=len(idx), desc=spec.text, unit="window", disable=not progress)
            for start in range(0, len(idx), batch):
                data = np.stack([_window_bytes(ds, i) for i in idx[start:start + batch]])
                context, target = data[:, :t.in_len], data[:, t.in_len:]
                t0 = time.perf_counter()
                if base is not None:
                    pred = base.predict(context, t.out_len, members, seed)
                else:
                    pred = _model_forecast(model.ldm, spec, context, seeds, device, calls, learned)
                    nfe = calls[1]
                wall += time.perf_counter() - t0
                for acc in accs:
                    acc.update(pred, target)
                bar.update(len(data))
            bar.close()
            steps = learned[1]["steps"] if learned else spec.steps
            for mode, acc in zip(modes, accs):
                res = acc.result()
                res.attrs.update(sampler=spec.text, nfe=int(nfe), steps=int(steps), wall_s=wall, n_windows=len(idx),
                                 n_members=members, s_per_forecast=wall / len(idx))
                results[spec.text if mode == "members" else f"{spec.text} mean"] = res
    finally:
        if hook is not None:
            hook.remove()
    return results


_COST = ("nfe", "steps", "wall_s", "s_per_forecast")


def combine_results(results: dict):
    """One ``xarray.Dataset`` with a ``sampler`` dimension (cost attributes become variables)."""
    import xarray as xr

    parts = []
    for name, ds in results.items():
        d = ds.copy()
        for key in _COST:
            d[key] = float(ds.attrs.get(key, np.nan))
        d.attrs = {k: v for k, v in ds.attrs.items() if k not in _COST + ("sampler",)}
        parts.append(d.expand_dims(sampler=[name]))
    return xr.concat(parts, dim="sampler", join="outer", combine_attrs="drop_conflicts")


def _clean(v):
    v = float(v)
    return v if np.isfinite(v) else None


def summary_json(results: dict) -> dict:
    """Per sampler: cost, scores pooled over lead times and per lead time (JSON-ready)."""
    from .verification.evaluation import summarize

    out = {}
    for name, ds in results.items():
        sm = summarize(ds)
        thr = [int(t) for t in ds.threshold.values]
        scales = [int(s) for s in ds.scale.values]
        pooled = {f"CSI_M_pool{s}" if s > 1 else "CSI_M": _clean(sm.CSI_M.sel(scale=s)) for s in scales}
        for score in ("CSI", "POD", "FAR", "BIAS", "HSS"):
            pooled[score] = {f"pool{s}" if s > 1 else "pixel": {str(t): _clean(sm[score].sel(threshold=t, scale=s))
                                                                for t in thr} for s in scales}
        pooled["HSS_M"] = _clean(np.nanmean(sm.HSS.sel(scale=scales[0]).values))
        for score in ("CRPS", "MAE", "RMSE", "spread_skill"):
            if score in sm:
                pooled[score] = _clean(sm[score])
        if "FSS" in ds:
            pooled["FSS_mean"] = {str(s): _clean(np.nanmean(ds.FSS.sel(scale=s).values)) for s in scales}
        pooled["LPIPS"] = _clean(sm.LPIPS) if "LPIPS" in sm else None
        lead = {"lead_time_min": [float(v) for v in ds.lead_time.values],
                "CSI_M": {str(s): [_clean(v) for v in ds.CSI_M.sel(scale=s).values] for s in scales},
                "HSS_M": [_clean(np.nanmean(ds.HSS.sel(scale=scales[0]).isel(lead_time=i).values))
                          for i in range(ds.sizes["lead_time"])],
                "CRPS": [_clean(v) for v in ds.CRPS.values]}
        out[name] = {**{k: ds.attrs.get(k) for k in _COST + ("n_windows", "n_members")},
                     "lpips": ds.attrs.get("lpips"), "pooled": pooled, "by_lead": lead}
    return out


def sampler_table(results: dict) -> str:
    """Markdown laid out like the SpanLift paper's Table 4: Steps | Method | HSS | LPIPS | CSI | CSI-4 |
    CSI-16, then CRPS, NFE and seconds per forecast (scores pooled over lead times; CSI = CSI-M,
    HSS averaged over thresholds, both at pixel scale)."""
    summary = summary_json(results)
    head = ["Steps", "Method", "HSS", "LPIPS", "CSI", "CSI-4", "CSI-16", "CRPS", "NFE", "s/forecast"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def f(v):
        return "—" if v is None else f"{v:.4f}"

    for name, r in summary.items():
        p = r["pooled"]
        lp = f(p["LPIPS"]) if p["LPIPS"] is not None else "n/a"
        steps = r.get("steps") or "—"
        row = [str(steps), name, f(p["HSS_M"]), lp, f(p.get("CSI_M")), f(p.get("CSI_M_pool4")),
               f(p.get("CSI_M_pool16")), f(p.get("CRPS")), str(r.get("nfe", "")),
               f"{r['s_per_forecast']:.2f}" if r.get("s_per_forecast") is not None else "—"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
