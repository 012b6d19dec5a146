"""Copy the measured solver table from ``benchmarks/results/solvers.md`` into the README.

The README keeps no typed-in figures: everything between ``<!-- BENCH:START -->`` and
``<!-- BENCH:END -->`` is replaced by the provenance lines and the RMSE table of the results file.
Run after ``python -m nowcast.solvers.bench``.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- BENCH:START -->", "<!-- BENCH:END -->"


def excerpt(md: str) -> str:
    """Provenance bullets, the explanation and the first table of the results file."""
    body = md.split("\n## ")[0]
    lines = [ln for ln in body.splitlines()[1:]]
    return "\n".join(lines).strip() + "\n\nFull report, training times and the per-step out-of-span " \
        "fractions: [`benchmarks/results/solvers.md`](benchmarks/results/solvers.md)."


def main() -> None:
    """Rewrite the README's benchmark section in place."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    md = (ROOT / "benchmarks" / "results" / "solvers.md").read_text()
    readme.write_text(f"{head}{START}\n{excerpt(md)}\n{END}{tail}")


if __name__ == "__main__":
    main()
