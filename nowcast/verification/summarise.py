"""Summarise: scores from accumulated counts and sums, per lead time and pooled over lead times."""

from __future__ import annotations

import numpy as np

from . import categorical as contingency
from .ensemble import brier_decomposition, spread_skill_factor

__all__ = ["summarize", "add_scores", "add_probability_scores", "divide"]


def divide(num, den):
    """``num / den`` where ``den > 0``, NaN elsewhere (no warnings)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def add_scores(ds, counts, pooled: bool) -> None:
    """Add the categorical scores of ``counts`` (per lead time, or pooled) to ``ds``."""
    scores = contingency.compute(counts, pooled_over_leads=pooled)
    dims = ("threshold", "scale") if pooled else ("threshold", "scale", "lead_time")
    for name in contingency.SCORES:
        value = scores[name][..., 0] if pooled else scores[name]
        ds[name] = (dims, value)
    ds["CSI_M"] = (dims[1:], scores["CSI-M"][..., 0] if pooled else scores["CSI-M"])

def add_probability_scores(ds) -> None:
    """Add the Brier score, its decomposition and the base rate from ``probability_forecasts`` and
    ``probability_events`` (the last axis ``probability``) to ``ds``."""
    dims = ds.probability_forecasts.dims[:-1]
    parts = brier_decomposition(ds.probability_forecasts.values, ds.probability_events.values)
    ds["Brier"] = (dims, parts["Brier"])
    for name in ("reliability", "resolution", "uncertainty"):
        ds[f"Brier_{name}"] = (dims, parts[name])
    ds["base_rate"] = (dims, parts["base_rate"])


def summarize(ds):
    """Scores pooled over all lead times (counts and sums added, then scored once).

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :meth:`EvaluationAccumulator.result`.

    Returns
    -------
    xarray.Dataset
        The same scores without the ``lead_time`` dimension (rank histograms summed; FSS is left out
        because its sums are not kept in the result).
    """
    import xarray as xr

    counts = contingency.ContingencyCounts(
        tuple(ds.threshold.values), tuple(int(s) for s in ds.scale.values), ds.sizes["lead_time"],
        ds.attrs["comparison"], ds.attrs["pooling"], ds.hits.values, ds.misses.values,
        ds.false_alarms.values, ds.correct_negatives.values)
    out = xr.Dataset(coords={k: ds.coords[k] for k in ("threshold", "scale", "rank", "probability")})
    add_scores(out, counts, pooled=True)
    if "CRPS" not in ds:                 # a categorical view only
        out.attrs.update(ds.attrs)
        return out
    n = ds.n_valid.values
    total = n.sum()
    for name in ("CRPS", "CRPS_fair", "MAE", "MSE"):
        out[name] = float(np.nansum(ds[name].values * n) / total) if total else np.nan
    out["RMSE"] = np.sqrt(out["MSE"])
    if ds.attrs["n_members"] > 1:
        out["spread"] = np.sqrt(ds.sum_variance.values.sum() / total)
        m = ds.attrs["n_members"]
        out["spread_skill"] = spread_skill_factor(m) * out["spread"] / out["RMSE"]
    out["probability_forecasts"] = ds.probability_forecasts.sum("lead_time")
    out["probability_events"] = ds.probability_events.sum("lead_time")
    add_probability_scores(out)
    if "LPIPS" in ds:
        k = ds.n_lpips.values
        out["LPIPS"] = float((ds.LPIPS.values * k).sum() / k.sum())
    out["rank_histogram"] = (("rank",), ds.rank_histogram.values.sum(0))
    out.attrs.update(ds.attrs)
    return out
