"""Copy measured tables from ``benchmarks/results/<name>.md`` into the docs and the model card.

The pages of ``docs/`` and ``nowcast/models/DEFAULT_MODEL.md`` keep no typed-in figures: everything between ``<!-- BENCH:<name>:START -->`` and
``<!-- BENCH:<name>:END -->`` is replaced by the provenance lines and the first table of
``benchmarks/results/<name>.md``. Run after a benchmark.
"""

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATTERN = re.compile(r"<!-- BENCH:(?P<name>[\w-]+):START -->.*?<!-- BENCH:(?P=name):END -->", re.S)


def excerpt(name: str, doc: Path) -> str:
    """Provenance bullets, the explanation and the first table of a results file."""
    md = (ROOT / "benchmarks" / "results" / f"{name}.md").read_text()
    body = md.split("\n## ")[0]
    lines = [ln for ln in body.strip().splitlines()[1:] if not ln.startswith(("Acceptance", "Checks"))]
    link = os.path.relpath(ROOT / "benchmarks" / "results" / f"{name}.md", doc.parent)
    return "\n".join(lines).strip() + f"\n\nFull report: [`benchmarks/results/{name}.md`]({link})."


def main() -> None:
    """Rewrite the benchmark sections of the docs and the model card in place."""
    for doc in (*sorted((ROOT / "docs").glob("*.md")), ROOT / "nowcast" / "models" / "DEFAULT_MODEL.md"):
        if doc.is_file():
            text = PATTERN.sub(lambda m, doc=doc: m[0] if not (ROOT / "benchmarks" / "results" / f"{m['name']}.md")
                               .is_file() else   # not measured yet: the block stays as it is
                               f"<!-- BENCH:{m['name']}:START -->\n{excerpt(m['name'], doc)}\n"
                               f"<!-- BENCH:{m['name']}:END -->", doc.read_text())
            doc.write_text(text)


if __name__ == "__main__":
    main()
