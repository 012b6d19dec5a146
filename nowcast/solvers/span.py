"""Span analysis: how much of a correction lies outside the span of the velocity buffer.

A scalar-coefficient solver's update at step n lies in ``V_n = span{d_0, …, d_n}`` (the buffered
velocities). For a vector ``r`` the least-squares projection onto ``V_n`` (per sample) splits it
into an in-span part and an orthogonal part; the *out-of-span fraction* is ``‖P⊥r‖/‖r‖``. Applied
to SpanLift's learned correction ``h_n β_n ρ_n R_θ`` it shows whether the operator supplies
directions no scalar recombination can reach (the paper's Table 6); applied to the one-step
teacher residual ``(Φ(x_n) − x_n)/h_n − u_base`` it shows how much of the base solver's local
mismatch is unreachable by scalar coefficients at all.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from .rollout import rollout
from .spanlift import SpanLift

__all__ = ["out_of_span_fraction", "span_analysis"]


def out_of_span_fraction(vec: torch.Tensor, basis: list) -> torch.Tensor:
    """Per-sample ``‖P⊥ v‖ / ‖v‖`` for the span of ``basis`` (least squares in float64).

    Parameters
    ----------
    vec : torch.Tensor
        ``(B, ...)`` vectors.
    basis : list of torch.Tensor
        Tensors of the same shape spanning the subspace (per sample).

    Returns
    -------
    torch.Tensor
        ``(B,)`` fractions in [0, 1] (NaN where ``v = 0``).
    """
    v = vec.detach().to(torch.float64).flatten(1)
    A = torch.stack([b.detach().to(torch.float64).flatten(1) for b in basis], dim=-1)
    coef = torch.linalg.lstsq(A, v.unsqueeze(-1), driver="gelsd").solution
    resid = v - (A @ coef).squeeze(-1)
    return resid.norm(dim=1) / v.norm(dim=1)


@torch.no_grad()
def span_analysis(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, solver: SpanLift, *,
                  afs: bool = False, cond: Any = None,
                  teacher: Optional[Callable[[torch.Tensor, float, float], torch.Tensor]] = None) -> list:
    """Out-of-span fractions of SpanLift's correction (and of the teacher residual) per step.

    Parameters
    ----------
    denoiser, x, sigmas, afs, cond
        As :func:`~.rollout.rollout` (``x`` is the initial state).
    solver : SpanLift
        The learned solver to analyse.
    teacher : callable, optional
        ``teacher(x, sigma0, sigma1)``: an accurate ODE solution from σ₀ to σ₁; when given, the
        one-step teacher residual is analysed too.

    Returns
    -------
    list of dict
        One record per step: ``step``, ``sigma``, ``out_of_span`` (mean fraction of the
        correction), ``correction_ratio`` (mean ``‖correction‖/‖u_base‖``) and, with a teacher,
        ``teacher_out_of_span``.
    """
    if not isinstance(solver, SpanLift):
        raise TypeError("span_analysis needs a SpanLift solver (it analyses the learned correction)")
    records: list = []

    def callback(info: dict) -> None:
        step, buffer = info["step"], info["buffer"]
        basis = [e.d for e in buffer]
        corr = step.extra["correction"]
        u_base = step.extra["u_base"]
        rec = {"step": info["n"], "sigma": float(info["sigma"]),
               "out_of_span": float(out_of_span_fraction(corr, basis).nanmean()),
               "correction_ratio": float((corr.flatten(1).norm(dim=1)
                                          / u_base.flatten(1).norm(dim=1)).mean())}
        if teacher is not None:
            s0 = float(info["sigma"])
            s1 = s0 + float(step.h)
            target = (teacher(step.x, s0, s1).to(step.x.dtype) - step.x) / float(step.h)
            rec["teacher_out_of_span"] = float(out_of_span_fraction(target - u_base, basis).nanmean())
        records.append(rec)

    rollout(denoiser, x, sigmas, solver, cond=cond, afs=afs, callback=callback)
    return records
