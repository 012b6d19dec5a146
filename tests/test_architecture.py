"""The layers of DESIGN.md hold: import-linter's contracts in pyproject.toml are kept, and a broken
one is caught (an upward import planted in a copy of the package)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("importlinter")


def _lint(package_parent: Path) -> subprocess.CompletedProcess:
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True))"
    env = {"PYTHONPATH": str(package_parent), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", code, str(ROOT / "pyproject.toml")], cwd=package_parent,
                          capture_output=True, text=True, env=env, timeout=120)


def test_the_import_contracts_are_kept():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 kept, 0 broken" in out.stdout


@pytest.mark.parametrize("module, planted", [
    ("foundation/registry.py", "from ..models import ldm  # noqa"),          # the foundation imports upward
    ("verification/ensemble.py", "from ..nowcasters import resolve  # noqa"),  # a score imports a service
    ("models/ema.py", "from .. import forecast  # noqa"),                       # a library module imports a CLI
])
def test_an_upward_import_breaks_a_contract(tmp_path, module, planted):
    shutil.copytree(ROOT / "nowcast", tmp_path / "nowcast", ignore=shutil.ignore_patterns("weights", "__pycache__"))
    target = tmp_path / "nowcast" / module
    target.write_text(target.read_text() + "\n" + planted + "\n")
    out = _lint(tmp_path)
    assert out.returncode != 0 and "BROKEN" in out.stdout, out.stdout + out.stderr


def test_the_foundation_imports_without_torch():
    code = ("import sys, nowcast.foundation as f; f.get_task('sevirlr'); "
            "print(sorted(m for m in ('torch', 'numpy', 'xarray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
