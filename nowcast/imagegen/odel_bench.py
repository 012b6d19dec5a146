"""CPU benchmark of ODE_t(ODE_l): ``python -m nowcast.imagegen bench --ode-l``.

Quality against wall time over a grid of time steps × blocks per step, for three samplers:

1. **fixed depth** — the DiT trained with the time-shortcut objective at its full depth only;
2. **ODE_t(ODE_l)** — the same network, size and training budget trained at several depths with
   the length-consistency term (:mod:`.odel_objective`);
3. **ODE_t(ODE_l) + SpanLift** — a depth-conditioned SpanLift on the shortcut Euler sampler of (2),
   trained by endpoint teacher matching for each of a few (steps, blocks) schedules (teacher: the
   same network at full depth with many small steps).

Each model samples from the same test noise with the shortcut sampler on the solver core
(:func:`.odel_sampling.sample_odel`): the fixed-depth model at its full depth (``--fixed-all-depths``:
at every depth of the grid as well), the ODE_t(ODE_l) model at ``steps × blocks`` (one depth at
every step) and with a *ramp* schedule (fewer blocks at high noise: the depths in increasing order over the steps). A
sample set is scored by FID (Inception-v3 of the offline wheel) and the Fréchet distance on a
classifier trained on the data; its cost is the NFE, the block-evaluations per sample and the
wall time of sampling the whole set (the least of ``timing_repeats`` runs, so that other work on
the machine inflates it as little as possible).

The acceptance figure ``time_ratio_at_fixed_best_fid`` is the least wall time at which the
ODE_t(ODE_l) model reaches the fixed-depth model's best FID, divided by the wall time of that
best fixed-depth point (``None`` when it never does). Writes ``ode_l.json``, ``ode_l.md`` and
``ode_l.png`` (FID against seconds, frontiers drawn).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from ..foundation.cli import HelpFormatter, count, seed
from ..foundation.files import atomic_write_text
from ..foundation.provenance import file_digest, provenance_lines, run_provenance
from ..solvers.registry import get_solver, save_solver
from ..training.matching import MatchingConfig, train_endpoint_matching
from .datasets import DATASETS, load_images
from .odel import ODELConfig
from .odel_objective import ShortcutConfig
from .odel_sampling import ODELDenoiser, TeacherBatches, sample_odel, uniform_flow_sigmas
from .odel_train import ODELTrainConfig, load_odel, train_odel
from .scoring import ScoreCache, Scorer

__all__ = ["ODELBenchSettings", "ramp_schedule", "run_odel_benchmark", "acceptance", "render_markdown", "main"]

FAMILIES = ("fixed", "odel", "odel+spanlift")


@dataclass(frozen=True)
class ODELBenchSettings:
    """Everything that defines a run of the benchmark."""

    data: str = "digits"
    width: int = 64
    heads: int = 4
    blocks: int = 12
    group: int = 4
    patch: int = 2
    depths: tuple = (4, 8, 12)
    train_steps: int = 6000
    batch_size: int = 64
    steps: tuple = (1, 2, 4, 8, 16)
    samples: int = 400
    timing_repeats: int = 3
    spanlift_points: tuple = ("2:4", "4:4", "4:8", "4:ramp")
    spanlift_iterations: int = 300
    spanlift_batch: int = 32
    teacher_steps: int = 32
    fixed_all_depths: bool = False
    seed: int = 0
    work_dir: str = "runs/ode-l-bench"
    fid: bool = True


def ramp_schedule(steps: int, depths: tuple) -> list:
    """Fewer blocks at high noise: the depths in increasing order, each for an equal share of the steps
    (the last depth takes what is left), e.g. 4 steps over (4, 8, 12) → [4, 4, 8, 12]."""
    ds = sorted(depths)
    return [ds[min(len(ds) - 1, n * len(ds) // steps)] for n in range(steps)]


def _schedule(spec: str, steps: int, s: ODELBenchSettings) -> list:
    return ramp_schedule(steps, s.depths) if spec == "ramp" else [int(spec)] * steps


def _train(s: ODELBenchSettings, images, family: str, log) -> str:
    model = ODELConfig(shape=tuple(images.shape[1:]), patch=s.patch, width=s.width, heads=s.heads, blocks=s.blocks,
                       group=s.group)
    depths = (s.blocks,) if family == "fixed" else tuple(s.depths)
    cfg = ODELTrainConfig(model=model, objective=ShortcutConfig(depths=depths), steps=s.train_steps,
                          batch_size=s.batch_size, seed=s.seed)
    run = Path(s.work_dir) / f"{family}-{s.data}-{s.train_steps}"
    path = run / "model.pt"
    if not path.is_file():
        log(f"training the {family} DiT on {s.data} ({s.train_steps} steps, depths {depths}) in {run}")
        train_odel(images, None, cfg, run, progress=sys.stderr.isatty(), log=log)
    return str(path)


def _sampler(model, noise: torch.Tensor, steps: int, blocks: list, solver):
    """``make_images`` for the scorer: the sample set and its cost in evaluations and blocks."""
    def make():
        with torch.no_grad():
            images, res = sample_odel(model, noise, uniform_flow_sigmas(steps), solver, blocks)
        return images.float().clamp(-1, 1), res.nfe, {"block_evaluations": res.block_evaluations, "blocks": blocks}
    return make


def _time(model, noise: torch.Tensor, steps: int, blocks: list, solver, repeats: int) -> float:
    """Least wall time of ``repeats`` runs sampling the whole set."""
    sig = uniform_flow_sigmas(steps)
    with torch.no_grad():
        return min(sample_odel(model, noise, sig, solver, blocks)[1].seconds for _ in range(repeats))


def _spanlift(s: ODELBenchSettings, model, model_path: str, steps: int, blocks: list, sigma_data: float, log):
    """A depth-conditioned SpanLift on shortcut Euler for (steps, blocks), trained (or found trained)."""
    run = Path(s.work_dir) / f"spanlift-{Path(model_path).parent.name}-{steps}-{'-'.join(map(str, blocks))}"
    sig = uniform_flow_sigmas(steps)
    torch.manual_seed(s.seed)
    student = get_solver("spanlift", base="euler", num_steps=steps, channels=int(model.cfg.shape[0]), hidden=32,
                         blocks=2, depth_conditioned=True, sigma_data=sigma_data).double()
    source = TeacherBatches(model, s.teacher_steps)
    val = source(128, torch.Generator().manual_seed(s.seed + 1))
    cfg = MatchingConfig(iterations=s.spanlift_iterations, batch_size=s.spanlift_batch, lr=1e-3, seed=s.seed,
                         val_every=max(1, s.spanlift_iterations // 10), save_every=max(1, s.spanlift_iterations // 10))
    t0 = time.perf_counter()
    result = train_endpoint_matching(student, ODELDenoiser(model), sig, source, val, cfg, run_dir=run,
                                     progress=sys.stderr.isatty(), blocks=blocks)
    log(f"spanlift {steps} steps, blocks {blocks}: val RMSE {result.init_val ** 0.5:.4f} → "
        f"{result.best_val ** 0.5:.4f} ({time.perf_counter() - t0:.0f} s)")
    save_solver(run / "solver.pt", student, {"task": "image", "steps": steps, "blocks": blocks,
                                             "training": {"result": result.to_dict()}})
    return student.float(), run.name, result


def run_odel_benchmark(s: ODELBenchSettings, log=print) -> dict:
    """Train (or find) the two models, sample the grid, train the SpanLift points, score everything.

    Returns
    -------
    dict
        ``settings``, ``models``, ``classifier_accuracy``, ``real_data`` and ``records`` (one per
        family × steps × schedule: nfe, block_evaluations, seconds, fid, fd_classifier).
    """
    data = load_images(s.data)
    paths = {f: _train(s, data.images, f, log) for f in ("fixed", "odel")}
    models = {f: load_odel(p) for f, p in paths.items()}
    gen = torch.Generator().manual_seed(10_000 + s.seed)
    noise = torch.randn((s.samples,) + data.shape, generator=gen)
    cache = ScoreCache(Path(s.work_dir) / "scores", {"data": s.data, "samples": s.samples, "seed": s.seed,
                                                      "repeats": s.timing_repeats})
    scorer = Scorer(data, cache, fid=s.fid, seed=s.seed)
    real = scorer.score({"record": "real"}, lambda: (data.images[:s.samples], 0), None)
    real.pop("nfe")
    euler = get_solver("euler")
    records, timing = [], []

    def add(family, steps, spec, blocks, model, solver, model_path, extra=None):
        ident = {"family": family, "model_sha256": file_digest(model_path), "steps": steps, "blocks": blocks,
                 **(extra or {})}
        rec = {"family": family, "steps": steps, "schedule": spec,
               **scorer.score(ident, _sampler(model, noise, steps, blocks, solver), None)}
        records.append(rec)
        timing.append((rec, model, steps, blocks, solver))
        log(f"{family:14s} steps {steps:2d} blocks {spec:>4s}: " + ", ".join(
            f"{k} {rec[k]:.4g}" for k in ("fid", "fd_classifier", "block_evaluations") if k in rec))

    for family in ("fixed", "odel"):
        specs = [str(d) for d in s.depths] + ["ramp"]
        if family == "fixed" and not s.fixed_all_depths:
            specs = [str(s.blocks)]                      # the only depth it was trained at
        for steps in s.steps:
            for spec in specs:
                if spec == "ramp" and len(set(_schedule(spec, steps, s))) == 1:
                    continue                             # one step: the ramp is a uniform depth
                add(family, steps, spec, _schedule(spec, steps, s), models[family], euler, paths[family])
    sigma_data = float(data.images.std())
    for point in s.spanlift_points:
        steps_s, spec = point.split(":")
        steps = int(steps_s)
        blocks = _schedule(spec, steps, s)
        solver, run, result = _spanlift(s, models["odel"], paths["odel"], steps, blocks, sigma_data, log)
        add("odel+spanlift", steps, spec, blocks, models["odel"], solver, paths["odel"],
            {"spanlift": run, "solver_sha256": file_digest(Path(s.work_dir) / run / "solver.pt"),
             "iterations": s.spanlift_iterations, "teacher_steps": s.teacher_steps})
        records[-1]["val_rmse"] = [result.init_val ** 0.5, result.best_val ** 0.5]
    log(f"timing {len(timing)} sample sets ({s.timing_repeats} runs each)")
    for rec, model, steps, blocks, solver in timing:
        rec["seconds"] = _time(model, noise, steps, blocks, solver, s.timing_repeats)
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(s).items()}
    return {"settings": settings, "models": paths, "classifier_accuracy": scorer.classifier_accuracy,
            "real_data": real, "records": records}


def acceptance(records: list, metric: str = "fid") -> dict:
    """The benchmark's two checks.

    * ``time_ratio_at_fixed_best_fid``: least seconds of an ODE_t(ODE_l) record whose ``metric``
      is at most the fixed-depth model's best, over the seconds of that best fixed-depth record.
    * ``spanlift_wins``: the (steps, schedule) points where SpanLift lowers ``metric``.
    """
    fixed = [r for r in records if r["family"] == "fixed" and metric in r]
    odel = [r for r in records if r["family"] == "odel" and metric in r]
    out: dict = {"metric": metric}
    if fixed and odel:
        best = min(fixed, key=lambda r: r[metric])
        reach = [r for r in odel if r[metric] <= best[metric]]
        first = min(reach, key=lambda r: r["seconds"]) if reach else None
        out.update({"fixed_best": {k: best[k] for k in ("steps", "schedule", metric, "seconds")},
                    "odel_reaching": None if first is None else {k: first[k] for k in ("steps", "schedule", metric,
                                                                                        "seconds")},
                    "time_ratio_at_fixed_best_fid": None if first is None else first["seconds"] / best["seconds"]})
    plain = {(r["steps"], r["schedule"]): r[metric] for r in odel}
    wins = [[r["steps"], r["schedule"], plain[(r["steps"], r["schedule"])], r[metric]]
            for r in records if r["family"] == "odel+spanlift" and (r["steps"], r["schedule"]) in plain
            and r[metric] < plain[(r["steps"], r["schedule"])]]
    out["spanlift_wins"] = wins
    out["spanlift_points"] = sum(r["family"] == "odel+spanlift" for r in records)
    return out


def render_markdown(result: dict, prov: dict, png: str | None = None) -> str:
    """The results page: provenance, a compact table (FID and seconds by schedule × steps), the checks,
    the plot and every record."""
    s = result["settings"]
    recs = result["records"]
    metric = "fid" if any("fid" in r for r in recs) else "fd_classifier"
    steps = sorted({r["steps"] for r in recs})
    lines = ["# ODE_t(ODE_l): quality against wall time (CPU)", "", *provenance_lines(prov), "",
             f"Data `{s['data']}`; DiT width {s['width']}, {s['blocks']} blocks in groups of {s['group']}, patch "
             f"{s['patch']}; both models {s['train_steps']} steps × batch {s['batch_size']} (fixed depth: depth "
             f"{s['blocks']} only; ODE_t(ODE_l): depths {s['depths']}). {s['samples']} samples per set from the "
             f"same noise, shortcut Euler on the solver core; seconds: the whole set, least of {s['timing_repeats']} "
             f"runs. SpanLift: depth-conditioned, {s['spanlift_iterations']} iterations × batch {s['spanlift_batch']}, "
             f"teacher {s['teacher_steps']} full-depth shortcut steps. Cells: {metric.upper() if metric == 'fid' else metric} "
             "/ seconds; `ramp`: fewer blocks at high noise.", "",
             "| family | blocks | " + " | ".join(f"{n} steps" for n in steps) + " |", "|---|---|" + "---|" * len(steps)]
    rows: dict = {}
    for r in recs:
        rows.setdefault((r["family"], r["schedule"]), {})[r["steps"]] = r
    for (family, spec), cells in rows.items():
        lines.append(f"| {family} | {spec} | " + " | ".join(
            f"{cells[n][metric]:.2f} / {cells[n]['seconds']:.3f}" if n in cells else "–" for n in steps) + " |")
    real = result.get("real_data", {})
    acc = result.get("acceptance", {})
    lines += ["", "Reference (real images, first samples vs the whole set): " +
              ", ".join(f"{k} {v:.3f}" for k, v in real.items()) + f"; classifier accuracy "
              f"{result['classifier_accuracy']:.3f}.", "", f"Checks ({metric}): `{json.dumps(acc)}`", ""]
    if png:
        lines += ["## Quality against latency", "", f"![quality against latency]({png})", ""]
    lines += ["## Every record", "",
              "| family | steps | blocks | NFE | block-evals | seconds | FID | classifier FD |",
              "|---|---|---|---|---|---|---|---|"]
    for r in recs:
        fid = f"{r['fid']:.3f}" if "fid" in r else "–"
        lines.append(f"| {r['family']} | {r['steps']} | {','.join(map(str, r['blocks']))} | {r['nfe']} | "
                     f"{r['block_evaluations']} | {r['seconds']:.3f} | {fid} | {r['fd_classifier']:.3f} |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    """FID (or classifier FD) against seconds per sample set, one colour per family, frontiers drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = "fid" if any("fid" in r for r in result["records"]) else "fd_classifier"
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for family, colour in zip(FAMILIES, ("tab:grey", "tab:blue", "tab:red")):
        recs = sorted((r for r in result["records"] if r["family"] == family), key=lambda r: r["seconds"])
        if not recs:
            continue
        ax.scatter([r["seconds"] for r in recs], [r[metric] for r in recs], s=18, color=colour, alpha=0.6,
                   label=family)
        front, best = [], float("inf")
        for r in recs:
            if r[metric] < best:
                best = r[metric]
                front.append(r)
        ax.step([r["seconds"] for r in front], [r[metric] for r in front], where="post", color=colour)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"seconds per {result['settings']['samples']} samples (CPU)")
    ax.set_ylabel(metric.upper() if metric == "fid" else "classifier FD")
    ax.set_title("ODE_t(ODE_l): quality against latency")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nowcast.imagegen bench --ode-l", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    d = ODELBenchSettings()
    p.add_argument("--data", default=d.data, choices=DATASETS, help="bundled image set")
    p.add_argument("--width", type=count(8), default=d.width, help="DiT width")
    p.add_argument("--blocks", type=count(1), default=d.blocks, help="DiT blocks (full depth)")
    p.add_argument("--group", type=count(1), default=d.group, help="blocks per group (one Euler step in depth)")
    p.add_argument("--depths", type=count(1), nargs="+", default=list(d.depths),
                   help="depths the ODE_t(ODE_l) model trains at and the grid samples at")
    p.add_argument("--train-steps", type=count(1), default=d.train_steps, help="training steps of each model")
    p.add_argument("--steps", type=count(1), nargs="+", default=list(d.steps), help="time steps of the grid")
    p.add_argument("--samples", type=count(2), default=d.samples, help="samples per set (FID bias grows as it shrinks)")
    p.add_argument("--timing-repeats", type=count(1), default=d.timing_repeats, help="timed runs per set (least kept)")
    p.add_argument("--spanlift", nargs="*", default=list(d.spanlift_points),
                   help="STEPS:BLOCKS points (BLOCKS a depth or 'ramp') where SpanLift is trained")
    p.add_argument("--spanlift-iterations", type=count(1), default=d.spanlift_iterations,
                   help="optimiser steps of each SpanLift")
    p.add_argument("--teacher-steps", type=count(2), default=d.teacher_steps, help="steps of SpanLift's teacher")
    p.add_argument("--fixed-all-depths", action="store_true",
                   help="also sample the fixed-depth model at fewer blocks than it was trained at")
    p.add_argument("--seed", type=seed, default=d.seed, help="seed of models, training and test noise")
    p.add_argument("--work-dir", default=d.work_dir, help="model and SpanLift runs, cached scores (a rerun resumes)")
    p.add_argument("--no-fid", action="store_true", help="skip the Inception FID (classifier FD only)")
    p.add_argument("--threads", type=count(1), default=None, help="torch CPU threads")
    p.add_argument("--out", default="runs/ode-l-bench/results", help="where ode_l.json/.md/.png go")
    return p


def _check_points(points: list, depths: tuple, blocks: int, parser) -> tuple:
    for point in points:
        steps, _, spec = point.partition(":")
        if not steps.isdigit() or int(steps) < 1 or not (spec == "ramp" or (spec.isdigit() and 1 <= int(spec) <= blocks)):
            parser.error(f"--spanlift {point!r}: expected STEPS:BLOCKS with BLOCKS in 1 … {blocks} or 'ramp'")
    bad = [d for d in depths if d > blocks]
    if bad:
        parser.error(f"--depths {bad[0]} exceeds --blocks {blocks}")
    return tuple(points)


def main(argv: list | None = None) -> int:
    """Command-line entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    s = replace(ODELBenchSettings(), data=args.data, width=args.width, blocks=args.blocks, group=args.group,
                depths=tuple(sorted(set(args.depths))), train_steps=args.train_steps, steps=tuple(args.steps),
                samples=args.samples, timing_repeats=args.timing_repeats,
                spanlift_points=_check_points(args.spanlift, tuple(args.depths), args.blocks, parser),
                spanlift_iterations=args.spanlift_iterations, teacher_steps=args.teacher_steps,
                fixed_all_depths=args.fixed_all_depths, seed=args.seed,
                work_dir=args.work_dir, fid=not args.no_fid)
    prov = run_provenance(["bench", "--ode-l"] + argv, prog="python -m nowcast.imagegen", system=True)
    result = run_odel_benchmark(s, log=lambda m: print(m, flush=True))
    metric = "fid" if s.fid else "fd_classifier"
    result["acceptance"] = acceptance(result["records"], metric)
    out = Path(args.out)
    plot(result, out / "ode_l.png")
    atomic_write_text(out / "ode_l.json", json.dumps({**prov, **result}, indent=1) + "\n")
    atomic_write_text(out / "ode_l.md", render_markdown(result, prov, "ode_l.png"))
    print(render_markdown(result, prov, str(out / "ode_l.png")))
    return 0
