"""``python -m nowcast.train``: learn a few-step solver (SpanLift) for a nowcaster, or train the nowcaster itself.

The default stage, ``spanlift``, learns SpanLift on top of a base solver for a trained nowcaster
(the shipped ``default`` model unless ``--model`` is given) by endpoint matching — against the
endpoints of a many-step teacher (``--target teacher``, cached on disk and reused by later runs) or
against the observed future frames (``--target target``)::

    python -m nowcast.train --loss mse --target teacher
    python -m nowcast.train --loss inception --target teacher --base ddim:5 --teacher ddim:100
    python -m nowcast.train --loss mse --target target --model runs/00002-sevirlr_tiny-ldm
    python -m nowcast.train --loss crps --target target    # members whose spread matches the error
    python -m nowcast.train --solver dyweight --base ddim:5          # a learned scalar solver

The nowcaster's own stages run in order, each starting from the previous one's run (``--init``)::

    python -m nowcast.train --stage vae   --config configs/sevirlr_tiny.yaml
    python -m nowcast.train --stage ldm   --config configs/sevirlr_tiny.yaml --init runs/00000-sevirlr_tiny-vae
    python -m nowcast.train --stage align --config configs/sevirlr_tiny.yaml --init runs/00001-sevirlr_tiny-ldm

A trained denoiser can be trained further (a longer schedule, other data) in a new ldm run that
starts from it: add ``--warm-start <model file or ldm run dir>`` (same UNet, diffusion and VAE).

Without ``--data`` the cached synthetic SEVIR-LR store is used (built on first use, with a message).
Each run writes ``runs/NNNNN-<name>/`` (config.json, log.txt, metrics.json, checkpoints,
and the result: model.pt, or solver.pt for ``spanlift``); running the same command
again resumes the newest run of that name and configuration, continuing where it stopped. Under
``torchrun --nproc_per_node N`` the vae/ldm/align batch is spread over N processes (gloo on CPU,
NCCL on GPU). Bad options or files: one message, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from .foundation.cli import HelpFormatter, count, positive_float, seed

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nowcast.train", description=__doc__.replace("``", ""),
                                epilog="Flags override the YAML file, which overrides the defaults of "
                                       "nowcast.training.config.TrainConfig.",
                                formatter_class=HelpFormatter)
    p.add_argument("--stage", choices=("spanlift", "vae", "ldm", "align"), default=None,
                   help="what to train (default: the config's stage, else spanlift)")
    p.add_argument("--config", default=None, help="YAML file, e.g. configs/sevirlr_tiny.yaml")
    p.add_argument("--data", default=None, help="zarr store (default: the cached synthetic SEVIR-LR store)")
    p.add_argument("--init", default=None, help="ldm: the VAE (model file or vae run dir); "
                                                "align: the nowcaster (model file or ldm run dir)")
    p.add_argument("--warm-start", default=None, metavar="MODEL",
                   help="ldm: start the denoiser from this trained nowcaster (model file or ldm run dir) "
                        "to train it further; same UNet and diffusion settings, same VAE")
    p.add_argument("--name", default=None, help="run name (default: <config stem>-<stage>)")
    p.add_argument("--runs-dir", default=None, help="where run directories go (default: runs)")
    p.add_argument("--steps", type=count(1), default=None, help="optimiser steps (max_steps)")
    p.add_argument("--batch-size", type=count(1), default=None, help="samples per process and micro-batch")
    p.add_argument("--grad-accum", type=count(1), default=None, help="micro-batches per optimiser step")
    p.add_argument("--lr", type=positive_float, default=None, help="learning rate")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="where to train")
    p.add_argument("--seed", type=seed, default=None, help="seed of data order, noise and initialisation")
    g = p.add_argument_group("spanlift stage")
    g.add_argument("--loss", choices=("mse", "inception", "lpips", "crps"), default=None,
                   help="endpoint loss: latent MSE, Inception-v3 features or LPIPS of the decoded frames, or "
                        "the fair CRPS of several members of one forecast against the observed future "
                        "(crps: with --target target; members per forecast: --set spanlift.members=N) "
                        "(default mse; lpips needs the AlexNet weights)")
    g.add_argument("--target", choices=("teacher", "target"), default=None,
                   help="match the teacher's endpoints or the observed future frames (default teacher)")
    g.add_argument("--model", default=None, help="the frozen nowcaster: default, a model file or an ldm run dir")
    g.add_argument("--solver", choices=("spanlift", "dyweight"), default=None,
                   help="what is learned (default spanlift)")
    g.add_argument("--base", default=None,
                   help="base solver SOLVER:STEPS (default ddim:5) or a trained solver file/run dir")
    g.add_argument("--teacher", default=None, help="teacher SOLVER:STEPS (default ddim:100)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config key, e.g. --set val_every=200 --set unet.base_units=64 (repeatable)")
    p.add_argument("--new-run", action="store_true", help="start a new run even if a resumable one exists")
    p.add_argument("--dry-run", action="store_true", help="print the resolved configuration and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _resolve(args):
    from .training.config import load_config, parse_override

    overrides = [parse_override(s) for s in args.set]
    for flag, key in (("data", "data"), ("init", "init"), ("warm_start", "warm_start"), ("name", "name"),
                      ("runs_dir", "runs_dir"), ("steps", "max_steps"), ("batch_size", "batch_size"),
                      ("grad_accum", "grad_accum"),
                      ("lr", "lr"), ("device", "device"), ("seed", "seed"), ("loss", "spanlift.loss"),
                      ("target", "spanlift.target"), ("model", "spanlift.model"), ("solver", "spanlift.solver"),
                      ("base", "spanlift.base"), ("teacher", "spanlift.teacher")):
        if getattr(args, flag) is not None:
            overrides.append((key, getattr(args, flag)))
    return load_config(args.config, args.stage, overrides)


def run(cfg, progress: bool = True, new_run: bool = False, on_step=None) -> str:
    """Train per ``cfg`` (a :class:`~nowcast.training.config.TrainConfig`); returns the run directory."""
    import torch

    from .data.synthetic_store import synthetic_store
    from .training.loop import Dist, train
    from .foundation.device import resolve_device
    from .foundation.provenance import git_commit, machine
    from .training.runs import RunDir, find_resumable, new_run_dir
    from .training.stages import build_stage, check_init, frame_size, resolved_config

    check_init(cfg)                        # before anything is built or written
    dev_type = resolve_device(cfg.device)
    dist = Dist.from_env(dev_type)
    device = torch.device(dev_type, dist.local_rank) if dev_type == "cuda" else torch.device("cpu")
    store = cfg.data
    if store is None:
        store = synthetic_store(cfg.synthetic_events, progress=progress and dist.main,
                                texture=cfg.synthetic_texture) if dist.main else None
        store = dist.broadcast(store)
        if not dist.main:
            store = synthetic_store(cfg.synthetic_events, progress=False, texture=cfg.synthetic_texture)
    if cfg.stage == "spanlift":
        if dist.world > 1:
            raise ValueError("the spanlift stage runs in one process; start it without torchrun")
        from .training.solver_stage import build_solver_job

        stage = build_solver_job(cfg, store, device)           # bad input fails before any file
    else:
        stage = build_stage(cfg, store, device, progress=progress and dist.main)
    # every model field is recorded (defaults included) so that a changed default is not resumed
    config = cfg.to_dict() if cfg.stage == "spanlift" else resolved_config(cfg, frame_size(store))
    run_dir = None
    if dist.main:
        found = None if new_run else find_resumable(cfg.runs_dir, cfg.name, config)
        run_dir = found or new_run_dir(cfg.runs_dir, cfg.name)
        rd = RunDir(run_dir)
        rd.write_config(config)
        rd.log(f"{'resuming' if found else 'starting'} {cfg.stage} run on {store} ({dist.world} process(es), "
               f"{device})")
        print(f"run directory: {run_dir}", file=sys.stderr, flush=True)
    run_dir = dist.broadcast(str(run_dir) if run_dir else None)
    meta = {"command": " ".join(["python -m nowcast.train", *sys.argv[1:]]), "config": config, "data": store,
            "commit": git_commit(), "machine": machine(), "world_size": dist.world}
    if cfg.stage == "spanlift":
        from tqdm.auto import tqdm

        rd = RunDir(run_dir)

        def log(message: str) -> None:
            rd.log(message)
            tqdm.write(message, file=sys.stderr)

        stage.run(cfg, run_dir, progress=progress, log=log)
        rd.log(f"wrote {run_dir}/solver.pt")
    else:
        train(cfg.loop_settings(), stage, RunDir(run_dir) if dist.main else None, dist, device, progress=progress,
              meta=meta, on_step=on_step)
    return run_dir


def main(argv: list | None = None) -> int:
    """Entry point; returns the exit status (2 for bad input)."""
    args = _parser().parse_args(argv)
    try:
        cfg = _resolve(args)
        if args.dry_run:
            print(cfg.to_json())
            return 0
        run(replace(cfg), progress=not args.no_progress, new_run=args.new_run)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from .foundation.cli import run_main

    raise SystemExit(run_main(main))
