"""Run the image-generation CPU benchmark and write ``benchmarks/results/imagegen.{json,md}``.

Equivalent to ``python -m nowcast.imagegen bench`` from the repository root with ``--out
benchmarks/results`` and the work directory under ``benchmarks/runs`` (git-ignored); extra
arguments are passed through.
"""

import sys
from pathlib import Path

from nowcast.imagegen.bench import main

if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    args = sys.argv[1:]
    if "--out" not in args:
        args += ["--out", str(here / "results")]
    if "--work-dir" not in args:
        args += ["--work-dir", str(here / "runs" / "imagegen")]
    from nowcast.foundation.cli import run_main

    raise SystemExit(run_main(lambda: main(args)))
