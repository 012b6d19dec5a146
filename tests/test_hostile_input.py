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
