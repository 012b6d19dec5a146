"""How much of its first guess's error a residual nowcaster's sampled correction removes, per lead time.

A residual model (``diffusion.residual``) forecasts latents ``ẑ₀ = g + c`` with ``g`` the encoded
first guess and ``c`` a sampled correction. With ``z`` the encoded observed future, in latent RMS
over test windows and members, per lead time:

* ``first guess``: ‖z − g‖, the error of no correction;
* ``correction``: ‖c‖, what the sampler adds;
* ``member``: ‖z − ẑ₀‖ of single members, and ``mean``: of the ensemble mean;
* ``explained``: 1 − ‖z − mean‖² / ‖z − g‖², the share of the first guess's error variance that the
  ensemble mean removes;
* ``spread``: the root of the mean unbiased member variance, and ``spread_skill``:
  √((M+1)/M)·spread / ‖z − mean‖ (1 for a reliable ensemble, Fortin et al. 2014);
* with ``--x0-steps``: ``x0 at t``, the error ‖z − x̂₀‖ of the network's one-step estimate at diffusion
  step t (the target noised once at t; no sampler). Where it exceeds the first guess's error, the
  network at that noise level does worse than no correction at all.

For a calibrated sampler a member's error² is the first guess's error² minus the explained part
plus the unexplained part again, so single members beat the first guess only where the model
explains more than half of the error variance. Writes ``<out>/<name>.{json,md}``::

    python benchmarks/correction_skill.py --model benchmarks/results/candidates/history_first_guess.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from common import ROOT, header, provenance, write_results
from nowcast.data.synthetic_store import synthetic_store
from nowcast.models.model_files import load_model
from nowcast.nowcasters import parse_spec, select_windows
from nowcast.foundation.cli import count


def _rms(sq: list) -> np.ndarray:
    """Root of the mean over windows of per-lead mean squares."""
    return np.sqrt(np.mean(sq, axis=0))


def correction_rms(model, store: str, samplers, windows: int, members: int, x0_steps=()) -> dict:
    """Per-lead latent RMS of the first guess's error, the correction, the members' and mean's errors,
    the spread, and (``x0_steps``) the one-step denoised estimate's error at those diffusion steps."""
    ldm = model.ldm
    ds, idx = select_windows(store, model.task, "test", windows)
    seeds = list(range(members))
    acc = {s: {"correction": [], "member": [], "mean": [], "spread": []} for s in samplers}
    first, x0 = [], {int(t): [] for t in x0_steps}
    gen = torch.Generator().manual_seed(0)
    per_lead = lambda d: d.pow(2).mean(dim=(0, 2, 3, 4)).double().numpy()  # noqa: E731  (M or 1, T, L, h, w)
    for i in idx:
        x = ds[int(i)]["x"][:, 0]
        x = torch.where(x >= 1.0, torch.zeros_like(x), x)[None]          # byte 255 (missing) → 0
        ctx, fut = x[:, :model.ldm.unet.cfg.context_frames], x[:, model.ldm.unet.cfg.context_frames:]
        with torch.no_grad():
            z_c = ldm.encode_context(ctx)
            g, z = z_c[:, -fut.shape[1]:], ldm.encode_frames(fut)
            first.append(per_lead(z - g))
            for s in samplers:
                spec = parse_spec(s)
                ens = ldm.sample_latents(z_c, seeds, spec.name, spec.steps)[0]
                acc[s]["correction"].append(per_lead(ens - g))
                acc[s]["member"].append(per_lead(ens - z))
                acc[s]["mean"].append(per_lead(ens.mean(0, keepdim=True) - z))
                if members > 1:
                    acc[s]["spread"].append(ens.var(0, unbiased=True).mean(dim=(1, 2, 3)).double().numpy())
            for t in x0:
                ac = ldm.alphas_cumprod[t].to(z.dtype)
                eps = torch.randn(z.shape, generator=gen, dtype=z.dtype)
                z_t = ac.sqrt() * z + (1 - ac).sqrt() * eps
                e = ldm.eps_model(z_t, torch.full((1,), float(t)), z_c)
                x0[t].append(per_lead((z_t - (1 - ac).sqrt() * e) / ac.sqrt() - z))
    out = {"windows": len(idx), "members": members, "first_guess": _rms(first).tolist(), "samplers": {}}
    for s, a in acc.items():
        r = {k: _rms(v) for k, v in a.items() if v}
        explained = 1 - r["mean"] ** 2 / _rms(first) ** 2
        extra = {"explained": explained.tolist()}
        if "spread" in r:
            extra["spread_skill"] = (np.sqrt((members + 1) / members) * r["spread"] / r["mean"]).tolist()
        out["samplers"][s] = {**{k: v.tolist() for k, v in r.items()}, **extra}
    out["x0_error"] = {str(t): _rms(v).tolist() for t, v in x0.items()}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="a residual nowcaster: model file or ldm run dir")
    p.add_argument("--samplers", default="ddim:5,ddim:100", help="comma-separated SOLVER:STEPS")
    p.add_argument("--windows", type=count(1), default=16, help="evenly spaced test windows")
    p.add_argument("--members", type=count(1), default=4, help="members per window")
    p.add_argument("--data", default=None, help="store (default: the cached synthetic SEVIR-LR store)")
    p.add_argument("--x0-steps", default="", help="comma-separated diffusion steps (0 … T-1) at which the "
                   "one-step denoised estimate's error is measured too (e.g. 50,400,700,950)")
    p.add_argument("--threads", type=count(1), default=2, help="torch threads")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "candidates"),
                   help="where <name>.json and <name>.md go")
    p.add_argument("--name", default=None, help="results file name (default: <model stem>_correction)")
    args = p.parse_args(argv)
    try:
        model = load_model(args.model)
        if not model.ldm.cfg.residual:
            raise ValueError(f"{args.model} is not a residual model (diffusion.residual is off)")
        samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
        for s in samplers:
            parse_spec(s)
        x0_steps = [int(t) for t in args.x0_steps.split(",") if t.strip()]
        if any(not 0 <= t < model.ldm.cfg.timesteps for t in x0_steps):
            raise ValueError(f"--x0-steps must lie in 0 … {model.ldm.cfg.timesteps - 1}, got {args.x0_steps!r}")
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    store = args.data or synthetic_store()
    res = correction_rms(model, store, samplers, args.windows, args.members, x0_steps)
    name = args.name or f"{Path(str(model.path)).stem if model.path else 'model'}_correction"
    meta = provenance("python benchmarks/correction_skill.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    leads = ", ".join(f"+{10 * (k + 1)}" for k in range(len(res["first_guess"])))
    lines = header("Residual model: the sampled correction against its first guess's error", meta)
    lines += [f"- model: `{args.model}`", f"- data: `{store}`",
              f"- {res['windows']} test windows × {res['members']} members; latent RMS per lead time ({leads} min)",
              "", "| sampler | quantity | " + " | ".join(f"+{10 * (k + 1)}" for k in range(len(res["first_guess"])))
              + " |", "|---|---|" + "---|" * len(res["first_guess"]),
              "| (none) | first-guess error | " + " | ".join(f"{v:.3f}" for v in res["first_guess"]) + " |"]
    for s, r in res["samplers"].items():
        for key, label in (("correction", "correction"), ("member", "member error"), ("mean", "ensemble-mean error"),
                           ("explained", "explained share"), ("spread", "spread"), ("spread_skill", "spread–skill")):
            if key in r:
                lines.append(f"| {s} | {label} | " + " | ".join(f"{v:.3f}" for v in r[key]) + " |")
    for t, v in res["x0_error"].items():
        lines.append(f"| (one step) | x̂₀ error at t = {t} | " + " | ".join(f"{e:.3f}" for e in v) + " |")
    lines += ["", "A member beats its first guess (in latent RMS) where its error is below the first guess's;",
              "for a calibrated sampler that needs an explained share above 0.5."]
    write_results(Path(args.out), name, {**meta, "model": args.model, "store": store, **res}, lines)
    return 0


if __name__ == "__main__":
    from nowcast.foundation.cli import run_main

    sys.exit(run_main(main))
