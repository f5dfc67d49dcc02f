"""Rules a machine checks: the layer contracts of pyproject.toml (import-linter), which would
catch a breach; ruff clean; and, in a fresh interpreter, every engine and cli module imports
without loading Qt or gui/."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path, config: Path | None = None) -> subprocess.CompletedProcess:
    args = [str(LINT_IMPORTS), "--no-cache"] + (["--config", str(config)] if config else [])
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)})


def _contracts_toml(forbidden_external: list[str]) -> str:
    """pyproject.toml's import-linter section, written back (external modules swapped)."""
    section = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return "[" + ", ".join(f'"{x}"' for x in v) + "]" if isinstance(v, list) else f'"{v}"'

    lines = ["[tool.importlinter]"] + [f"{k} = {value(v)}" for k, v in section.items() if k != "contracts"]
    for contract in section["contracts"]:
        if contract["type"] == "forbidden":  # external modules stand in for Qt; gui's own stay
            own = [m for m in contract["forbidden_modules"] if m.split(".")[0] in ("engine", "cli", "gui")]
            contract = {**contract, "forbidden_modules": forbidden_external + own}
        lines += ["", "[[tool.importlinter.contracts]]"] + [f"{k} = {value(v)}" for k, v in contract.items()]
    return "\n".join(lines) + "\n"


def test_every_layer_contract_is_kept():
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert len(contracts) >= 3
    run = _lint(REPO)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    out = " ".join(run.stdout.split())  # the report wraps long names
    for contract in contracts:
        assert f"{contract['name']} KEPT" in out
    assert f"{len(contracts)} kept, 0 broken" in out


def test_the_contracts_catch_an_engine_module_importing_the_gui(tmp_path):
    """The same contracts over a copy of the layout in which the engine's core imports gui/, two
    gui modules import each other, and the Qt-free workbench imports a widget module (and a
    stand-in for Qt)."""
    for package, body in {"engine": "", "engine/core": "import gui.window\n", "engine/training": "",
                          "engine/reports": "", "engine/inference": "", "engine/store": "",
                          "engine/models": "", "engine/imaging": "", "engine/io": "", "engine/workflow": "",
                          "cli": "import engine.core\n", "gui": "", "gui/window": None,
                          "gui/workbench": "import json\nimport gui.errors\n", "gui/errors": "",
                          "gui/workers": "", "gui/dialogs": "",
                          "gui/a": "import gui.b\n", "gui/b": "import gui.a\n"}.items():
        if body is None:
            (tmp_path / f"{package}.py").write_text("import engine\n")
            continue
        if package in ("gui/a", "gui/b", "gui/workbench", "gui/errors", "gui/workers", "gui/dialogs"):  # plain modules
            (tmp_path / f"{package}.py").write_text(body)
            continue
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text(body)
    config = tmp_path / "pyproject.toml"
    config.write_text(_contracts_toml(forbidden_external=["json"]))
    run = _lint(tmp_path, config)
    assert run.returncode == 1
    assert "engine.core -> gui.window" in run.stdout
    assert "gui.workbench -> json" in run.stdout and "gui.workbench -> gui.errors" in run.stdout
    assert "No import cycles among the modules of any package BROKEN" in " ".join(run.stdout.split())


def test_ruff_is_clean():
    run = subprocess.run([str(Path(sys.executable).with_name("ruff")), "check", "--no-cache", "."], cwd=REPO,
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-4000:]


_PROBE = r"""
import importlib, json, pkgutil, sys
import cli, engine
found = sorted(m.name for package in (engine, cli) for m in pkgutil.walk_packages(package.__path__, package.__name__ + "."))
errors = {}
for name in found:
    try:
        importlib.import_module(name)
    except Exception as exc:
        errors[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"modules": sorted(sys.modules), "found": found, "errors": errors}))
"""


@pytest.fixture(scope="module")
def import_state() -> dict:
    """Every engine and cli module imported in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO, capture_output=True, text=True, check=False,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_engine_and_cli_module_imports(import_state):
    assert not import_state["errors"], import_state["errors"]
    assert {"engine.core.errors", "engine.inference.classifier", "engine.training.train", "cli.main"} <= set(
        import_state["found"])


def test_importing_engine_and_cli_loads_neither_qt_nor_gui(import_state):
    roots = {name.split(".")[0] for name in import_state["modules"]}
    assert not roots & {"PySide6", "shiboken6", "superqt", "gui"}, sorted(roots & {"PySide6", "shiboken6", "superqt", "gui"})


def test_mypy_is_clean_on_the_engine():
    run = subprocess.run([str(Path(sys.executable).with_name("mypy"))], cwd=REPO, capture_output=True, text=True,
                         timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
