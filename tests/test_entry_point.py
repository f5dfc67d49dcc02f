"""The ``allsight`` console script does what ``python main.py`` does: the desktop app with no
arguments (or with folders to open), the command line for a command (issue 15)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_console_script_is_main_pys_entry_point():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["allsight"] == "main:console_main"


def test_no_arguments_open_the_app_and_a_command_runs_the_cli(monkeypatch):
    import gui.app
    import main

    opened = []
    monkeypatch.setattr(gui.app, "run_app", lambda argv: opened.append(argv) or 0)
    assert main.main([]) == 0 and opened == [[]]
    with pytest.raises(SystemExit) as exit_:
        main.main(["--version"])
    assert exit_.value.code == 0 and opened == [[]]


@pytest.mark.skipif(shutil.which("allsight", path=str(Path(sys.executable).parent)) is None,
                    reason="the package is not installed in this environment (pip install -e .)")
def test_the_installed_script_prints_the_version():
    script = shutil.which("allsight", path=str(Path(sys.executable).parent))
    out = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and out.stdout.startswith("ALLSight ")
