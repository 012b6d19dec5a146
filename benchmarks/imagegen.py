"""Run the image-generation CPU benchmark and write ``benchmarks/results/imagegen.{json,md}``.

Equivalent to ``python -m nowcast.imagegen bench`` from the repository root with ``--out
benchmarks/results`` and the work directory under ``benchmarks/runs`` (git-ignored); extra
arguments are passed through.
"""

from common import run_package_benchmark
from nowcast.imagegen.bench import main

if __name__ == "__main__":
    raise SystemExit(run_package_benchmark(main, "imagegen"))
