"""SpanLift on the nowcaster: the SpanLift paper's Tables 4–6 and cost table, measured on the default model.

1. Trains (``python -m nowcast.train``'s spanlift stage, runs under ``--runs-dir``; a finished run
   is reused, an unfinished one resumed):
   SpanLift-5 on the DDIM base with (mse, teacher), (mse, target) and — with ``--inception`` —
   (inception, teacher); SpanLift-5 on the iPNDM base (mse, teacher); a DyWeight-5 scalar table,
   and SpanLift-5 on that trained DyWeight base (mse, teacher). DDIM on the VP grid is the
   solver core's Euler, so the DDIM base is also the paper's Euler base.
2. Table 4: every sampler on the same test windows and member seeds (``nowcast.nowcasters``):
   ddim:100 (the teacher), ddim:5, the SpanLift runs, persistence, pysteps (``--ddpm`` adds
   ancestral DDPM-1000).
3. Table 5: each base at 5 steps against SpanLift on it.
4. Table 6: out-of-span fraction of SpanLift's correction per step (``nowcast.solvers.span``) on
   validation pairs, for each base.
5. Cost: parameters, FLOPs (``torch.utils.flop_counter``), latency per forecast and throughput of
   DDIM-5 versus SpanLift-5, for the default model (its operator as trained: width 32 by default)
   and the paper-scale config (random weights, operator width 64 as in the paper: the cost does
   not depend on the weights).

Writes ``benchmarks/results/spanlift_nowcast.{json,md}``::

    python benchmarks/spanlift_nowcast.py [--model default] [--windows 32] [--members 4] [--iterations 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from common import ROOT, header, provenance, write_results
from nowcast.data.synthetic_store import synthetic_store
from nowcast.models.model_files import load_model, load_trained_solver
from nowcast.nowcasters import evaluate_samplers
from nowcast.verification.report import sampler_table, summary_json
from nowcast.train import run as train_run
from nowcast.training.config import load_config
from nowcast.foundation.cli import count


def _train(args, name: str, **section) -> Path:
    over = [("runs_dir", args.runs_dir), ("name", name), ("max_steps", args.iterations), ("seed", 0),
            ("batch_size", args.batch_size), ("val_every", max(1, args.iterations // 5)),
            ("ckpt_every", max(1, args.iterations // 5)), ("device", args.device),
            ("spanlift.model", args.model), ("spanlift.teacher_samples", args.teacher_samples),
            ("spanlift.val_samples", args.val_samples)]
    if args.data:
        over.append(("data", args.data))
    cfg = load_config(None, "spanlift", over + [(f"spanlift.{k}", v) for k, v in section.items()])
    t0 = time.perf_counter()
    run_dir = Path(train_run(cfg, progress=not args.no_progress))
    print(f"{name}: {run_dir} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return run_dir


def _pooled(summary: dict, name: str) -> dict:
    p = summary[name]["pooled"]
    return {"CSI_M": p["CSI_M"], "CSI_M_pool4": p["CSI_M_pool4"], "CSI_M_pool16": p["CSI_M_pool16"],
            "HSS": p["HSS_M"], "CRPS": p["CRPS"], "nfe": summary[name]["nfe"],
            "s_per_forecast": summary[name]["s_per_forecast"]}


@torch.no_grad()
def _span(args, run_dir: Path, model, store: str) -> list:
    """Out-of-span fractions per step on validation pairs (the run's own, from the teacher cache)."""
    from nowcast.solvers.span import span_analysis
    from nowcast.training.solver_stage import build_solver_job

    solver, meta = load_trained_solver(run_dir)
    cfg = load_config(None, "spanlift", [("spanlift.model", args.model), ("device", args.device)])
    job = build_solver_job(cfg, store, torch.device(args.device))
    val = job.observed_pairs("val", args.val_samples)
    return span_analysis(model.ldm.denoiser(), val.x, job.ldm.solver_grid(meta["steps"]), solver, cond=val.cond)


def _time_pair(fa, fb, repeats: int) -> tuple:
    """Median seconds of ``fa`` and ``fb`` (already warmed up), run alternately so that drifts of the
    machine's speed affect both alike."""
    ta, tb = [], []
    for _ in range(repeats):
        for fn, acc in ((fa, ta), (fb, tb)):
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


@torch.no_grad()
def _cost(ldm, spanlift, members: int, repeats: int, device: str) -> dict:
    """Parameters, FLOPs, latency of one forecast (1 context, ``members`` members) and throughput."""
    from torch.utils.flop_counter import FlopCounterMode

    ldm = ldm.to(device).eval()
    spanlift = spanlift.to(device).eval()
    frames = ldm.unet.cfg.height * 8, ldm.unet.cfg.width * 8
    ctx = torch.rand((1, ldm.unet.cfg.context_frames, *frames), generator=torch.Generator().manual_seed(0)).to(device)
    seeds = list(range(members))
    fns = {name: (lambda solver=solver: ldm.forecast(ctx, seeds=seeds, solver=solver, steps=5))
           for name, solver in (("DDIM-5", "ddim"), ("SpanLift-5", spanlift))}
    flops = {}
    for name, fn in fns.items():                   # the counted run is also the warm-up
        with FlopCounterMode(display=False) as counter:
            fn()
        flops[name] = counter.get_total_flops()
    latency = dict(zip(fns, _time_pair(*fns.values(), repeats)))
    n_model = sum(p.numel() for p in ldm.parameters())
    out = {}
    for name in fns:
        n_params = n_model + (sum(p.numel() for p in spanlift.parameters()) if name != "DDIM-5" else 0)
        out[name] = {"params_M": n_params / 1e6, "gflops_per_forecast": flops[name] / 1e9,
                     "latency_s": latency[name], "throughput_members_per_s": members / latency[name]}
    base, sl = out["DDIM-5"], out["SpanLift-5"]
    out["overhead"] = {"params_pct": 100 * (sl["params_M"] / base["params_M"] - 1),
                       "flops_pct": 100 * (sl["gflops_per_forecast"] / base["gflops_per_forecast"] - 1),
                       "latency_pct": 100 * (sl["latency_s"] / base["latency_s"] - 1)}
    return out


def _paper_scale_model():
    from nowcast.models.ldm import LatentDiffusion
    from nowcast.models.unet import SpaceTimeUNet
    from nowcast.models.vae import FrameVAE
    from nowcast.training.stages import model_configs

    cfg = load_config(str(ROOT / "configs" / "sevirlr_prediff.yaml"), "ldm")
    vae, unet, diffusion, _ = model_configs(cfg, (128, 128))
    torch.manual_seed(0)
    return LatentDiffusion(FrameVAE(vae), SpaceTimeUNet(unet), diffusion).eval()


def _fmt(v, digits=4):
    return "—" if v is None else f"{v:.{digits}f}"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="default")
    p.add_argument("--data", default=None, help="store (default: the cached synthetic SEVIR-LR store)")
    p.add_argument("--windows", type=count(1), default=32)
    p.add_argument("--members", type=count(1), default=4)
    p.add_argument("--iterations", type=count(1), default=200, help="optimiser steps of every solver training")
    p.add_argument("--batch-size", type=count(1), default=4)
    p.add_argument("--teacher-samples", type=count(1), default=128,
                   help="teacher pool shared by the teacher-matched runs (0: iterations × batch size, new noise "
                        "every batch; ≈ 1 s per 16 pairs and teacher step on 2 CPU cores, so 128 by default)")
    p.add_argument("--val-samples", type=count(1), default=16)
    p.add_argument("--inception", action="store_true", help="also train SpanLift with the Inception loss")
    p.add_argument("--ddpm", action="store_true", help="also evaluate ancestral DDPM-1000 (slow on CPU)")
    p.add_argument("--skip-paper-scale", action="store_true", help="no cost measurement of the paper-scale model")
    p.add_argument("--runs-dir", default=str(ROOT / "benchmarks" / "runs"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--no-progress", action="store_true")
    return p


def _train_all(args) -> tuple:
    """``(runs, ipndm, dyweight, on_dyweight)``: the run directories of every learned solver."""
    runs = {"SpanLift (MSE, teacher)": _train(args, "bench-spanlift-ddim5-mse-teacher", base="ddim:5"),
            "SpanLift (MSE, target)": _train(args, "bench-spanlift-ddim5-mse-target", base="ddim:5", target="target")}
    if args.inception:
        runs["SpanLift (Inc., teacher)"] = _train(args, "bench-spanlift-ddim5-inception-teacher", base="ddim:5",
                                                  loss="inception")
    ipndm = _train(args, "bench-spanlift-ipndm5-mse-teacher", base="ipndm:5")
    dyweight = _train(args, "bench-dyweight5-mse-teacher", solver="dyweight", base="ddim:5")
    on_dyweight = _train(args, "bench-spanlift-dyweight5-mse-teacher", base=str(dyweight))
    return runs, ipndm, dyweight, on_dyweight


def _samplers(args, runs, ipndm, dyweight, on_dyweight) -> dict:
    """Sampler spec → its name in the tables, in table order."""
    names = {"ddpm:1000": "DDPM-1000"} if args.ddpm else {}
    names.update({"ddim:100": "DDIM-100 (teacher)", "ddim:5": "DDIM-5"})
    names.update({f"spanlift:{run_dir}": label for label, run_dir in runs.items()})
    names.update({"ipndm:5": "iPNDM-5", f"spanlift:{ipndm}": "SpanLift on iPNDM-5", f"dyweight:{dyweight}": "DyWeight-5",
                  f"spanlift:{on_dyweight}": "SpanLift on DyWeight-5"})
    names.update(persistence="persistence", pysteps="pysteps (extrapolation)")
    return names


def _costs(args, model, run_dir) -> tuple:
    """``(cost table, the default-width SpanLift)``: DDIM-5 against SpanLift-5 per forecast."""
    sl_default, _ = load_trained_solver(run_dir)
    cost = {"default": _cost(model.ldm, sl_default, args.members, 30, args.device)}
    if not args.skip_paper_scale:
        from nowcast.solvers import SpanLift, get_solver

        big = _paper_scale_model()
        sl_big = SpanLift(get_solver("ddim"), num_steps=5, channels=big.unet.cfg.latent_channels, spatial_dims=3,
                          hidden=64, sigma_data=1.0, channel_axis=2)        # the paper's width
        cost["paper_scale"] = _cost(big, sl_big, 1, 1, args.device)    # ≈ 2 min per forecast on 2 CPU cores
    return cost, sl_default


def _checks(summary: dict, cost: dict) -> dict:
    s = {k: _pooled(summary, k) for k in summary}
    teacher, d5, sl, slt = (s["DDIM-100 (teacher)"], s["DDIM-5"], s["SpanLift (MSE, teacher)"],
                            s["SpanLift (MSE, target)"])
    return {
        "spanlift_mse_teacher_beats_ddim5": {m: (sl[m] < d5[m]) if m == "CRPS" else (sl[m] > d5[m])
                                             for m in ("CSI_M_pool16", "HSS", "CRPS")},
        "spanlift_target_reaches_teacher_csi_pool16": slt["CSI_M_pool16"] >= teacher["CSI_M_pool16"],
        "nfe_ratio_teacher_over_spanlift": teacher["nfe"] / slt["nfe"],
        "operator_latency_overhead_pct": cost["default"]["overhead"]["latency_pct"],
        "operator_latency_overhead_at_most_5pct": cost["default"]["overhead"]["latency_pct"] <= 5.0}


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    meta = provenance("python benchmarks/spanlift_nowcast.py " + " ".join(sys.argv[1:] if argv is None else argv))
    store = args.data or synthetic_store()
    model = load_model(args.model, args.device)
    runs, ipndm, dyweight, on_dyweight = _train_all(args)
    names = _samplers(args, runs, ipndm, dyweight, on_dyweight)
    results = evaluate_samplers(list(names), store, model.task, "test", model, windows=args.windows,
                                members=args.members, seed=0, device=args.device, progress=not args.no_progress)
    results = {names[k]: v for k, v in results.items()}
    summary = summary_json(results)
    bases = [("Euler / DDIM", "DDIM-5", "SpanLift (MSE, teacher)"), ("iPNDM", "iPNDM-5", "SpanLift on iPNDM-5"),
             ("DyWeight (trained)", "DyWeight-5", "SpanLift on DyWeight-5")]
    table5 = [{"base": b, "base_scores": _pooled(summary, bn), "spanlift_scores": _pooled(summary, sn)}
              for b, bn, sn in bases]
    table6 = {b: _span(args, run_dir, model, store)
              for b, run_dir in (("Euler / DDIM", runs["SpanLift (MSE, teacher)"]), ("iPNDM", ipndm),
                                 ("DyWeight", on_dyweight))}
    cost, sl_default = _costs(args, model, runs["SpanLift (MSE, teacher)"])
    checks = _checks(summary, cost)
    payload = {**meta, "model": model.path.name, "store": store, "windows": args.windows, "members": args.members,
               "iterations": args.iterations, "runs": {k: str(v) for k, v in runs.items()},
               "table4": summary, "table5": table5, "table6": table6, "cost": cost, "acceptance": checks}
    md = _markdown(args, meta, results, checks, table5, table6, cost, sl_default)
    write_results(Path(args.out), "spanlift_nowcast", payload, md)
    return 0


def _markdown(args, meta, results, checks, table5, table6, cost, sl_default) -> list:
    first = next(iter(results.values()))
    md = header("SpanLift on the default nowcaster (synthetic SEVIR-LR test split)", meta)
    md += ["", f"{first.attrs['n_windows']} test windows × {args.members} members, the same windows and member seeds "
           f"for every sampler; every learned solver trained {args.iterations} steps (batch {args.batch_size}; "
           f"teacher pool {args.teacher_samples or args.iterations * args.batch_size} DDIM-100 pairs, "
           f"shared by the teacher-matched runs). Scores pooled over the six lead times "
           "(+10 … +60 min); CSI = CSI-M, HSS averaged over thresholds. Laid out like the SpanLift paper's "
           "Table 4:", "", sampler_table(results), "",
           f"LPIPS: {first.attrs.get('lpips', '')}", "",
           "Checks: " + "; ".join(f"{k} = {v}" for k, v in checks.items()), "",
           "## Table 5 layout: base solvers at 5 steps, without and with SpanLift (MSE, teacher)", "",
           "| base | method | CSI | CSI-16 | HSS | CRPS |", "|---|---|---|---|---|---|"]
    for row in table5:
        for label, sc in (("base", row["base_scores"]), ("+SpanLift", row["spanlift_scores"])):
            md.append(f"| {row['base']} | {label} | {_fmt(sc['CSI_M'])} | {_fmt(sc['CSI_M_pool16'])} | "
                      f"{_fmt(sc['HSS'])} | {_fmt(sc['CRPS'])} |")
    md += ["", "## Table 6 layout: out-of-span fraction of the learned correction per step", "",
           "| step | " + " | ".join(table6) + " |", "|---|" + "---|" * len(table6)]
    n_steps = max(len(v) for v in table6.values())
    for i in range(n_steps):
        md.append(f"| {i + 1} | " + " | ".join(_fmt(v[i]["out_of_span"], 2) if i < len(v) else "—"
                                              for v in table6.values()) + " |")
    return md + _cost_lines(args, cost, sl_default)


def _cost_lines(args, cost: dict, sl_default) -> list:
    md = ["", "## Cost per forecast (context → 6 frames)", "",
          f"{args.members} members, 5 steps, median of 30 alternating runs; SpanLift operator width "
          f"{sl_default.shape_kwargs['hidden']} on the default model"
          + ("" if args.skip_paper_scale else ", 64 (the paper's) on the paper-scale config (1 member, 1 run)") + ".",
          "", "| model | sampler | params (M) | GFLOPs | latency (s) | throughput (members/s) |",
          "|---|---|---|---|---|---|"]
    for mname, c in cost.items():
        for k in ("DDIM-5", "SpanLift-5"):
            md.append(f"| {mname} | {k} | {c[k]['params_M']:.3f} | {c[k]['gflops_per_forecast']:.2f} | "
                      f"{c[k]['latency_s']:.3f} | {c[k]['throughput_members_per_s']:.2f} |")
        o = c["overhead"]
        md.append(f"| {mname} | overhead | {o['params_pct']:+.2f}% | {o['flops_pct']:+.2f}% | "
                  f"{o['latency_pct']:+.1f}% | |")
    return md + [""]


if __name__ == "__main__":
    from nowcast.foundation.cli import run_main

    raise SystemExit(run_main(main))
