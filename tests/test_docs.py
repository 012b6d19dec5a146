"""The front door and the docs: the README stays short and keeps its two commands, every option of
every CLI is documented, and every relative link resolves."""

import argparse
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
CLIS = ["nowcast.forecast", "nowcast.evaluate", "nowcast.train", "nowcast.data.__main__", "nowcast.imagegen.__main__",
        "nowcast.imagegen.bench", "nowcast.imagegen.odel_bench", "nowcast.solvers.bench"]


def _options(parser: argparse.ArgumentParser):
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sub in a.choices.values():
                yield from _options(sub)
        else:
            yield from (o for o in a.option_strings if o.startswith("--") and o != "--help")


def test_readme_is_a_short_front_door_with_its_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert "bash .ci/venv python -m nowcast.forecast data/sample_event.nc" in text
    assert "bash .ci/venv python -m pytest -q" in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash .ci/venv python -m pytest -q" in ci                  # CI runs the README's test command


@pytest.mark.parametrize("module", CLIS)
def test_every_cli_option_is_documented(module):
    docs = "\n".join(p.read_text() for p in DOCS)
    parser = importlib.import_module(module)._parser()
    missing = [o for o in _options(parser) if not re.search(re.escape(o) + r"(?![\w-])", docs)]
    assert not missing, f"{module}: options missing from docs/ (run python docs/make_cli_reference.py): {missing}"


def test_relative_links_resolve():
    broken = []
    for page in [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *DOCS]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} → {target}")
    assert not broken, broken


def test_user_facing_text_has_no_issue_numbers():
    for page in [ROOT / "README.md", *DOCS]:
        assert not re.search(r"\bissue \d+|\bAcceptance\b", page.read_text()), page.name
