"""``python -m nowcast.forecast event.nc``: an ensemble nowcast of a radar event, written as ``forecast.nc``.

    python -m nowcast.forecast event.nc                          # default model, its SpanLift solver
    python -m nowcast.forecast event.nc --solver ddim --steps 20 --members 16 --seed 1 --out f.nc --plot f.png
    python -m nowcast.forecast event.nc --solver spanlift:runs/00003-spanlift-ddim5-mse-teacher

The event (radar frames ``(time, y, x)`` with CF ``time``, projected ``x``/``y`` and a grid mapping,
as ``python -m nowcast.data export-event`` writes) holds VIL (SEVIR bytes or kg m-2), rain rate
(mm h-1, kg m-2 s-1), precipitation per step (mm) or reflectivity (dBZ), found by its CF units or
standard_name (or ``--variable``); NaN and fill values are *no data*; rain becomes VIL through a Z-R
law (``--zr``, Marshall-Palmer by default) and the VIL proxy of a 4.5 km column. It is validated
before the model loads and brought to the model's grid and
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
import math
import os
import sys
from pathlib import Path

from .data.codec import MARSHALL_PALMER
from .foundation.cli import HelpFormatter, count, fail, positive_float, seed
from .foundation.files import check_free_space, check_writable

__all__ = ["main", "run_forecast"]


def _thresholds(text: str) -> tuple:
    """``0.1,1,5`` → ``(0.1, 1.0, 5.0)``, increasing."""
    try:
        values = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers separated by commas, e.g. 0.1,1,5,10") from None
    if not values or any(b <= a for a, b in zip(values, values[1:])) or not all(map(math.isfinite, values)):
        raise argparse.ArgumentTypeError(f"{text!r}: give finite, increasing thresholds separated by commas")
    return values


def _option(text: str) -> tuple:
    """``KEY=VALUE`` → ``(key, value)``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: give KEY=VALUE, e.g. qty=DBZH")
    return key.strip(), value.strip()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nowcast.forecast", description=__doc__.replace("``", ""),
                                formatter_class=HelpFormatter)
    p.add_argument("event", help="netCDF (or zarr) radar file; with --importer, a quoted glob of native files")
    p.add_argument("--model", default="default", help="default, a model file or an ldm run dir (default: default)")
    p.add_argument("--solver", default="spanlift",
                   help="spanlift (the model's shipped SpanLift), spanlift:RUN_DIR, dyweight:RUN_DIR, a solver name "
                        "such as ddim, ipndm, dpmpp-3m, unipc (or ddim:STEPS), ddpm, or a baseline: persistence, "
                        "extrapolation, steps (pysteps' STEPS ensemble) (default: spanlift)")
    p.add_argument("--steps", type=count(1), default=None,
                   help="solver steps (default: the learned solver's own; 1000 for ddpm; 5 for the others)")
    p.add_argument("--members", type=count(1, 1024, "memory grows with the members; run several forecasts with other seeds"), default=8, help="ensemble members (default 8)")
    p.add_argument("--seed", type=seed, default=0, help="member m uses seed SEED+m (default 0)")
    p.add_argument("--out", default="forecast.nc", help="output file (default forecast.nc)")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="also draw the forecast (last observed frame, mean, members, exceedance probabilities) "
                        "on a map (cartopy with offline Natural Earth data when installed: pip install "
                        "'nowcast-diffusion[maps]')")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--variable", default=None, metavar="NAME",
                   help="the radar variable of the event file (default: the one whose CF units or standard_name "
                        "say rain rate, precipitation per step, reflectivity or VIL)")
    p.add_argument("--zr", nargs=2, type=positive_float, default=MARSHALL_PALMER, metavar=("A", "B"),
                   help="Z-R law Z = A·R^B for rain rates and accumulations (default: Marshall-Palmer 200 1.6)")
    p.add_argument("--thresholds", type=_thresholds, default=None, metavar="T1,T2,…",
                   help="exceedance-probability thresholds in the file's unit, e.g. 0.1,1,5,10 for mm/h (default: "
                        "SEVIR's VIL thresholds for VIL, 0.1,1,5,10,20 mm/h for rain rates, 20,30,40,50 dBZ)")
    p.add_argument("--importer", default=None, metavar="NAME",
                   help="read EVENT as a quoted glob of native radar files (one per time step) through this pysteps "
                        "importer: odim_hdf5, mch_gif, fmi_pgm, knmi_hdf5, mrms_grib, bom_rf3, dwd_hdf5, …")
    p.add_argument("--importer-option", action="append", default=[], metavar="KEY=VALUE", type=_option,
                   help="a keyword argument of the importer, e.g. qty=DBZH (repeatable)")
    p.add_argument("--time-format", default=None, metavar="STRFTIME",
                   help="with --importer: the time in the file names, e.g. %%Y%%m%%d%%H%%M (ODIM HDF5 files carry "
                        "their own time)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where the model runs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def run_forecast(event: str, model: str = "default", solver: str = "spanlift", steps: int | None = None,
                 members: int = 8, seed: int = 0, device: str = "auto", progress: bool = True,
                 variable: str | None = None, zr: tuple = MARSHALL_PALMER, thresholds=None,
                 importer: str | None = None, importer_options: dict | None = None, time_format: str | None = None,
                 before_model=None):
    """The forecast dataset of an event file (see the module docstring); nothing is written.

    Parameters
    ----------
    event : str
        The radar file.
    model, solver, steps, members, seed, device, progress, variable, zr
        As the command-line options of the same names.
    thresholds : sequence of float, optional
        Exceedance thresholds in the file's unit (default: the quantity's, see
        :func:`nowcast.io.output.default_thresholds`).
    importer, importer_options, time_format
        Read ``event`` as a glob of native radar files through this pysteps importer
        (:func:`nowcast.io.importers.import_native`).
    before_model : callable, optional
        Called with the validated event before torch and the model load (e.g. to check the output's
        free space); an exception it raises ends the forecast.

    Returns
    -------
    tuple
        ``(forecast, conformed)``: the forecast dataset (on the file's grid, in its units) and the
        event as brought to the model (:class:`nowcast.io.conform.Conformed`).

    Raises
    ------
    nowcast.io.EventError, ValueError, FileNotFoundError
        Bad event, options or model.
    """
    from .io import read_event, validate_event

    if members < 1:
        raise ValueError(f"--members must be ≥ 1, got {members}")
    if importer is not None:                     # a bad file is refused before torch loads
        from .io.importers import import_native

        ds = validate_event(import_native(event, importer, time_format, importer_options), event, check_time=False,
                            variable=variable, zr=zr)
    else:
        ds = read_event(event, check_time=False, variable=variable, zr=zr)
    if before_model is not None:
        before_model(ds)
    from .foundation.device import resolve_device
    from .foundation.provenance import file_digest
    from .io import conform_event, user_forecast
    from .models.model_files import load_model
    from .nowcasters import predict_domain, resolve_nowcaster

    dev = resolve_device(device)
    loaded = load_model(model, dev)
    nowcaster = resolve_nowcaster(solver, loaded, dev, steps=steps)
    task, grid = nowcaster.task, nowcaster.grid
    conformed = conform_event(ds, task.frame_minutes, grid.pixel_m, grid.shape, task.in_len, name=str(event))
    forecast, nfe = predict_domain(nowcaster, conformed.event["vil"].values, conformed.plan, members, seed,
                                   progress=progress)
    provenance = {"model": loaded.path.name, "model_sha256": file_digest(loaded.path), "solver": nowcaster.name,
                  "steps": int(getattr(nowcaster, "steps", 0)), "nfe": int(nfe), "seeds": [seed + m for m in range(members)],
                  "source_event": str(Path(event).name), "preprocessing": "; ".join(conformed.notes) or "none",
                  "source_variable": ds.attrs.get("source_variable", ""),
                  "source_quantity": ds.attrs.get("source_quantity", ""),
                  "task": loaded.task}
    if ds.attrs.get("source_quantity") in ("rain_rate", "accumulation"):
        provenance["zr_law"] = f"{zr[0]:g} {zr[1]:g}"         # Z = a R^b, as "a b"
    provenance["source_factor"] = float(ds.attrs.get("source_factor", 1.0))
    fc = user_forecast(forecast, conformed, task.frame_minutes, thresholds, provenance, zr)
    if "event_id" in ds.attrs:
        fc.attrs["event_id"] = ds.attrs["event_id"]
    return fc, conformed


def _render_plot(fc, event, path: Path) -> str:
    """Draw the forecast panel (``event``: the conformed event) to a temporary file beside ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .foundation.files import atomic_write
    from .viz import forecast_panel

    fig = forecast_panel(fc, event)
    tmp = path.with_name(f".{path.name}.pending{path.suffix}")
    try:
        atomic_write(tmp, lambda name: fig.savefig(name, dpi=90), suffix=path.suffix)
    finally:
        plt.close(fig)
    return str(tmp)


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
        for target, flag in ((out, "--out"), (plot, "--plot")):
            if target is not None:
                check_writable(target, flag)
        if args.importer is None and not event.exists():
            raise ValueError(f"{event}: no such file (the event to forecast)")

        def room(ds):                          # the output's size, uncompressed, before any work
            pixels = ds["vil"].shape[1] * ds["vil"].shape[2]
            per = 1 if ds.attrs.get("source_quantity") == "vil_bytes" else 4
            need = 6 * pixels * (args.members * per + 4 * (1 + 8)) + (2e6 if plot is not None else 0)
            check_free_space(out, need, "--out file")

        fc, conformed = run_forecast(str(event), args.model, args.solver, args.steps, args.members, args.seed,
                                     args.device, progress=not args.no_progress, variable=args.variable,
                                     zr=tuple(args.zr), thresholds=args.thresholds, importer=args.importer,
                                     importer_options=dict(args.importer_option), time_format=args.time_format,
                                     before_model=room)
        tmp = _render_plot(fc, conformed, plot) if plot is not None else None
        try:                                   # both files, or neither
            write_netcdf(fc, out, overwrite=args.overwrite)
            if tmp is not None:
                os.replace(tmp, plot)
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
    except (ValueError, OSError) as e:
        return fail(e)
    print(f"wrote {out}: {fc.sizes['member']} members × {fc.sizes['lead_time']} lead times "
          f"({fc.attrs['solver']}, {fc.attrs['steps']} steps, NFE {fc.attrs['nfe']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from .foundation.cli import exit_now, run_main

    exit_now(run_main(main))
