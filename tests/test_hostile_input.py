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


def _run(module: str, args: list, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def _no_torch_then(module: str, args: list) -> str:
    """Parse ``args`` in a fresh interpreter and say whether torch was imported by then."""
    return (f"import sys, importlib; m = importlib.import_module({module!r}); "
            f"mod = m if hasattr(m, '_parser') else importlib.import_module({module!r} + '.__main__'); "
            f"import contextlib\n"
            f"try:\n    mod._parser().parse_args({args!r})\nexcept SystemExit as e:\n"
            f"    print('exit', e.code, 'torch' in sys.modules)")


@pytest.mark.parametrize("module, args, message", PARSER_CASES, ids=[" ".join([m, *a[:3]]) for m, a, _ in PARSER_CASES])
def test_bad_options_are_refused_by_the_parser_before_torch_loads(module, args, message, tmp_path):
    code = _no_torch_then(module, args)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "exit 2 False", out.stdout + out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []                                      # nothing written


@pytest.mark.parametrize("module, args, message", BENCH_CASES, ids=[" ".join([m, *a]) for m, a, _ in BENCH_CASES])
def test_bad_benchmark_options_exit_2_without_work(module, args, message, tmp_path):
    out = _run(module, args, tmp_path)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("payload", ["random", "code"])
def test_a_broken_or_foreign_solver_file_is_refused_cleanly(payload, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (run / "solver.pt").write_bytes(os.urandom(256) if payload == "random" else pickle.dumps(Payload()))
    out = _run("nowcast.forecast", [EVENT, "--solver", f"spanlift:{run}", "--out", str(tmp_path / "f.nc"),
                                    "--no-progress"], tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "is not a nowcast solver file" in out.stderr
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


def test_bad_files_and_locations_exit_2_and_leave_nothing(tmp_path):
    cases = _cli_cases(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for module, args, message in cases:
        out = _run(module, args, tmp_path)
        assert out.returncode == 2, (module, args, out.stderr)
        assert message in out.stderr and "Traceback" not in out.stderr, (module, args, out.stderr)
        assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before, (module, args)
