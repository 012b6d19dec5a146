"""Provenance shared by the benchmark scripts: command, commit, date and machine."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def provenance(command: str) -> dict:
    """What a results file must say about how it was produced."""
    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: E731
    return {"command": command, "commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
                       f"({torch.get_num_threads()} threads), Python {platform.python_version()}"}


def header(title: str, meta: dict) -> list:
    """The first lines of a results markdown file."""
    return [f"# {title}", "", f"- command: `{meta['command']}`",
            f"- commit: `{meta['commit']}`" + (" (with uncommitted changes)" if meta["dirty"] else ""),
            f"- machine: {meta['machine']}", f"- date: {meta['date']}"]


def write_results(out_dir: Path, name: str, payload: dict, md_lines: list) -> None:
    """Write ``<name>.json`` and ``<name>.md`` under ``out_dir`` and print the markdown."""
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(payload, indent=1) + "\n")
    (out_dir / f"{name}.md").write_text("\n".join(md_lines))
    print("\n".join(md_lines))
