"""``python -m nowcast.evaluate``: score samplers of a nowcaster and baselines on a store split.

Every sampler forecasts the same windows with the same member seeds::

    python -m nowcast.evaluate --samplers ddpm:1000 ddim:100 ddim:5 spanlift:runs/00003-spanlift-ddim5-mse-teacher \\
        persistence pysteps --members 4 --windows 32 --out eval/

Samplers: ``ddpm:N`` (ancestral), ``SOLVER:STEPS`` (``ddim:100``, ``ipndm:5``, …), ``spanlift:RUN_DIR``
or ``dyweight:RUN_DIR`` (a learned solver from ``python -m nowcast.train``; ``spanlift:default`` is
the shipped one), ``persistence``, ``extrapolation`` (alias ``pysteps``), ``steps`` (pysteps' STEPS
ensemble). An ensemble's members are scored each as a forecast (counts summed over members);
``--views mean pm probability`` adds its ensemble mean, probability-matched mean and probability
yes/no forecasts, from the same members. Without ``--data`` the cached synthetic SEVIR-LR
store is used. Writes ``OUT/metrics.nc`` (every score over sampler × threshold × pooling scale ×
lead time: CSI, POD, FAR, BIAS, HSS, FSS, CRPS, …, plus NFE and wall time), ``OUT/metrics.json``
(pooled and per-lead summaries) and ``OUT/table.md`` (laid out like the SpanLift paper's Table 4).
LPIPS is reported only when the AlexNet weights are on this machine. Bad options: one message,
exit status 2; existing outputs are not overwritten without ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .foundation.cli import HelpFormatter, count, fail, seed
from .foundation.device import resolve_device
from .foundation.files import atomic_write_text, check_writable
from .foundation.provenance import file_digest

__all__ = ["main"]

OUTPUTS = ("metrics.nc", "metrics.json", "table.md")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nowcast.evaluate", description=__doc__.replace("``", ""),
                                formatter_class=HelpFormatter)
    p.add_argument("--samplers", nargs="+", default=["ddim:100", "ddim:5", "persistence", "pysteps"],
                   metavar="SAMPLER", help="what to evaluate (default: ddim:100 ddim:5 persistence pysteps)")
    p.add_argument("--model", default="default", help="nowcaster: default, a model file or an ldm run dir")
    p.add_argument("--data", default=None, help="zarr store (default: the cached synthetic SEVIR-LR store)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="store split (default test)")
    p.add_argument("--windows", type=count(1), default=None, help="evenly spaced windows of the split (default all)")
    p.add_argument("--members", type=count(1, 1024, "memory grows with the members"), default=4, help="ensemble members per context (default 4)")
    p.add_argument("--seed", type=seed, default=0, help="member m uses seed SEED+m (default 0)")
    p.add_argument("--batch", type=count(1), default=4, help="contexts per model call (default 4)")
    p.add_argument("--views", nargs="+", default=["members"], choices=("members", "mean", "pm", "probability"),
                   metavar="VIEW",
                   help="what the categorical scores of an ensemble judge, each from the same forecasts: "
                        "members (each member, counts summed; always), mean (the ensemble mean, "
                        "'NAME+mean'), pm (the probability-matched mean, 'NAME+pm'), probability (yes "
                        "where the fraction of members over a threshold reaches a level chosen per "
                        "threshold on the val split, 'NAME+prob') (default: members)")
    p.add_argument("--level-windows", type=count(1), default=None,
                   help="val windows on which the probability view chooses its levels (default: as --windows)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where the model runs")
    p.add_argument("--out", default="evaluation", help="output folder (default ./evaluation)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def run(args) -> dict:
    """Evaluate per parsed ``args``; returns the results (sampler → xarray Dataset)."""
    from .data.synthetic_store import synthetic_store
    from .io.events import write_netcdf
    from .nowcasters import parse_spec, resolve_nowcaster, score_nowcasters
    from .verification.report import combine_results, sampler_table, summary_json

    specs = [parse_spec(s) for s in args.samplers]
    if args.members < 1 or args.batch < 1 or (args.windows is not None and args.windows < 1):
        raise ValueError("--members, --batch and --windows must be ≥ 1")
    out = Path(args.out)
    check_writable(out / OUTPUTS[0], "--out folder")
    existing = [str(out / f) for f in OUTPUTS if (out / f).exists()]
    if existing and not args.overwrite:
        raise ValueError(f"{', '.join(existing)} exist; choose another --out or pass --overwrite")
    device = resolve_device(args.device)
    model = None
    if any(s.kind != "baseline" for s in specs):
        from .models.model_files import load_model

        model = load_model(args.model, device)
    nowcasters = [resolve_nowcaster(s, model, device, require_steps=True) for s in specs]
    store = args.data or synthetic_store(progress=not args.no_progress)
    if model is not None:
        from .data.store import open_store

        frames = open_store(store)
        model.check_frames((frames.sizes["y"], frames.sizes["x"]), f"store {store}")
    t0 = time.perf_counter()
    if "probability" in args.views and args.split == "val":
        raise ValueError("--views probability chooses its levels on the val split: score another --split")
    results = score_nowcasters(nowcasters, store, args.split, windows=args.windows, members=args.members,
                               seed=args.seed, batch=args.batch, progress=not args.no_progress, views=args.views,
                               level_windows=args.level_windows or args.windows)
    provenance = {"command": " ".join(["python -m nowcast.evaluate", *sys.argv[1:]]), "store": store,
                  "split": args.split, "model": model.path.name if model is not None else None,
                  "model_sha256": file_digest(model.path) if model is not None else None,
                  "seconds": time.perf_counter() - t0}
    out.mkdir(parents=True, exist_ok=True)
    ds = combine_results(results)
    ds.attrs.update({k: str(v) for k, v in provenance.items()})
    write_netcdf(ds, out / "metrics.nc", overwrite=True)
    atomic_write_text(out / "metrics.json",
                      json.dumps({"provenance": provenance, "samplers": summary_json(results)}, indent=2) + "\n")
    lpips_note = next(iter(results.values())).attrs.get("lpips", "")
    table = sampler_table(results) + f"\n\nLPIPS: {lpips_note.rstrip('.')}. Scores pooled over lead times " \
        f"{[float(v) for v in ds.lead_time.values]} min; {args.members} members; " \
        f"{next(iter(results.values())).attrs['n_windows']} windows of the {args.split} split.\n"
    atomic_write_text(out / "table.md", table)
    print(table)
    return results


def main(argv: list | None = None) -> int:
    """Entry point; returns the exit status (2 for bad input)."""
    args = _parser().parse_args(argv)
    try:
        run(args)
    except (ValueError, OSError) as e:
        return fail(e)
    return 0


if __name__ == "__main__":
    from .foundation.cli import run_main

    raise SystemExit(run_main(main))
