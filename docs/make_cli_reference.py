"""Write ``docs/cli.md``: every option of every command-line interface, from the parsers themselves.

    python docs/make_cli_reference.py

Run it after changing a CLI; ``tests/test_docs.py`` fails while an option is missing from the docs.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

CLIS = [("python -m nowcast.forecast", "nowcast.forecast"), ("python -m nowcast.evaluate", "nowcast.evaluate"),
        ("python -m nowcast.train", "nowcast.train"), ("python -m nowcast.data", "nowcast.data.__main__"),
        ("python -m nowcast.imagegen", "nowcast.imagegen.__main__"),
        ("python -m nowcast.imagegen bench", "nowcast.imagegen.bench"),
        ("python -m nowcast.imagegen bench --ode-l", "nowcast.imagegen.odel_bench"),
        ("python -m nowcast.solvers.bench", "nowcast.solvers.bench")]


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(parser: argparse.ArgumentParser) -> list:
    rows = ["| option | default | meaning |", "|---|---|---|"]
    for a in parser._actions:
        if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = ", ".join(f"`{o}`" for o in a.option_strings) or f"`{a.dest}` (positional)"
        absent = a.default is None or a.default is False or a.default == argparse.SUPPRESS
        default = "—" if absent or not a.option_strings else f"`{a.default}`"
        rows.append(f"| {name} | {_cell(default)} | {_cell(a.help or '')} |")
    return rows


def _sections(title: str, parser: argparse.ArgumentParser) -> list:
    out = [f"## `{title}`", "", _cell(parser.description.strip().splitlines()[0]) if parser.description else "", ""]
    out += _table(parser) + [""]
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                out += [f"### `{title} {name}`", ""] + _table(sub) + [""]
    return out


def render() -> str:
    """The reference page."""
    lines = ["# Command-line reference", "",
             "Generated from the parsers by `python docs/make_cli_reference.py`; `--help` on any command says the same.",
             "Console scripts (`nowcast-forecast`, `nowcast-evaluate`, `nowcast-train`, `nowcast-data`,",
             "`nowcast-imagegen`, `nowcast-solvers-bench`) take the same options.", ""]
    for title, module in CLIS:
        lines += _sections(title, importlib.import_module(module)._parser())
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    path = Path(__file__).with_name("cli.md")
    path.write_text(render())
    print(f"wrote {path}")
