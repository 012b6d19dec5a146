"""How much of its first guess's error a residual nowcaster's sampled correction removes, per lead time.

A residual model (``diffusion.residual``) forecasts latents ``ẑ₀ = g + c`` with ``g`` the encoded
first guess and ``c`` a sampled correction. With ``z`` the encoded observed future, in latent RMS
over test windows and members, per lead time:

* ``first guess``: ‖z − g‖, the error of no correction;
* ``correction``: ‖c‖, what the sampler adds;
* ``member``: ‖z − ẑ₀‖ of single members, and ``mean``: of the ensemble mean;
* ``explained``: 1 − ‖z − mean‖² / ‖z − g‖², the share of the first guess's error variance that the
  ensemble mean removes.

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


def correction_rms(model, store: str, samplers, windows: int, members: int) -> dict:
    """Per-lead latent RMS of the first guess's error, the correction and the members' and mean's errors."""
    ldm = model.ldm
    ds, idx = select_windows(store, model.task, "test", windows)
    seeds = list(range(members))
    acc = {s: {"correction": [], "member": [], "mean": []} for s in samplers}
    first = []
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
    out = {"windows": len(idx), "members": members, "first_guess": _rms(first).tolist(), "samplers": {}}
    for s, a in acc.items():
        r = {k: _rms(v) for k, v in a.items()}
        explained = 1 - r["mean"] ** 2 / _rms(first) ** 2
        out["samplers"][s] = {**{k: v.tolist() for k, v in r.items()}, "explained": explained.tolist()}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="a residual nowcaster: model file or ldm run dir")
    p.add_argument("--samplers", default="ddim:5,ddim:100", help="comma-separated SOLVER:STEPS")
    p.add_argument("--windows", type=count(1), default=16, help="evenly spaced test windows")
    p.add_argument("--members", type=count(1), default=4, help="members per window")
    p.add_argument("--data", default=None, help="store (default: the cached synthetic SEVIR-LR store)")
    p.add_argument("--threads", type=count(1), default=2, help="torch threads")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "candidates"))
    p.add_argument("--name", default=None, help="results file name (default: <model stem>_correction)")
    args = p.parse_args(argv)
    try:
        model = load_model(args.model)
        if not model.ldm.cfg.residual:
            raise ValueError(f"{args.model} is not a residual model (diffusion.residual is off)")
        samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
        for s in samplers:
            parse_spec(s)
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    store = args.data or synthetic_store()
    res = correction_rms(model, store, samplers, args.windows, args.members)
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
                           ("explained", "explained share")):
            lines.append(f"| {s} | {label} | " + " | ".join(f"{v:.3f}" for v in r[key]) + " |")
    lines += ["", "A member beats its first guess (in latent RMS) where its error is below the first guess's;",
              "for a calibrated sampler that needs an explained share above 0.5."]
    write_results(Path(args.out), name, {**meta, "model": args.model, "store": store, **res}, lines)
    return 0


if __name__ == "__main__":
    from nowcast.foundation.cli import run_main

    sys.exit(run_main(main))
