"""SIGINT and SIGTERM stop every kind of run cleanly: one line, the shell's status for the signal, no
traceback, no temporary or partial output left (training keeps a checkpoint to resume from)."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVENT = str(ROOT / "data" / "sample_event.nc")


def _leftovers(folder: Path) -> list:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_synthetic_data_set_leaves_nothing(sig, tmp_path):
    """A real ``python -m nowcast.data synth`` process, signalled once its first file is written."""
    out = tmp_path / "sevir"
    proc = subprocess.Popen([sys.executable, "-m", "nowcast.data", "synth", str(out), "--events", "60", "--size", "96",
                             "--frames", "13", "--workers", "1", "--quiet"], stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    deadline = time.monotonic() + 120
    while not list(out.glob("data/**/*.h5")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before the signal: make it longer"
    proc.send_signal(sig)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and f"interrupted by {signal.Signals(sig).name}" in err
    assert _leftovers(out) == []                       # neither data files without a catalog nor temporaries


_FORECAST_SIGTERM_WHILE_WRITING = """
import os, signal, sys, time
import xarray as xr
from nowcast.foundation.cli import run_main
from nowcast import forecast
real = xr.Dataset.to_netcdf
def writing(self, path, *args, **kwargs):          # SIGTERM while the forecast file is half written
    real(self, path, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
xr.Dataset.to_netcdf = writing
sys.exit(run_main(lambda: forecast.main(sys.argv[1:])))
"""


def test_sigterm_while_the_forecast_file_is_written_leaves_no_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run([sys.executable, "-c", _FORECAST_SIGTERM_WHILE_WRITING, EVENT, "--members", "2",
                           "--out", str(out / "fc.nc"), "--plot", str(out / "fc.png")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 143, done.stderr
    assert "Traceback" not in done.stderr and "interrupted by SIGTERM" in done.stderr
    assert _leftovers(out) == []


_TRAIN_SIGINT = """
import os, signal, sys
from nowcast.foundation.cli import run_main
from nowcast import train
import nowcast.training.loop as loop
real, calls = loop._optimizer_step, []
def stepping(*args, **kwargs):                   # Ctrl-C during the third optimiser step
    calls.append(1)
    if len(calls) == 3:
        os.kill(os.getpid(), signal.SIGINT)
    return real(*args, **kwargs)
loop._optimizer_step = stepping
sys.exit(run_main(lambda: train.main(sys.argv[1:])))
"""


def test_ctrl_c_during_training_checkpoints_and_the_same_command_resumes(tiny_store, tiny_config, tmp_path):
    args = ["--stage", "vae", "--config", tiny_config, "--data", tiny_store, "--runs-dir", str(tmp_path),
            "--steps", "6", "--no-progress"]
    done = subprocess.run([sys.executable, "-c", _TRAIN_SIGINT, *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "interrupted by SIGINT" in done.stderr
    (run_dir,) = tmp_path.iterdir()
    saved = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert saved and saved[-1] in ("step-0000002.pt", "step-0000003.pt"), saved
    again = subprocess.run([sys.executable, "-m", "nowcast.train", *args], capture_output=True, text=True,
                           timeout=300, cwd=ROOT)
    assert again.returncode == 0, again.stderr
    assert list(tmp_path.iterdir()) == [run_dir] and (run_dir / "model.pt").is_file()
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir())[-1] == "step-0000006.pt"
    assert "resumed from" in (run_dir / "log.txt").read_text()
