"""Copy measured tables from ``benchmarks/results/<name>.md`` into the README.

The README keeps no typed-in figures: everything between ``<!-- BENCH:<name>:START -->`` and
``<!-- BENCH:<name>:END -->`` is replaced by the provenance lines and the first table of
``benchmarks/results/<name>.md``. Run after a benchmark.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATTERN = re.compile(r"<!-- BENCH:(?P<name>[\w-]+):START -->.*?<!-- BENCH:(?P=name):END -->", re.S)


def excerpt(name: str) -> str:
    """Provenance bullets, the explanation and the first table of a results file."""
    md = (ROOT / "benchmarks" / "results" / f"{name}.md").read_text()
    body = md.split("\n## ")[0]
    lines = body.strip().splitlines()[1:]
    return ("\n".join(lines).strip() + f"\n\nFull report: [`benchmarks/results/{name}.md`]"
            f"(benchmarks/results/{name}.md).")


def main() -> None:
    """Rewrite the README's benchmark sections in place."""
    readme = ROOT / "README.md"
    text = PATTERN.sub(lambda m: f"<!-- BENCH:{m['name']}:START -->\n{excerpt(m['name'])}\n"
                                 f"<!-- BENCH:{m['name']}:END -->", readme.read_text())
    readme.write_text(text)


if __name__ == "__main__":
    main()
