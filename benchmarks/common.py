"""Provenance shared by the benchmark scripts: command, commit, date and machine."""

from __future__ import annotations

from pathlib import Path

import torch  # noqa: F401  (imported so that the machine line names torch and its threads)

from nowcast.foundation.files import atomic_write_text
from nowcast.foundation.provenance import provenance_lines, run_provenance

ROOT = Path(__file__).resolve().parents[1]


def provenance(command: str) -> dict:
    """What a results file must say about how it was produced."""
    return run_provenance(command)


def header(title: str, meta: dict) -> list:
    """The first lines of a results markdown file."""
    return [f"# {title}", "", *provenance_lines(meta)]


def write_results(out_dir: Path, name: str, payload: dict, md_lines: list) -> None:
    """Write ``<name>.json`` and ``<name>.md`` under ``out_dir`` and print the markdown."""
    import json

    atomic_write_text(out_dir / f"{name}.json", json.dumps(payload, indent=1) + "\n")
    atomic_write_text(out_dir / f"{name}.md", "\n".join(md_lines))
    print("\n".join(md_lines))


def run_package_benchmark(main, work_name: str) -> int:
    """Run a package benchmark's ``main`` with ``--out benchmarks/results`` and ``--work-dir
    benchmarks/runs/<work_name>`` unless the command line gives them (other arguments pass through)."""
    import sys

    from nowcast.foundation.cli import run_main

    here = Path(__file__).resolve().parent
    args = sys.argv[1:]
    if "--out" not in args:
        args += ["--out", str(here / "results")]
    if "--work-dir" not in args:
        args += ["--work-dir", str(here / "runs" / work_name)]
    return run_main(lambda: main(args))
