"""engine/ is a Qt-free library that gui/ builds on: it must never import Qt or gui/.

Checked twice: statically (every import statement in every engine module, however deep or
lazily placed) and dynamically (importing the engine in a fresh interpreter loads no Qt).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENGINE = REPO / "engine"

QT_ROOTS = {"PySide6", "PySide2", "PyQt5", "PyQt6", "PyQt4", "superqt", "shiboken6", "shiboken2",
            "qtpy", "sip", "pyqtgraph"}
FORBIDDEN_ROOTS = QT_ROOTS | {"gui"}


def engine_sources() -> list[Path]:
    files = sorted(ENGINE.rglob("*.py"))
    assert ENGINE / "__init__.py" in files and ENGINE / "imageio.py" in files
    return files


def imported_modules(source: str, filename: str = "<src>") -> set[str]:
    """Every module an import statement (at any depth: inside functions, try blocks, ...) or an
    importlib.import_module / __import__ call with a literal name refers to."""
    tree = ast.parse(source, filename=filename)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return found


def forbidden(modules: set[str], roots: set[str] = FORBIDDEN_ROOTS) -> set[str]:
    return {m for m in modules if m.split(".")[0] in roots}


def test_checker_catches_violations():
    # The checker itself must see every way of importing, or the real test proves nothing.
    src = """
import os
import PySide6.QtCore
from PyQt6 import QtWidgets
from superqt import QRangeSlider
def later():
    import shiboken6
    from gui.app import run_app
    from gui import widgets
try:
    import importlib
    importlib.import_module("PySide6.QtGui")
    __import__("qtpy")
except ImportError:
    pass
from . import sibling
"""
    bad = forbidden(imported_modules(src))
    assert {"PySide6.QtCore", "PyQt6", "superqt", "shiboken6", "gui.app", "gui", "PySide6.QtGui",
            "qtpy"} <= bad
    assert "os" not in bad and "importlib" not in bad
    assert forbidden(imported_modules("import guidance\nfrom gui_helpers import x\n")) == set()


def test_engine_sources_do_not_import_qt_or_gui():
    offenders: dict[str, set[str]] = {}
    for path in engine_sources():
        bad = forbidden(imported_modules(path.read_text(encoding="utf-8"), str(path)))
        if bad:
            offenders[str(path.relative_to(REPO))] = bad
    assert not offenders, f"engine/ must stay Qt-free and never import gui/: {offenders}"


def test_engine_has_no_relative_import_escaping_the_package():
    for path in engine_sources():
        depth = len(path.relative_to(ENGINE).parts)  # 1 for engine/x.py, 2 for engine/models/x.py
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level <= depth, f"{path}: relative import reaches outside engine/"


_PROBE = r"""
import importlib, json, pkgutil, sys
explicit = ["engine", "engine.imageio", "engine.preprocess", "engine.train", "engine.checkpoint",
            "engine.models", "engine.cli"]
for name in explicit:
    importlib.import_module(name)
import engine
found = sorted(m.name for m in pkgutil.walk_packages(engine.__path__, "engine.")
               if not m.name.endswith("__main__"))  # importing __main__ would run the CLI
errors = {}
for name in found:
    try:
        importlib.import_module(name)
    except Exception as exc:
        errors[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"modules": sorted(sys.modules), "engine": found, "errors": errors}))
"""


@pytest.fixture(scope="module")
def engine_import_state() -> dict:
    proc = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO, capture_output=True, text=True, check=False,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_engine_loads_no_qt(engine_import_state):
    loaded = set(engine_import_state["modules"])
    assert {"engine.imageio", "engine.preprocess", "engine.train", "engine.checkpoint",
            "engine.models", "engine.cli"} <= loaded
    assert "PySide6" not in loaded
    assert not forbidden(loaded, QT_ROOTS), sorted(forbidden(loaded, QT_ROOTS))


def test_importing_engine_loads_no_gui(engine_import_state):
    assert not forbidden(set(engine_import_state["modules"]), {"gui"})


def test_every_engine_module_imports(engine_import_state):
    assert not engine_import_state["errors"], engine_import_state["errors"]
    assert len(engine_import_state["engine"]) >= 10
