"""Run the solver benchmark and write ``benchmarks/results/solvers.{json,md}``.

Equivalent to ``python -m nowcast.solvers.bench`` run from the repository root; extra arguments
are passed through (``--quick``, ``--nfe``, ``--seed``, ``--threads``, ``--out``).
"""

import sys
from pathlib import Path

from nowcast.solvers.bench import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--out" not in args and "--quick" not in args:
        args += ["--out", str(Path(__file__).resolve().parent / "results")]
    from nowcast.foundation.cli import run_main

    raise SystemExit(run_main(lambda: main(args)))
