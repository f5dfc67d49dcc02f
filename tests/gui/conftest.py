"""GUI fixtures: isolated config/log folders, no blocking dialogs, a main window, sample folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import synthetic_smear, write_image


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path, monkeypatch):
    """Settings and logs go to tmp folders, never the real home."""
    monkeypatch.setenv("ALLSIGHT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("ALLSIGHT_LOG_DIR", str(tmp_path / "logs"))
    return tmp_path


@pytest.fixture(autouse=True)
def dialogs(monkeypatch):
    """Modal dialogs never block: message boxes record what they would show, file dialogs cancel."""
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    shown: list[dict] = []

    def fake_exec(box):
        shown.append({"text": box.text(), "details": box.detailedText(), "info": box.informativeText()})
        return int(QMessageBox.StandardButton.Ok.value)

    monkeypatch.setattr(QMessageBox, "exec", fake_exec)
    monkeypatch.setattr(QMessageBox, "about", staticmethod(lambda *a, **k: shown.append({"text": "about"})))
    monkeypatch.setattr(QFileDialog, "exec", lambda self: 0)
    return shown


@pytest.fixture
def settings():
    from gui.settings import Settings

    return Settings()


@pytest.fixture
def window(qtbot, settings):
    from gui.main_window import MainWindow

    win = MainWindow(settings)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.shutdown()


def make_sample_folder(root: Path, name: str = "S-2024-017", count: int = 4, *, size: int = 96,
                       broken: bool = False) -> Path:
    folder = root / name
    for i in range(count):
        write_image(folder / f"cell_{i + 1:02d}.png", synthetic_smear(i % 4, size, i))
    if broken:
        (folder / "cell_99.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    return folder


@pytest.fixture
def sample_folder(tmp_path) -> Path:
    return make_sample_folder(tmp_path)


def wait_sample_loaded(qtbot, window, count: int = 1):
    """Wait until ``count`` samples are open and all their thumbnails are decoded."""
    from gui.samples import PENDING

    panel = window.samples_panel

    def loaded():
        assert len(panel.samples) == count
        for sample in panel.samples:
            assert all(im.state != PENDING for im in sample.images)

    qtbot.waitUntil(loaded, timeout=15000)


def wait_image_shown(qtbot, window, row: int):
    def shown():
        assert window.current_row == row
        assert window.current_rgb is not None
        assert window.viewer.has_image()

    qtbot.waitUntil(shown, timeout=10000)


def smear(size: int = 128, label: int = 1, seed: int = 3) -> np.ndarray:
    return synthetic_smear(label, size, seed)
