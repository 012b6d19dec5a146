"""Skill of the shipped default model on the synthetic SEVIR-LR test split, next to the baselines.

Two evaluations on evenly spaced test windows, the same windows and member seeds for every sampler:

* main: DDIM-100, DDIM-5, persistence and pysteps extrapolation (``--windows`` × ``--members``);
  the model's categorical scores both per member (counts pooled over members) and of the ensemble
  mean (rows ``… mean``: PreDiff's App. D.2 averages samples; CRPS is the ensemble's either way);
* reference: the same plus ancestral DDPM-1000 on a smaller subset (``--ddpm-windows`` ×
  ``--ddpm-members``; 1000 network evaluations per forecast are slow on a CPU).

Scores: CSI-M (mean CSI over the SEVIR thresholds 16, 74, 133, 160, 181, 219), CSI-M after 4×4 and
16×16 max pooling, HSS (mean over thresholds), CRPS (bytes/255; for deterministic baselines the
MAE) at every lead time +10 … +60 min and pooled over leads. Writes
``benchmarks/results/default_model.{json,md}`` and a picture of one test case
(``nowcast/models/DEFAULT_MODEL.png``).

    python benchmarks/default_model.py [--model default] [--windows 32] [--members 4]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from common import ROOT, header, provenance, write_results
from nowcast.data.synthetic_store import synthetic_store
from nowcast.data.codec import from_unit
from nowcast.models.model_files import load_model
from nowcast.nowcasters import evaluate_samplers, select_windows
from nowcast.baselines import get_baseline
from nowcast.verification.report import lead_time_table, markdown_table
from nowcast.verification.summarise import summarize

MAIN = ("ddim:100", "ddim:5", "persistence", "pysteps")
REFERENCE = ("ddpm:1000", "ddim:100", "ddim:5", "persistence", "pysteps")


def _at_last_lead(res) -> dict:
    last = res.isel(lead_time=-1)
    return {"lead_time_min": float(last.lead_time), "CSI_M": float(last.CSI_M.sel(scale=1)),
            "CSI_M_pool4": float(last.CSI_M.sel(scale=4)), "CSI_M_pool16": float(last.CSI_M.sel(scale=16)),
            "HSS": float(np.nanmean(last.HSS.sel(scale=1).values)), "CRPS": float(last.CRPS)}


def _per_lead(res) -> dict:
    return {"lead_time_min": [float(v) for v in res.lead_time.values],
            "CSI_M": res.CSI_M.sel(scale=1).values.tolist(), "CSI_M_pool4": res.CSI_M.sel(scale=4).values.tolist(),
            "CSI_M_pool16": res.CSI_M.sel(scale=16).values.tolist(),
            "HSS": np.nanmean(res.HSS.sel(scale=1).values, axis=0).tolist(), "CRPS": res.CRPS.values.tolist()}


def _pooled(res) -> dict:
    sm = summarize(res)
    return {"CSI_M": float(sm.CSI_M.sel(scale=1)), "CSI_M_pool4": float(sm.CSI_M.sel(scale=4)),
            "CSI_M_pool16": float(sm.CSI_M.sel(scale=16)), "HSS": float(np.nanmean(sm.HSS.sel(scale=1).values)),
            "CRPS": float(sm.CRPS)}


def _section(title: str, results: dict) -> list:
    nfe = {k: r.attrs["nfe"] for k, r in results.items()}
    first = next(iter(results.values()))
    lines = ["", f"## {title}", "",
             f"{first.attrs['n_windows']} test windows × {first.attrs['n_members']} members (member seeds 0…"
             f"{first.attrs['n_members'] - 1}); scores pooled over the six lead times:", "",
             markdown_table(results, nfe), "",
             "| method | s per forecast (all members) |", "|---|---|"]
    lines += [f"| {k} | {r.attrs['s_per_forecast']:.2f} |" for k, r in results.items()]
    for k, r in results.items():
        lines += ["", f"### {k}: against lead time", "", lead_time_table(r)]
    return lines


def _rel(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _picture(model, store: str, path: Path, seeds=(0, 1)) -> dict:
    """One test case: observed context and future, two DDIM-100 members, persistence, pysteps."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nowcast.viz.colors import vil_cmap

    ds, idx = select_windows(store, model.task, "test", None)
    # the window with the most intense future among an evenly spaced tenth of the split
    cand = idx[:: max(1, len(idx) // 30)]
    score = [float(np.round(ds[int(i)]["x"][7:, 0].numpy() * 255).clip(0, 254).astype(float).mean()) for i in cand]
    pick = int(cand[int(np.argmax(score))])
    item = ds[pick]
    data = np.round(item["x"][:, 0].numpy() * 255).astype(np.uint8)
    ctx, fut = data[:7], data[7:]
    x = torch.from_numpy(np.where(ctx == 255, 0, ctx).astype(np.float32) / 255.0)[None]
    with torch.no_grad():
        ens = from_unit(model.ldm.forecast(x, seeds=list(seeds), solver="ddim", steps=100).numpy())[0]
    rows = [("observed", fut)] + [(f"DDIM-100 member {s}", ens[k]) for k, s in enumerate(seeds)]
    rows += [("persistence", get_baseline("persistence").forecast(ctx[None], 6)[0, 0]),
             ("pysteps", get_baseline("pysteps").forecast(ctx[None], 6)[0, 0])]
    cmap, norm = vil_cmap()
    fig, axes = plt.subplots(len(rows), 7, figsize=(14, 2.1 * len(rows)), constrained_layout=True)
    for r, (name, frames) in enumerate(rows):
        axes[r, 0].imshow(ctx[-1] if r == 0 else np.full_like(ctx[-1], 0), cmap=cmap, norm=norm,
                          interpolation="nearest")
        axes[r, 0].set_title("last context (t0)" if r == 0 else "", fontsize=9)
        axes[r, 0].set_ylabel(name, fontsize=10)
        for j in range(6):
            im = axes[r, j + 1].imshow(frames[j], cmap=cmap, norm=norm, interpolation="nearest")
            if r == 0:
                axes[r, j + 1].set_title(f"t0 + {10 * (j + 1)} min", fontsize=9)
        for a in axes[r]:
            a.set_xticks([])
            a.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.6, label="VIL (bytes)", ticks=[16, 74, 133, 160, 181, 219])
    fig.suptitle(f"default model, synthetic SEVIR-LR test event {item['event_id']} (window start {item['start']})")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return {"event_id": item["event_id"], "start": int(item["start"]), "png": _rel(path)}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="default", help="model name or path")
    p.add_argument("--data", default=None, help="store (default: the cached synthetic SEVIR-LR store)")
    p.add_argument("--windows", type=int, default=32, help="test windows of the main evaluation")
    p.add_argument("--members", type=int, default=4, help="members of the main evaluation")
    p.add_argument("--ddpm-windows", type=int, default=8, help="test windows of the DDPM-1000 evaluation")
    p.add_argument("--ddpm-members", type=int, default=2, help="members of the DDPM-1000 evaluation")
    p.add_argument("--batch", type=int, default=4, help="contexts per model call")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--png", default=str(ROOT / "nowcast" / "models" / "DEFAULT_MODEL.png"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--name", default="default_model", help="results file name")
    p.add_argument("--first-guess-pixels", action="store_true",
                   help="residual first-guess models: add the decoded correction to the first guess in pixels")
    return p


def _record(r) -> dict:
    return {"nfe": r.attrs["nfe"], "windows": r.attrs["n_windows"], "members": r.attrs["n_members"],
            "s_per_forecast": r.attrs["s_per_forecast"], "pooled": _pooled(r), "per_lead": _per_lead(r)}


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    meta = provenance("python benchmarks/default_model.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    model = load_model(args.model, first_guess_pixels=True if args.first_guess_pixels else None)
    store = args.data or synthetic_store(model.meta.get("config", {}).get("synthetic_events", 480))
    main_res = evaluate_samplers(MAIN, store, model.task, "test", model, windows=args.windows,
                                 members=args.members, batch=args.batch, ensemble_mean=True)
    ref_res = evaluate_samplers(REFERENCE, store, model.task, "test", model, windows=args.ddpm_windows,
                                members=args.ddpm_members, batch=args.batch)
    picture = _picture(model, store, Path(args.png))
    d, dm, pers, pyst = (_at_last_lead(main_res[k]) for k in ("ddim:100", "ddim:100 mean", "persistence", "pysteps"))
    accept = {"CSI_M_pool16_at_60": d["CSI_M_pool16"] > max(pers["CSI_M_pool16"], pyst["CSI_M_pool16"]),
              "CSI_M_pool16_at_60_ensemble_mean": dm["CSI_M_pool16"] > max(pers["CSI_M_pool16"], pyst["CSI_M_pool16"]),
              "CRPS_at_60": d["CRPS"] < min(pers["CRPS"], pyst["CRPS"])}
    payload = {**meta, "model": _rel(model.path),
               "model_meta": {k: model.meta.get(k) for k in ("steps", "wall_time_s", "commit", "machine", "command")},
               "vae_meta": {k: model.meta.get("vae", {}).get(k) for k in ("steps", "wall_time_s", "commit", "command")},
               "first_guess_pixels": bool(model.ldm.cfg.first_guess_pixels), "store": store, "picture": picture,
               "acceptance_ddim100_beats_baselines_at_60min": accept,
               "main": {k: _record(r) for k, r in main_res.items()},
               "reference": {k: _record(r) for k, r in ref_res.items()}}
    lines = _summary_lines(args, meta, model, store, payload, main_res, accept, picture)
    lines += _section("Main evaluation", main_res)
    lines += _section("Reference evaluation with ancestral DDPM-1000", ref_res)
    write_results(Path(args.out), args.name, payload, lines + [""])
    return 0


def _summary_lines(args, meta, model, store, payload, main_res, accept, picture) -> list:
    d, dm, pers, pyst = (_at_last_lead(main_res[k]) for k in ("ddim:100", "ddim:100 mean", "persistence", "pysteps"))
    lines = header("Default model: skill on the synthetic SEVIR-LR test split", meta)
    first_n = main_res["ddim:100"].attrs["n_members"]
    mm, vm = model.meta, model.meta.get("vae", {})
    hw = mm.get("machine", {})
    lines += [f"- model: `{args.model}` ({payload['model']}): VAE {vm.get('steps')} steps in "
              f"{vm.get('wall_time_s', float('nan')) / 60:.1f} min, denoiser {mm.get('steps')} steps in "
              f"{mm.get('wall_time_s', float('nan')) / 60:.1f} min on {hw.get('cpu_count')} CPU cores "
              f"({hw.get('gpu', 'no GPU')}), commit {str(mm.get('commit'))[:10]}",
              f"- data: `{store}`",
              "- decoding: " + ("first guess in pixels + decoded correction" if model.ldm.cfg.first_guess_pixels
                                else "latents decoded by the VAE"),
              f"- at +60 min, DDIM-100 vs persistence and pysteps: CSI-M pool16 {d['CSI_M_pool16']:.4f} vs "
              f"{pers['CSI_M_pool16']:.4f} / {pyst['CSI_M_pool16']:.4f}; CRPS {d['CRPS']:.4f} vs "
              f"{pers['CRPS']:.4f} / {pyst['CRPS']:.4f} → beats both on CSI-pool16: "
              f"{'yes' if accept['CSI_M_pool16_at_60'] else 'NO'}, on CRPS: {'yes' if accept['CRPS_at_60'] else 'NO'}",
              f"- the same with the ensemble mean's CSI-M pool16 ({dm['CSI_M_pool16']:.4f}, {first_n} members): "
              f"{'yes' if accept['CSI_M_pool16_at_60_ensemble_mean'] else 'NO'}",
              f"- picture: `{picture['png']}` (test event {picture['event_id']}, window start {picture['start']})"]
    first = next(iter(main_res.values())).attrs
    lines += ["", f"Scores at +60 min, main evaluation ({first['n_windows']} test windows × {first['n_members']} "
              "members; CRPS in bytes/255, the MAE for the deterministic baselines):", "",
              "| method | NFE | CSI-M | CSI-M pool4 | CSI-M pool16 | HSS | CRPS |", "|---|---|---|---|---|---|---|"]
    for k, r in main_res.items():
        a = _at_last_lead(r)
        lines.append(f"| {k} | {r.attrs['nfe']} | {a['CSI_M']:.4f} | {a['CSI_M_pool4']:.4f} | "
                     f"{a['CSI_M_pool16']:.4f} | {a['HSS']:.4f} | {a['CRPS']:.4f} |")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
