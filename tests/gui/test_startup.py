"""Start-up stays light: the GUI starts (and shows an image) without importing torch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.gui.conftest import make_sample_folder

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    import gui.app

    create = gui.app.create_application
    state = {}

    def check(app):
        wins = [w for w in QApplication.topLevelWidgets() if hasattr(w, "samples_panel")]
        win = wins[0]
        if win.current_rgb is None or win.preview_panel.displayed is None:
            state["tries"] = state.get("tries", 0) + 1
            if state["tries"] < 200:
                QTimer.singleShot(50, lambda: check(app))
                return
        print("TITLE", win.windowTitle())
        print("SAMPLES", [s.sample_id for s in win.samples_panel.samples])
        print("SHOWN", win.current_rgb is not None, win.preview_panel.displayed is not None)
        print("TORCH", sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")
                              or m.startswith("torchvision"))[:5])
        win.close()

    def create_application(argv):
        app = create(argv)
        QTimer.singleShot(100, lambda: check(app))
        return app

    gui.app.create_application = create_application
    import main  # noqa: F401 - the real entry point's imports count too
    import cli.main  # noqa: F401
    print("RC", gui.app.run_app([sys.argv[1]]))
    """
)


def test_app_starts_without_importing_torch(tmp_path):
    folder = make_sample_folder(tmp_path, "S-startup", count=2)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT),
               ALLSIGHT_CONFIG_DIR=str(tmp_path / "config"), ALLSIGHT_LOG_DIR=str(tmp_path / "logs"),
               ALLSIGHT_DATA_DIR=str(tmp_path / "data"),
               # the idle-time model warm-up (1 s after launch) would import torch by design
               ALLSIGHT_NO_WARMUP="1")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(folder)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "TITLE ALLSight " in out and "research use only" in out
    assert "SAMPLES ['S-startup']" in out
    assert "SHOWN True True" in out
    assert "TORCH []" in out, out
    assert "RC 0" in out
    # logging went to the isolated folder
    assert (tmp_path / "logs" / "allsight.log").is_file()


def test_entry_point_routes_commands_to_the_cli_and_paths_to_the_app(tmp_path, monkeypatch):
    import cli.main
    import gui.app
    import main

    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(cli.main, "main", lambda argv: calls.append(("cli", argv)) or 0)
    monkeypatch.setattr(gui.app, "run_app", lambda argv: calls.append(("app", argv)) or 0)
    folder = make_sample_folder(tmp_path, "S-dropped", count=1)
    cases = [
        ([], ("app", [])),
        (["gui", str(folder)], ("app", [str(folder)])),
        ([str(folder)], ("app", [str(folder)])),  # a folder dropped on the icon opens in the app
        (["classify", str(folder)], ("cli", ["classify", str(folder)])),
        (["--version"], ("cli", ["--version"])),
        (["no-such-command"], ("cli", ["no-such-command"])),  # argparse's usage error
    ]
    for argv, expected in cases:
        calls.clear()
        assert main.main(argv) == 0
        assert calls == [expected], argv
