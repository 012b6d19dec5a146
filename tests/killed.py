"""Shared by the resume tests: run a Python snippet in a real process and expect it to die by SIGKILL."""

import os
import signal
import subprocess
import sys


def run_until_killed(code: str, *args, env: dict | None = None, timeout: int = 600) -> None:
    """Run ``python -c code args…``; the snippet must SIGKILL itself (its standard error shows otherwise)."""
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    assert done.returncode == -signal.SIGKILL, done.stderr
