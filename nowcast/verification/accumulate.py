"""Accumulate: one pass over (ensemble prediction, target) batches, a Dataset of scores out.

:class:`EvaluationAccumulator` accumulates, batch by batch and mergeable across processes:

* contingency counts at thresholds × pooling scales × lead times (:mod:`.categorical`) and from
  them CSI, POD, FAR, SUCR, BIAS, HSS, ETS and CSI-M;
* fractions skill score at thresholds × neighbourhood sizes (the same ``scale`` axis) × lead times;
* CRPS (ensemble estimator; fair variant from two members on; with one member it is the MAE and
  is labelled so), ensemble-mean MAE / MSE / RMSE, ensemble spread and the spread–skill ratio,
  rank histograms, and per threshold the counts of the exceedance probabilities ``k/M`` and of the
  events under each (reliability diagrams, the Brier score and its decomposition);
* LPIPS per lead time when its weights exist (otherwise the result says it is unavailable).

Conventions: predictions and targets are VIL bytes (uint8, 255 = missing, or floats on the byte
scale); categorical scores and FSS threshold the byte scale; continuous scores (CRPS, MAE, MSE,
spread) are in the models' units ``byte/255``. A pixel that is missing in the target or in any
member is left out of every score.

Which field the categorical scores (and the FSS) judge is the ``categorical`` view:

* ``"members"`` (default): each member as a forecast of its own, counts summed over members — what
  diffusion nowcasting papers report, and what compares fairly with another ensemble's members;
* ``"mean"``: the ensemble mean (error-minimising; compare with a deterministic extrapolation);
* ``"pm"``: the probability-matched mean (:func:`~.ensemble.probability_matched_mean`);
* ``"probability"``: yes where the fraction of members exceeding a threshold reaches that
  threshold's probability ``levels`` (chosen beforehand, e.g. on a validation split; no FSS).

The continuous and probabilistic scores are the ensemble's whatever the view; an accumulator made with
``ensemble_scores=False`` leaves them out (a second view of forecasts another accumulator scores).
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.codec import MISSING, SEVIR_THRESHOLDS
from . import categorical as contingency
from .ensemble import (crps_ensemble, crps_label, exceedance, probability_matched_mean,
                       rank_counts, spread_skill_factor)
from .spatial import FSSAccumulator
from .summarise import add_probability_scores, add_scores, divide

__all__ = ["EvaluationAccumulator"]

VIEWS = ("members", "mean", "pm", "probability")
_SUMS = ("n_valid", "abs_err", "sq_err", "crps", "crps_fair", "variance", "lpips", "n_lpips")


def _to_numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a)


class EvaluationAccumulator:
    """Accumulate every verification score in one pass over (ensemble prediction, target) batches.

    Parameters
    ----------
    n_lead : int
        Number of lead times.
    thresholds : sequence of float
        Event thresholds in bytes (default SEVIR's 16, 74, 133, 160, 181, 219).
    scales : sequence of int
        Pooling scales of the categorical scores and neighbourhood sizes of the FSS.
    comparison : {'>=', '>'}
        Event definition for categorical scores and Brier scores (FSS always uses ``>=``).
    pooling : {'max', 'avg'}
        Pooling before thresholding at scales above 1.
    categorical : {'members', 'mean', 'pm', 'probability'}
        The field the categorical scores judge (see the module's docstring).
    levels : sequence of float, optional
        With ``categorical='probability'``: one probability level in (0, 1] per threshold.
    ensemble_scores : bool
        Accumulate the continuous and probabilistic scores (CRPS, spread, rank histograms, Brier).
    lead_times : sequence of float, optional
        Lead times in minutes for the ``lead_time`` coordinate (default: steps 1 … n_lead).
    fss : bool
        Accumulate the FSS.
    lpips : {'auto', None} or nowcast.verification.perceptual.LPIPS
        ``'auto'`` loads LPIPS when its weights are on this machine and records why not otherwise;
        ``None`` skips it. A model with a random trunk is refused.
    seed : int
        Seed of the random tie-breaking in rank histograms.
    """

    def __init__(self, n_lead: int, thresholds=SEVIR_THRESHOLDS, scales=(1, 4, 16), *, comparison: str = ">=",
                 pooling: str = "max", categorical: str = "members", levels=None, lead_times=None,
                 fss: bool = True, lpips="auto", seed: int = 0, ensemble_scores: bool = True):
        if categorical not in VIEWS:
            raise ValueError(f"categorical must be one of {VIEWS}, got {categorical!r}")
        if (categorical == "probability") != (levels is not None):
            raise ValueError("categorical='probability' needs one probability level per threshold (levels), "
                             "and only it takes levels")
        if levels is not None:
            levels = tuple(float(v) for v in levels)
            if len(levels) != len(thresholds) or not all(0.0 < v <= 1.0 for v in levels):
                raise ValueError(f"levels must be {len(thresholds)} probabilities in (0, 1], got {levels}")
            if pooling != "max":
                raise ValueError("yes/no probability forecasts are pooled with 'max' (an event anywhere in the "
                                 "block); pooling='avg' has no meaning for them")
            fss = False
        if lead_times is not None and len(lead_times) != n_lead:
            raise ValueError(f"{len(lead_times)} lead times given for {n_lead} leads")
        self.n_lead, self.categorical, self.seed = int(n_lead), categorical, seed
        self.levels, self.ensemble_scores = levels, bool(ensemble_scores)
        self.lead_times = None if lead_times is None else tuple(float(t) for t in lead_times)
        self.counts = contingency.init_counts(n_lead, thresholds, scales, comparison, pooling)
        self.thresholds, self.scales = self.counts.thresholds, self.counts.scales
        self.fss = FSSAccumulator(self.thresholds, self.scales, MISSING, n_lead=n_lead) if fss else None
        self.n_members = None
        self.n_samples = 0
        self.sums = {k: np.zeros(n_lead) for k in _SUMS}
        self.prob_n = self.prob_o = None   # (threshold, lead_time, M + 1) once M is known
        self.ranks = None
        self._rng = np.random.default_rng(seed)
        self.lpips_model, self.lpips_note = _setup_lpips(lpips)

    # -- accumulation ---------------------------------------------------------------------------
    def update(self, pred, target, mask=None) -> "EvaluationAccumulator":
        """Add a batch.

        Parameters
        ----------
        pred : array-like or torch.Tensor
            ``(B, M, lead_time, H, W)`` ensemble (or ``(B, lead_time, H, W)``, one member), VIL bytes.
        target : array-like or torch.Tensor
            ``(B, lead_time, H, W)`` observations, VIL bytes.
        mask : array-like of bool, optional
            ``True`` where a pixel is valid, broadcastable to ``(B, lead_time, H, W)``.
        """
        p, y = _to_numpy(pred), _to_numpy(target)
        if p.ndim == 4:
            p = p[:, None]
        if p.ndim != 5 or y.ndim != 4 or p.shape[:1] + p.shape[2:] != y.shape:
            raise ValueError(f"pred must be (B, M, lead_time, H, W) and target (B, lead_time, H, W) with the "
                             f"same B, lead_time, H, W; got {p.shape} and {y.shape}")
        if y.shape[1] != self.n_lead:
            raise ValueError(f"target has {y.shape[1]} lead times, the accumulator {self.n_lead}")
        if min(y.shape[2:]) < max(self.scales):
            raise ValueError(f"fields of {y.shape[2]}×{y.shape[3]} pixels are smaller than the pooling scale "
                             f"{max(self.scales)}")
        b, m = p.shape[:2]
        if self.n_members is None:
            self.n_members = m
            self.ranks = np.zeros((self.n_lead, m + 1), dtype=np.int64)
            self.prob_n = np.zeros((len(self.thresholds), self.n_lead, m + 1), dtype=np.int64)
            self.prob_o = np.zeros_like(self.prob_n)
        elif m != self.n_members:
            raise ValueError(f"every batch must have {self.n_members} members, this one has {m}")
        valid = (y != MISSING) & (p != MISSING).all(axis=1)
        if np.issubdtype(p.dtype, np.floating) or np.issubdtype(y.dtype, np.floating):
            valid &= np.isfinite(y) & np.isfinite(p).all(axis=1)
        if mask is not None:
            valid &= np.broadcast_to(_to_numpy(mask).astype(bool), valid.shape)
        self._categorical(p, y, valid)
        if self.ensemble_scores:
            self._continuous(p, y, valid)
        if self.lpips_model is not None:
            self._lpips(p, y, valid)
        self.n_samples += b
        return self

    def _categorical(self, p, y, valid):
        b, m = p.shape[:2]
        if self.categorical == "probability":
            contingency.accumulate_yes_no(self.counts, self._yes(p), y, mask=valid)
            return
        if self.categorical == "members":
            fields = p.reshape((b * m,) + p.shape[2:])
            obs = np.repeat(y, m, axis=0)
            ok = np.repeat(valid, m, axis=0)
        else:
            fields = self._mean_field(p, valid)
            obs, ok = y, valid
        contingency.accumulate(self.counts, fields, obs, mask=ok)
        if self.fss is not None:
            # invalid pixels (missing in the target or any member) are non-events in both fields
            if self.categorical == "members":
                fields, obs = p, y
            miss = np.asarray(MISSING, dtype=fields.dtype)
            keep = valid[:, None] if fields.ndim == 5 else valid
            self.fss.update(np.where(keep, fields, miss), np.where(valid, obs, np.asarray(MISSING, dtype=obs.dtype)))

    def _mean_field(self, p, valid):
        """The ensemble mean or probability-matched mean ``(B, lead_time, H, W)``, NaN where invalid."""
        if self.categorical == "mean":
            return np.where(valid, p.astype(np.float32).mean(axis=1), np.nan)
        out = np.empty(valid.shape, dtype=np.float32)
        for i in range(p.shape[0]):
            for lead in range(p.shape[2]):
                out[i, lead] = probability_matched_mean(p[i, :, lead], valid=valid[i, lead])
        return out

    def _yes(self, p):
        """Yes/no forecasts ``(threshold, B, lead_time, H, W)``: member fraction over each threshold ≥ its level."""
        m = p.shape[1]
        comparison = self.counts.comparison
        # k/M >= level  <=>  k >= ceil(level·M) (with a tolerance for levels given as k/M in floats)
        need = [int(np.ceil(level * m - 1e-9)) for level in self.levels]
        return np.stack([exceedance(p, thr, comparison).sum(axis=1) >= k for thr, k in zip(self.thresholds, need)])

    def _continuous(self, p, y, valid):
        m = p.shape[1]
        x = p.astype(np.float64) / 255.0
        o = y.astype(np.float64) / 255.0
        w = valid.astype(np.float64)
        lead_sum = lambda a: (np.where(valid, a, 0.0)).sum(axis=(0, 2, 3))  # noqa: E731
        mean = x.mean(axis=1)
        self.sums["n_valid"] += w.sum(axis=(0, 2, 3))
        self.sums["abs_err"] += lead_sum(np.abs(mean - o))
        self.sums["sq_err"] += lead_sum((mean - o) ** 2)
        xv, ov = np.where(valid[:, None], x, 0.0), np.where(valid, o, 0.0)
        self.sums["crps"] += lead_sum(crps_ensemble(xv, ov, axis=1))
        if m > 1:
            self.sums["crps_fair"] += lead_sum(crps_ensemble(xv, ov, fair=True, axis=1))
            self.sums["variance"] += lead_sum(x.var(axis=1, ddof=1))
        for lead in range(self.n_lead):
            ok = valid[:, lead]
            members = x[:, :, lead].transpose(1, 0, 2, 3)[:, ok]          # (M, valid points)
            self.ranks[lead] += rank_counts(members, o[:, lead][ok], self._rng)
        comparison = self.counts.comparison
        for ti, thr in enumerate(self.thresholds):
            k = exceedance(p, thr, comparison).sum(axis=1)                # (B, lead, H, W) members over
            event = exceedance(y, thr, comparison)
            for lead in range(self.n_lead):
                ok = valid[:, lead]
                kk = k[:, lead][ok]
                self.prob_n[ti, lead] += np.bincount(kk, minlength=m + 1)
                self.prob_o[ti, lead] += np.bincount(kk, weights=event[:, lead][ok], minlength=m + 1).astype(np.int64)

    def _lpips(self, p, y, valid):
        b, m = p.shape[:2]
        x = torch.from_numpy(np.where(valid[:, None], p, 0).astype(np.float32) / 255.0)
        o = torch.from_numpy(np.where(valid, y, 0).astype(np.float32) / 255.0)
        with torch.no_grad():
            for lead in range(self.n_lead):
                a = x[:, :, lead].reshape(b * m, *x.shape[-2:])
                t = o[:, lead].repeat_interleave(m, dim=0)
                self.sums["lpips"][lead] += float(self.lpips_model(a, t).double().sum())
                self.sums["n_lpips"][lead] += b * m

    # -- combination ----------------------------------------------------------------------------
    def merge(self, other: "EvaluationAccumulator") -> "EvaluationAccumulator":
        """A new accumulator holding both (same configuration and number of members)."""
        same = (self.n_lead, self.thresholds, self.scales, self.categorical, self.levels, self.lead_times,
                self.fss is None, self.lpips_model is None, self.ensemble_scores) == \
               (other.n_lead, other.thresholds, other.scales, other.categorical, other.levels, other.lead_times,
                other.fss is None, other.lpips_model is None, other.ensemble_scores)
        if not same:
            raise ValueError("cannot merge accumulators with different configurations")
        if None not in (self.n_members, other.n_members) and self.n_members != other.n_members:
            raise ValueError(f"cannot merge {self.n_members}-member and {other.n_members}-member results")
        out = EvaluationAccumulator.__new__(EvaluationAccumulator)
        out.__dict__.update(self.__dict__)
        out.counts = contingency.merge(self.counts, other.counts)
        out.fss = None if self.fss is None else self.fss.merge(other.fss)
        out.n_members = self.n_members if self.n_members is not None else other.n_members
        out.n_samples = self.n_samples + other.n_samples
        out.sums = {k: self.sums[k] + other.sums[k] for k in _SUMS}
        for name in ("ranks", "prob_n", "prob_o"):
            parts = [getattr(a, name) for a in (self, other) if getattr(a, name) is not None]
            setattr(out, name, sum(parts) if parts else None)
        out._rng = np.random.default_rng(self.seed)
        return out

    # -- results --------------------------------------------------------------------------------
    def result(self):
        """Every score as an ``xarray.Dataset`` over (threshold, scale, lead_time[, rank]).

        Variables on (threshold, scale, lead_time): the counts ``hits``, ``misses``,
        ``false_alarms``, ``correct_negatives`` and the scores CSI, POD, FAR, SUCR, BIAS, HSS, ETS,
        FSS; on (scale, lead_time): CSI_M; on (lead_time): n_valid and (unless ``ensemble_scores``
        is off) CRPS, CRPS_fair, MAE, MSE, RMSE (of the ensemble mean), spread, spread_skill, LPIPS;
        on (threshold, lead_time): Brier, Brier_reliability, Brier_resolution, Brier_uncertainty,
        base_rate; on (threshold, lead_time, probability): probability_forecasts and
        probability_events (the reliability diagram's counts: points forecast with probability
        ``k/M`` and events among them); on (lead_time, rank): rank_histogram.
        ``ds.to_array('metric')`` stacks them along a ``metric`` dimension. :func:`summarize` pools
        over lead times.
        """
        import xarray as xr

        if self.n_members is None:
            raise ValueError("nothing was accumulated")
        ds = xr.Dataset(coords=self._coords())
        cat = ("threshold", "scale", "lead_time")
        for name in ("hits", "misses", "false_alarms", "correct_negatives"):
            ds[name] = (cat, getattr(self.counts, name))
        add_scores(ds, self.counts, pooled=False)
        if self.fss is not None:
            ds["FSS"] = (cat, self.fss.compute())
        n = self.sums["n_valid"]
        ds["n_valid"] = (("lead_time",), n)
        if self.ensemble_scores:
            for name, value in _lead_scores(self.sums, self.n_members).items():
                ds[name] = (("lead_time",), value)
            ds["rank_histogram"] = (("lead_time", "rank"), self.ranks)
            ds["probability_forecasts"] = (("threshold", "lead_time", "probability"), self.prob_n)
            ds["probability_events"] = (("threshold", "lead_time", "probability"), self.prob_o)
            add_probability_scores(ds)
            # sums kept so that summarize() can pool over lead times exactly
            ds["sum_variance"] = (("lead_time",), self.sums["variance"])
            ds["n_lpips"] = (("lead_time",), self.sums["n_lpips"])
        if self.lpips_model is None and "LPIPS" in ds:
            ds = ds.drop_vars("LPIPS")
        ds.attrs.update(self._attrs())
        return ds

    def _coords(self) -> dict:
        lead = np.arange(1, self.n_lead + 1, dtype=float) if self.lead_times is None else np.array(self.lead_times)
        return {"threshold": ("threshold", np.array(self.thresholds, dtype=float)),
                "scale": ("scale", np.array(self.scales)),
                "lead_time": ("lead_time", lead, {"units": "steps" if self.lead_times is None else "minutes"}),
                "rank": ("rank", np.arange(self.n_members + 1)),
                "probability": ("probability", np.linspace(0.0, 1.0, self.n_members + 1))}

    def _attrs(self) -> dict:
        return {"n_members": int(self.n_members), "n_samples": int(self.n_samples),
                "comparison": self.counts.comparison, "pooling": self.counts.pooling,
                "categorical": self.categorical, "crps_label": crps_label(self.n_members),
                **({"levels": list(self.levels)} if self.levels is not None else {}),
                "continuous_units": "byte/255",
                "lpips": self.lpips_note}


def _setup_lpips(lpips):
    if lpips is None:
        return None, "not computed"
    if isinstance(lpips, str):
        if lpips != "auto":
            raise ValueError(f"lpips must be 'auto', None or an LPIPS model, got {lpips!r}")
        from .. import hub
        from .perceptual import LPIPS, lpips_status

        reason = lpips_status()
        if reason is not None:
            return None, f"unavailable: {reason}"
        try:
            model = LPIPS()
        except (ImportError, hub.WeightsNotFoundError, hub.ChecksumError) as err:
            return None, f"unavailable: {err}"
        return model, f"AlexNet v0.1 ({model.source})"
    if not getattr(lpips, "calibrated", False):
        raise ValueError("refusing to report LPIPS from a random backbone; give real AlexNet weights")
    return lpips, f"AlexNet v0.1 ({lpips.source})"


def _lead_scores(sums: dict, n_members: int) -> dict:
    n = sums["n_valid"]
    out = {"CRPS": divide(sums["crps"], n),
           "CRPS_fair": divide(sums["crps_fair"], n) if n_members > 1 else np.full_like(n, np.nan),
           "MAE": divide(sums["abs_err"], n), "MSE": divide(sums["sq_err"], n),
           "RMSE": np.sqrt(divide(sums["sq_err"], n))}
    if n_members > 1:
        out["spread"] = np.sqrt(divide(sums["variance"], n))
        out["spread_skill"] = spread_skill_factor(n_members) * divide(out["spread"], out["RMSE"])
    else:
        out["spread"] = out["spread_skill"] = np.full_like(n, np.nan)
    out["LPIPS"] = divide(sums["lpips"], sums["n_lpips"])
    return out
