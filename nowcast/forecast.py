"""``python -m nowcast.forecast event.nc``: an ensemble nowcast of a radar event, written as ``forecast.nc``.

    python -m nowcast.forecast event.nc                          # default model, its SpanLift solver
    python -m nowcast.forecast event.nc --solver ddim --steps 20 --members 16 --seed 1 --out f.nc --plot f.png
    python -m nowcast.forecast event.nc --solver spanlift:runs/00003-spanlift-ddim5-mse-teacher

The event (``vil (time, y, x)`` with CF ``time``, projected ``x``/``y`` and a ``crs`` grid mapping,
as ``python -m nowcast.data export-event`` writes) is validated and brought to the model's grid and
time step when that is exact (finer frames thinned, finer pixels max-pooled); the last context
frames are the model's input. The forecast file holds members × lead time × y × x in VIL bytes,
valid times, the ensemble mean, the exceedance probability of each SEVIR threshold and the
provenance (model, solver, steps, NFE, seeds, package version). ``--solver spanlift`` (the default)
uses the learned solver shipped with the model; ``spanlift:RUN_DIR`` one you trained; any other
name of the solver core runs that solver with ``--steps`` steps. Bad input: one message, exit
status 2, no output file; the input is never overwritten, an existing output only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .cli import HelpFormatter

__all__ = ["main", "run_forecast"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nowcast.forecast", description=__doc__.replace("``", ""),
                                formatter_class=HelpFormatter)
    p.add_argument("event", help="netCDF event file")
    p.add_argument("--model", default="default", help="default, a model file or an ldm run dir (default: default)")
    p.add_argument("--solver", default="spanlift",
                   help="spanlift (the model's shipped SpanLift), spanlift:RUN_DIR, or a solver name such as "
                        "ddim, ipndm, dpmpp-3m, unipc (default: spanlift)")
    p.add_argument("--steps", type=int, default=None,
                   help="solver steps (default: the learned solver's own; 1000 for ddpm; 5 for the others)")
    p.add_argument("--members", type=int, default=8, help="ensemble members (default 8)")
    p.add_argument("--seed", type=int, default=0, help="member m uses seed SEED+m (default 0)")
    p.add_argument("--out", default="forecast.nc", help="output file (default forecast.nc)")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="also draw the forecast (last observed frame, mean, members, exceedance probabilities) "
                        "on a map (cartopy with offline Natural Earth data when installed: pip install "
                        "'nowcast[maps]')")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where the model runs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _solver(text: str, model, steps: int | None, device):
    """``(solver, steps, kwargs, label)`` for the forecast."""
    from .models.pretrained import resolve_model, resolve_solver
    from .skill import SamplerSpec, load_learned
    from .solvers.registry import LEARNED_SOLVERS, SOLVERS

    name, _, where = text.partition(":")
    if name in LEARNED_SOLVERS:
        if not where:
            try:
                shipped = model.path is not None and model.path.resolve() == resolve_model("default").resolve()
                resolve_solver("default")
            except FileNotFoundError:
                shipped = False
            if not shipped:
                raise ValueError(f"--solver {name}: no {name} solver ships for model {model.path}; train one "
                                 f"(python -m nowcast.train) and give --solver {name}:RUN_DIR, or use --solver ddim")
            where = "default"
        solver, kw = load_learned(SamplerSpec(text, "learned", name, path=where), model, device)
        if steps is not None and steps != kw["steps"]:
            raise ValueError(f"--steps {steps}: this {name} solver was trained for {kw['steps']} steps")
        return solver, kw.pop("steps"), kw, f"{name}:{where}"
    if where or (name not in SOLVERS and name != "ddpm"):
        raise ValueError(f"unknown --solver {text!r}; available: spanlift, spanlift:RUN_DIR, dyweight:RUN_DIR, ddpm, "
                         f"{', '.join(sorted(n for n in SOLVERS if n not in LEARNED_SOLVERS))}")
    steps = (1000 if name == "ddpm" else 5) if steps is None else steps
    if steps < 1:
        raise ValueError(f"--steps must be ≥ 1, got {steps}")
    return name, steps, {}, name


def run_forecast(event: str, model: str = "default", solver: str = "spanlift", steps: int | None = None,
                 members: int = 8, seed: int = 0, device: str = "auto", progress: bool = True):
    """The forecast dataset of an event file (see the module docstring); nothing is written.

    Raises
    ------
    nowcast.io.EventError, ValueError, FileNotFoundError
        Bad event, options or model.
    """
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from .checkpoints import file_digest
    from .data.codec import MISSING, from_unit
    from .data.windows import get_task
    from .io import conform_event, forecast_dataset, read_event
    from .models.pretrained import load_model

    if members < 1:
        raise ValueError(f"--members must be ≥ 1, got {members}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    dev = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
    loaded = load_model(model, dev)
    task = get_task(loaded.task)
    cfg = loaded.ldm.unet.cfg
    factor = 2 ** (len(loaded.ldm.vae.cfg.block_out_channels) - 1)
    shape = (cfg.height * factor, cfg.width * factor)
    ds = read_event(event, loaded.task, check_time=False)
    ds, notes = conform_event(ds, task.frame_minutes, 384_000.0 / shape[0], shape, task.in_len, name=str(event))
    solv, n_steps, kwargs, label = _solver(solver, loaded, steps, dev)
    context = ds["vil"].values[-task.in_len:]
    x = torch.from_numpy(np.where(context == MISSING, 0, context).astype(np.float32) / 255.0)[None].to(dev)
    calls = [0]
    hook = loaded.ldm.unet.register_forward_hook(lambda *a: calls.__setitem__(0, calls[0] + 1))
    bar = tqdm(total=n_steps, desc=f"forecast ({members} members, {label})", unit="step",
               disable=not progress or solv == "ddpm")          # ancestral sampling shows its own bar
    try:
        extra = {"progress": progress} if solv == "ddpm" else {"callback": lambda info: bar.update(1)}
        out = loaded.ldm.forecast(x, seeds=[seed + m for m in range(members)], solver=solv, steps=n_steps,
                                  **kwargs, **extra)
    finally:
        hook.remove()
        bar.close()
    members_bytes = from_unit(out[0].cpu().numpy())                                   # (M, T, H, W), 0–254
    provenance = {"model": str(loaded.path), "model_sha256": file_digest(loaded.path), "solver": label,
                  "steps": int(n_steps), "nfe": int(calls[0]), "seeds": [seed + m for m in range(members)],
                  "source_event": str(Path(event).name), "preprocessing": "; ".join(notes) or "none",
                  "task": loaded.task}
    fc = forecast_dataset(members_bytes, ds["time"].values[-1], task.frame_minutes, ds["x"].values, ds["y"].values,
                          provenance=provenance)
    for key in ("event_id",):
        if key in ds.attrs:
            fc.attrs[key] = ds.attrs[key]
    return fc


def _render_plot(fc, event: str, path: Path) -> str:
    """Draw the forecast panel to a temporary file beside ``path``; returns its name."""
    import os
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .data.windows import get_task
    from .io import conform_event, read_event
    from .viz import forecast_panel

    ev = read_event(event, fc.attrs["task"], check_time=False)
    ev, _ = conform_event(ev, get_task(fc.attrs["task"]).frame_minutes,
                          float(abs(fc.x.values[1] - fc.x.values[0])), (fc.sizes["y"], fc.sizes["x"]), 1, event)
    fig = forecast_panel(fc, ev)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=90)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return tmp


def main(argv: list | None = None) -> int:
    """Entry point; returns the exit status (2 for bad input)."""
    from .io import write_netcdf

    args = _parser().parse_args(argv)
    try:
        out, event = Path(args.out), Path(args.event)
        plot = Path(args.plot) if args.plot else None
        for target, flag in ((out, "--out"), (plot, "--plot")):
            if target is None:
                continue
            if target.resolve() == event.resolve():
                raise ValueError(f"{flag} {target} is the input event; choose another file name")
            if target.exists() and not args.overwrite:
                raise ValueError(f"{target} exists; choose another {flag} or pass --overwrite")
        if plot is not None and plot.suffix.lower() not in (".png", ".pdf", ".svg", ".jpg"):
            raise ValueError(f"--plot {plot}: give a .png, .pdf, .svg or .jpg file name")
        fc = run_forecast(str(event), args.model, args.solver, args.steps, args.members, args.seed, args.device,
                          progress=not args.no_progress)
        tmp = _render_plot(fc, str(event), plot) if plot is not None else None
        try:                                   # both files, or neither
            write_netcdf(fc, out, overwrite=args.overwrite)
            if tmp is not None:
                os.replace(tmp, plot)
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {fc.sizes['member']} members × {fc.sizes['lead_time']} lead times "
          f"({fc.attrs['solver']}, {fc.attrs['steps']} steps, NFE {fc.attrs['nfe']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
