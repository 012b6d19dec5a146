"""Provenance: which code, machine and input files produced an output.

Output files name their inputs by file name and SHA-256 (never by this machine's absolute paths).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import shlex
import subprocess
from pathlib import Path

__all__ = ["git_commit", "git_dirty", "machine", "machine_summary", "file_digest", "file_identity",
           "run_provenance", "provenance_lines", "utc_now"]

_ROOT = Path(__file__).resolve().parents[2]


def _git(*args: str, cwd: str | os.PathLike | None = None) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=Path(cwd or _ROOT).resolve(), capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit(path: str | os.PathLike = ".") -> str | None:
    """The commit of the git checkout holding ``path`` (``None`` outside git)."""
    return _git("rev-parse", "HEAD", cwd=path)


def git_dirty(path: str | os.PathLike | None = None) -> bool:
    """Whether the checkout holding ``path`` (default: this package's) has uncommitted changes."""
    return bool(_git("status", "--porcelain", "--untracked-files=no", cwd=path))


def machine() -> dict:
    """Hardware and software of this process (torch's facts when torch is imported)."""
    import sys

    info = {"platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "python": platform.python_version()}
    torch = sys.modules.get("torch")
    if torch is not None:
        info.update(torch_threads=torch.get_num_threads(), torch=torch.__version__)
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def machine_summary(system: bool = False) -> str:
    """One line: architecture, cores, torch version and threads, Python (and the OS when ``system``)."""
    m = machine()
    line = f"{m['machine']}, {m['cpu_count']} CPU cores"
    if "torch" in m:
        line += f", torch {m['torch']} ({m['torch_threads']} threads)"
    line += f", Python {m['python']}"
    if system:
        line += f", {platform.system()} {platform.release()}"
    return line


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file (SHA-256 unless another ``hashlib`` algorithm is named): the identity of a
    model file that solvers and caches are tied to."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_identity(path: str | os.PathLike) -> dict:
    """``{'name': file name, 'sha256': digest}``: how outputs name an input file."""
    return {"name": Path(path).name, "sha256": file_digest(path)}


def utc_now() -> str:
    """``YYYY-MM-DD HH:MM UTC``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def run_provenance(command: str | list, prog: str | None = None, system: bool = False) -> dict:
    """What a results file says about how it was produced: command, commit, dirty flag, machine, date.

    Parameters
    ----------
    command : str or list of str
        The command line, or its arguments (shell-quoted and put after ``prog``).
    prog : str, optional
        The program the arguments were given to (``python -m nowcast.solvers.bench``).
    system : bool
        Name the operating system in the machine line.
    """
    if not isinstance(command, str):
        command = " ".join(([prog] if prog else []) + [shlex.quote(str(a)) for a in command])
    return {"command": command, "commit": git_commit(_ROOT) or "unknown", "dirty": git_dirty(),
            "date": utc_now(), "machine": machine_summary(system)}


def provenance_lines(prov: dict) -> list:
    """Markdown bullet lines of a :func:`run_provenance` record (for the head of a results page)."""
    return [f"- command: `{prov['command']}`",
            f"- commit: `{prov['commit']}`" + (" (with uncommitted changes)" if prov.get("dirty") else ""),
            f"- machine: {prov['machine']}", f"- date: {prov['date']}"]
