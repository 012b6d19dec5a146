"""Report: markdown tables and JSON summaries of evaluation results (one Dataset per nowcaster)."""

from __future__ import annotations

import numpy as np

from .summarise import summarize

__all__ = ["markdown_table", "lead_time_table", "combine_results", "summary_json", "sampler_table"]


def _fmt(v) -> str:
    return "nan" if not np.isfinite(v) else f"{v:.4f}"


def markdown_table(results, nfe: dict | None = None) -> str:
    """A Table-4-style markdown table: one row per sampler, scores pooled over lead times.

    Parameters
    ----------
    results : xarray.Dataset or dict of str to xarray.Dataset
        Results of :meth:`EvaluationAccumulator.result`, keyed by sampler name.
    nfe : dict of str to int, optional
        Model evaluations per forecast, shown in an ``NFE`` column.

    Returns
    -------
    str
        Columns: CSI-M at each scale, HSS (mean over thresholds, scale 1), CRPS (labelled MAE for
        one member), FSS at the largest scale (mean over thresholds) and LPIPS (``unavailable``
        when its weights are absent).
    """
    if not isinstance(results, dict):
        results = {"forecast": results}
    first = next(iter(results.values()))
    scales = [int(s) for s in first.scale.values]
    head = ["method"] + (["NFE"] if nfe else []) + \
        [("CSI-M" if s == 1 else f"CSI-M pool{s}") for s in scales] + ["HSS", "CRPS"]
    if "FSS" in first:
        head.append(f"FSS {scales[-1]}")
    head.append("LPIPS")
    rows = []
    for name, ds in results.items():
        sm = summarize(ds)
        row = [name] + ([str(nfe.get(name, ""))] if nfe else [])
        row += [_fmt(float(sm.CSI_M.sel(scale=s))) for s in scales]
        row.append(_fmt(float(np.nanmean(sm.HSS.sel(scale=scales[0]).values))))
        if "CRPS" not in sm:                                  # a categorical view of an ensemble
            row.append("—")
        else:
            crps = _fmt(float(sm.CRPS))
            row.append(crps if ds.attrs["n_members"] > 1 else f"{crps} (MAE)")
        if "FSS" in first:
            fss = ds.FSS.isel(scale=-1).values
            row.append(_fmt(float(np.nanmean(fss))) if np.isfinite(fss).any() else "nan")
        row.append(_fmt(float(sm.LPIPS)) if "LPIPS" in sm else "unavailable")
        rows.append(row)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def lead_time_table(ds) -> str:
    """Markdown table of CSI-M at each scale, HSS and CRPS against lead time."""
    scales = [int(s) for s in ds.scale.values]
    unit = "min" if ds.lead_time.attrs.get("units") == "minutes" else "step"
    head = [f"lead ({unit})"] + [("CSI-M" if s == 1 else f"CSI-M pool{s}") for s in scales] + ["HSS", "CRPS"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, lead in enumerate(ds.lead_time.values):
        row = [f"{lead:g}"] + [_fmt(float(ds.CSI_M.sel(scale=s).isel(lead_time=i))) for s in scales]
        row.append(_fmt(float(np.nanmean(ds.HSS.sel(scale=scales[0]).isel(lead_time=i).values))))
        row.append(_fmt(float(ds.CRPS.isel(lead_time=i))) if "CRPS" in ds else "—")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


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
        for score in ("CRPS", "CRPS_fair", "MAE", "RMSE", "spread", "spread_skill"):
            if score in sm:
                pooled[score] = _clean(sm[score])
        if "Brier" in sm:
            pooled.update(_probabilistic(sm, thr))
        if "FSS" in ds:
            pooled["FSS_mean"] = {str(s): _clean(np.nanmean(ds.FSS.sel(scale=s).values)) for s in scales}
        pooled["LPIPS"] = _clean(sm.LPIPS) if "LPIPS" in sm else None
        lead = {"lead_time_min": [float(v) for v in ds.lead_time.values],
                "CSI_M": {str(s): [_clean(v) for v in ds.CSI_M.sel(scale=s).values] for s in scales},
                "HSS_M": [_clean(np.nanmean(ds.HSS.sel(scale=scales[0]).isel(lead_time=i).values))
                          for i in range(ds.sizes["lead_time"])],
                **{k: ([_clean(v) for v in ds[k].values] if k in ds else None)
                   for k in ("CRPS", "CRPS_fair", "spread_skill")}}
        extra = {k: ds.attrs[k] for k in ("levels", "levels_split", "levels_csi") if k in ds.attrs}
        out[name] = {**{k: ds.attrs.get(k) for k in _COST + ("n_windows", "n_members", "categorical")}, **extra,
                     "lpips": ds.attrs.get("lpips"), "pooled": pooled, "by_lead": lead}
    return out


def _probabilistic(sm, thr) -> dict:
    """Pooled Brier score and decomposition, reliability diagram and rank histogram of a summary."""
    per = lambda v: {str(t): _clean(v.sel(threshold=t)) for t in thr}  # noqa: E731
    n, o = sm.probability_forecasts, sm.probability_events
    with np.errstate(divide="ignore", invalid="ignore"):
        freq = o / n.where(n > 0)
    return {"Brier": per(sm.Brier), "Brier_reliability": per(sm.Brier_reliability),
            "Brier_resolution": per(sm.Brier_resolution), "Brier_uncertainty": per(sm.Brier_uncertainty),
            "reliability_diagram": {"probability": [float(p) for p in sm.probability.values],
                                    "observed_frequency": {str(t): [_clean(v) for v in freq.sel(threshold=t).values]
                                                           for t in thr},
                                    "count": {str(t): [int(v) for v in n.sel(threshold=t).values] for t in thr}},
            "rank_histogram": [int(v) for v in sm.rank_histogram.values]}


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
