"""Packaging: pyproject and environment.yml agree; the solver core stands alone; no import side effects."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda names that differ from PyPI names
CONDA_TO_PYPI = {"pytorch": "torch"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_packages() -> set:
    import tomllib
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in meta["dependencies"]}
    for reqs in meta["optional-dependencies"].values():
        names |= {_name(r) for r in reqs}
    return names - {meta["name"]}          # the test extra names the project's own extras


def _environment_packages() -> set:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            n = _name(dep)
            if n not in ("python", "pip"):
                names.add(CONDA_TO_PYPI.get(n, n))
        else:  # the pip: sub-list (PyPI-only packages), minus the editable install of the project
            names |= {_name(r) for r in dep["pip"] if not r.startswith("-e")}
    return names


def test_environment_yml_names_the_same_packages_as_pyproject():
    assert _environment_packages() == _pyproject_packages()


def test_solver_core_imports_only_torch_numpy_the_standard_library_and_the_foundation():
    allowed = {"torch", "numpy", "tqdm"} | set(sys.stdlib_module_names)
    for path in (ROOT / "nowcast" / "solvers").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: inside nowcast.solvers, or the foundation (the bench CLI: training)
                    allowed_up = ("foundation", "training") if path.name == "bench.py" else ("foundation",)
                    assert node.level == 1 or (node.level == 2 and (node.module or "").startswith(allowed_up)), \
                        f"{path.name} imports outside nowcast.solvers and nowcast.foundation"
                    continue
                mods = [node.module]
            else:
                continue
            for m in mods:
                assert m.split(".")[0] in allowed, f"{path.name} imports {m}"


def test_importing_the_package_has_no_side_effects(tmp_path):
    code = ("import sys, nowcast, nowcast.solvers, nowcast.solvers.bench, nowcast.imagegen.edm, "
            "nowcast.imagegen.flow, nowcast.imagegen.fid, nowcast.imagegen.bench, nowcast.imagegen.__main__; "
            "heavy = [m for m in ('diffusers', 'transformers', 'scipy', 'matplotlib', 'sklearn', 'mlxtend', "
            "'torch_utils', 'dnnlib') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
    assert list(tmp_path.iterdir()) == []
