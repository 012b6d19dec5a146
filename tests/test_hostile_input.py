"""Hostile input refused by the command-line interfaces: one message, exit status 2, no traceback,
nothing written — and refused by the option parser before anything heavy is loaded."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVENT = str(ROOT / "data" / "sample_event.nc")

# (command, arguments, what the message must say); every case must fail in the option parser
PARSER_CASES = [
    ("nowcast.forecast", [EVENT, "--members", "0"], "--members: must be ≥ 1"),
    ("nowcast.forecast", [EVENT, "--members", "100000"], "--members: must be ≤ 1024"),
    ("nowcast.forecast", [EVENT, "--seed", "-5"], "--seed: a seed must be ≥ 0"),
    ("nowcast.forecast", [EVENT, "--steps", "0"], "--steps: must be ≥ 1"),
    ("nowcast.forecast", [EVENT, "--steps", "two"], "--steps: expected a whole number"),
    ("nowcast.evaluate", ["--windows", "0"], "--windows: must be ≥ 1"),
    ("nowcast.evaluate", ["--batch", "-1"], "--batch: must be ≥ 1"),
    ("nowcast.train", ["--lr", "-1"], "--lr: must be a finite number > 0"),
    ("nowcast.train", ["--lr", "nan"], "--lr: must be a finite number > 0"),
    ("nowcast.train", ["--lr", "inf"], "--lr: must be a finite number > 0"),
    ("nowcast.train", ["--steps", "0"], "--steps: must be ≥ 1"),
    ("nowcast.data", ["synth", "out", "--events", "0"], "--events: must be ≥ 1"),
    ("nowcast.data", ["synth", "out", "--events", "-3"], "--events: must be ≥ 1"),
    ("nowcast.data", ["synth", "out", "--size", "0"], "--size: must be ≥ 3"),
    ("nowcast.data", ["synth", "out", "--frames", "0"], "--frames: must be ≥ 1"),
    ("nowcast.data", ["synth", "out", "--missing-fraction", "1.5"], "--missing-fraction: must lie in [0, 1]"),
    ("nowcast.imagegen", ["sample", "--model", "m.pt", "--n", "0"], "--n: must be ≥ 1"),
    ("nowcast.imagegen", ["train-solver", "--model", "m.pt", "--run-dir", "r", "--nfe", "0"], "--nfe: must be ≥ 1"),
]
# benchmark CLIs import the solver core (torch) to build their parsers: refused all the same
BENCH_CASES = [
    ("nowcast.imagegen", ["bench", "--nfe", "0"], "--nfe: must be ≥ 1"),
    ("nowcast.imagegen", ["bench", "--samples", "1"], "--samples: must be ≥ 2"),
    ("nowcast.solvers.bench", ["--nfe", "1"], "--nfe: must be ≥ 2"),
    ("nowcast.solvers.bench", ["--seed", "-1"], "--seed: a seed must be ≥ 0"),
]


def _main(module: str):
    import importlib

    mod = importlib.import_module(module)
    return mod.main if hasattr(mod, "main") else importlib.import_module(module + ".__main__").main


def _exit_code(module: str, args: list, capsys) -> tuple:
    """Run a CLI in this process: ``(exit status, standard error)``."""
    try:
        code = _main(module)(list(args))
    except SystemExit as e:                                  # the option parser exits by itself
        code = e.code
    return code, capsys.readouterr().err


def test_bad_options_are_refused_before_torch_loads(tmp_path):
    """Every parser case in one fresh interpreter: each exits 2, and torch is still not imported."""
    code = ("import importlib, sys\n"
            f"cases = {[(m, a) for m, a, _ in PARSER_CASES]!r}\n"
            "for module, args in cases:\n"
            "    mod = importlib.import_module(module)\n"
            "    mod = mod if hasattr(mod, '_parser') else importlib.import_module(module + '.__main__')\n"
            "    try:\n"
            "        mod._parser().parse_args(args)\n"
            "        print('accepted', module, args)\n"
            "    except SystemExit as e:\n"
            "        print('exit', e.code)\n"
            "print('torch loaded:', 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    lines = out.stdout.split("\n")
    assert lines[:len(PARSER_CASES)] == ["exit 2"] * len(PARSER_CASES), out.stdout + out.stderr
    assert "torch loaded: False" in out.stdout and "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("module, args, message", PARSER_CASES + BENCH_CASES,
                         ids=[" ".join([m, *a[:3]]) for m, a, _ in PARSER_CASES + BENCH_CASES])
def test_bad_options_exit_2_with_the_message(module, args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = _exit_code(module, args, capsys)
    assert code == 2 and message in err and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []                                      # nothing written


SCRIPT_CASES = [
    ("vae_round_trip.py", ["--windows", "0"], "--windows: must be ≥ 1"),
    ("default_model.py", ["--members", "-2"], "--members: must be ≥ 1"),
    ("verification_throughput.py", ["--frames", "zero"], "--frames: expected a whole number"),
    ("ode_l.py", ["--spanlift", "4:99"], "STEPS:BLOCKS"),
]


def test_benchmark_scripts_refuse_bad_options_with_exit_2(tmp_path):
    """The scripts under benchmarks/ share the validation layer (one interpreter per script)."""
    for script, args, message in SCRIPT_CASES:
        out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args, "--out", str(tmp_path / "o")],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, (script, out.stderr)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("payload", ["random", "code"])
def test_a_broken_or_foreign_solver_file_is_refused_cleanly(payload, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (run / "solver.pt").write_bytes(os.urandom(256) if payload == "random" else pickle.dumps(Payload()))
    code, err = _exit_code("nowcast.forecast", [EVENT, "--solver", f"spanlift:{run}", "--out",
                                                str(tmp_path / "f.nc"), "--no-progress", "--device", "cpu"], capsys)
    assert code == 2 and "is not a nowcast solver file" in err and "Traceback" not in err, err
    assert not marker.exists() and not (tmp_path / "f.nc").exists()


def _cli_cases(tmp: Path) -> list:
    """(module, args, message) of bad files and locations; ``tmp`` holds what they need."""
    (tmp / "a_file").write_text("not a folder")
    (tmp / "empty").mkdir()
    (tmp / "empty" / "CATALOG.csv").write_text("")
    (tmp / "garbage").mkdir()
    (tmp / "garbage" / "CATALOG.csv").write_bytes(b"\x00\xff\x10 not, a\ncatalog")
    (tmp / "event.nc").write_bytes(Path(EVENT).read_bytes())
    return [
        ("nowcast.forecast", [EVENT, "--out", str(tmp / "a_file" / "f.nc")], "is not a writable folder"),
        ("nowcast.forecast", [EVENT, "--plot", str(tmp / "a_file" / "f.png")], "is not a writable folder"),
        ("nowcast.forecast", [str(tmp / "missing.nc")], "no such file"),
        ("nowcast.forecast", [EVENT, "--out", EVENT], "is the input event"),
        ("nowcast.evaluate", ["--out", str(tmp / "a_file" / "eval")], "is not a writable folder"),
        ("nowcast.data", ["build", str(tmp / "empty"), str(tmp / "s.zarr")], "is not a SEVIR catalog"),
        ("nowcast.data", ["build", str(tmp / "garbage"), str(tmp / "s.zarr")], "is not a SEVIR catalog"),
        ("nowcast.imagegen", ["sample", "--model", str(tmp / "event.nc"), "--out", str(tmp / "s.png")],
         "not a model file"),
    ]


def test_bad_files_and_locations_exit_2_and_leave_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = _cli_cases(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for module, args, message in cases:
        code, err = _exit_code(module, args, capsys)
        assert code == 2 and message in err and "Traceback" not in err, (module, args, err)
        assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before, (module, args)


def test_a_bad_event_file_is_refused_before_torch_loads(tmp_path):
    """Units that lie (rain rates up to 150 mm/h labelled VIL): exit 2 with the reason, torch never imported,
    nothing written."""
    import numpy as np
    import xarray as xr

    from nowcast.io import event_dataset

    t = np.datetime64("2019-06-01T00:00") + np.arange(7) * np.timedelta64(10, "m")
    ds = event_dataset(np.zeros((7, 128, 128), np.uint8), t, np.arange(128) * 3000.0, np.arange(128) * 3000.0)
    ds["vil"] = (("time", "y", "x"), np.broadcast_to(np.linspace(0, 150, 128), (7, 128, 128)).copy(),
                 {"units": "kg m-2", "grid_mapping": "crs"})
    ds.to_netcdf(tmp_path / "lying.nc")
    assert isinstance(ds, xr.Dataset)
    code = ("import sys\nfrom nowcast.forecast import main\n"
            "code = main(['lying.nc', '--out', 'f.nc', '--no-progress'])\n"
            "print('exit', code, 'torch loaded:', 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "exit 2 torch loaded: False" in out.stdout, out.stdout + out.stderr
    assert "Rain rate in mm/h?" in out.stderr and "Traceback" not in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lying.nc"]


def _event_cases(tmp: Path) -> list:
    """(file, message) of broken radar files, each made from the sample event by one mutation."""
    import numpy as np
    import xarray as xr

    base = xr.open_dataset(EVENT).load()
    kg = base.copy()
    kg["vil"] = kg["vil"].astype(np.float32) / 20.0
    kg["vil"].attrs = {"units": "kg m-2", "grid_mapping": "crs"}

    def save(name, ds):
        path = tmp / f"{name}.nc"
        ds.to_netcdf(path)
        return str(path)

    def with_value(v):
        ds = kg.copy(deep=True)
        ds["vil"].values[-1, 60, 60] = v
        return ds

    cases = [
        (save("plus-inf", with_value(np.inf)), "holds infinite values"),
        (save("minus-inf", with_value(-np.inf)), "holds infinite values"),
        (save("huge", with_value(1e30)), "VIL above 80 kg m-2 does not occur"),
        (save("one-frame", base.isel(time=[-1])), "one frame only; the model needs 60 minutes"),
        (save("fifty-minutes", base.isel(time=slice(1, None))), "the model needs 60 minutes of radar"),
        (save("thirty-min", base.assign_coords(time=base.time.values[0] + np.arange(7) * np.timedelta64(30, "m"))),
         "coarser than the model's 10-min steps"),
        (save("backwards", base.isel(time=slice(None, None, -1))), "times must increase"),
        (save("all-missing", base.assign(vil=base.vil * 0 + 255)), "every pixel is missing"),
        (save("no-time", base.rename(time="t")), "no (time, y, x) variable"),
        (save("feet", base.assign_coords(x=("x", base.x.values / 0.3048, {"units": "ft"}))), "expected m or km"),
        (save("irregular", base.assign_coords(x=("x", base.x.values * (1 + np.linspace(0, 0.2, 128)), base.x.attrs))),
         "not regularly spaced"),
        (save("degrees-projected", base.assign_coords(x=("x", np.linspace(-99, -95, 128), {"units": "degrees_east"}),
                                                      y=("y", np.linspace(30, 34, 128), {"units": "degrees_north"}))),
         "coordinates in degrees but the grid mapping is a projection"),
        (save("no-grid-mapping", base.drop_vars("crs")), "no CF grid mapping"),
        (save("bad-grid-mapping", base.assign(crs=((), np.int32(0), {"grid_mapping_name": "no_such_projection"}))),
         "does not describe a projection"),
        (save("grid-mapping-without-parameters", base.assign(crs=((), np.int32(0),
                                                                  {"grid_mapping_name": "polar_stereographic"}))),
         "missing parameter 'latitude_of_projection_origin'"),
        (save("negative-rate", kg.assign(vil=(kg.vil.dims, kg.vil.values - 5, {"units": "mm h-1",
                                                                                "grid_mapping": "crs"}))),
         "labelled a rain rate but has negative values"),
        (save("raw-bytes-as-dbz", base.assign(vil=(base.vil.dims, base.vil.values.astype(np.float32) + 100,
                                                   {"units": "dBZ", "grid_mapping": "crs"}))), "outside the plausible"),
        (save("two-radar-variables", kg.assign(rain=(kg.vil.dims, kg.vil.values, {"units": "mm h-1",
                                                                                  "grid_mapping": "crs"}))),
         "several radar variables"),
        (save("unknown-units", kg.assign(vil=(kg.vil.dims, kg.vil.values, {"units": "furlongs",
                                                                           "grid_mapping": "crs"}))),
         "cannot tell what"),
        (save("four-dims", kg.assign(vil=kg.vil.expand_dims(level=[0]).transpose("time", "level", "y", "x"))),
         "no (time, y, x) variable"),
    ]
    (tmp / "empty.nc").write_bytes(b"")
    (tmp / "folder.zarr").mkdir()
    return cases + [(str(tmp / "empty.nc"), "cannot be read as netCDF"),
                    (str(tmp / "folder.zarr"), "cannot be read as a zarr store")]


def test_broken_radar_files_exit_2_with_the_reason_before_the_model_loads(tmp_path, capsys, monkeypatch):
    """Every mutation of a valid file is refused with its own message, exit 2, nothing written."""
    monkeypatch.chdir(tmp_path)
    cases = _event_cases(tmp_path)
    assert len(cases) >= 22
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for path, message in cases:
        code, err = _exit_code("nowcast.forecast", [path, "--out", str(tmp_path / "f.nc"), "--no-progress"], capsys)
        assert code == 2 and message in err and "Traceback" not in err and err.count("error:") == 1, (path, err)
        assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before, path


@pytest.mark.parametrize("module, extra", [
    ("nowcast.evaluate", ["--samplers", "ddim:2", "--windows", "1", "--members", "1", "--out", "ev"]),
    ("nowcast.train", ["--stage", "spanlift", "--steps", "2", "--runs-dir", "runs"]),
])
def test_a_store_of_another_frame_size_than_the_model_is_refused(module, extra, tiny_store, tmp_path, capsys,
                                                                  monkeypatch):
    """The shipped model forecasts 128² frames; the tiny store has 32²: one message, no run directory."""
    monkeypatch.chdir(tmp_path)
    code, err = _exit_code(module, ["--data", tiny_store, "--no-progress", *extra], capsys)
    assert code == 2 and "has 32×32 frames, but default.pt forecasts 128×128" in err and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_refused_before_the_model_loads(tmp_path, capsys, monkeypatch):
    """An output larger than the free space: one message with both figures, exit 2, nothing written."""
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 ** 9, 10 ** 9 - 50_000, 50_000))
    monkeypatch.chdir(tmp_path)
    code, err = _exit_code("nowcast.forecast", [EVENT, "--out", str(tmp_path / "f.nc"), "--no-progress"], capsys)
    assert code == 2 and "needs up to" in err and "MB free" in err and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []
