"""Run the ODE_t(ODE_l) CPU benchmark and write ``benchmarks/results/ode_l.{json,md,png}``.

Equivalent to ``python -m nowcast.imagegen bench --ode-l`` from the repository root with ``--out
benchmarks/results`` and the work directory under ``benchmarks/runs`` (git-ignored); extra
arguments are passed through.
"""

from common import run_package_benchmark
from nowcast.imagegen.odel_bench import main

if __name__ == "__main__":
    raise SystemExit(run_package_benchmark(main, "ode_l"))
