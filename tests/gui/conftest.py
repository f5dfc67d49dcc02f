"""GUI fixtures: isolated config/log folders, no blocking dialogs, a main window, sample folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import synthetic_smear, write_image


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path, monkeypatch):
    """Settings, logs and the result database go to tmp folders, never the real home."""
    monkeypatch.setenv("ALLSIGHT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("ALLSIGHT_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("ALLSIGHT_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


@pytest.fixture(autouse=True)
def no_unexpected_questions(monkeypatch):
    """A yes/no question nobody expected fails the test (instead of silently answering "no");
    a test that expects one patches ``gui.dialogs.confirm`` itself."""
    from gui import dialogs as gui_dialogs

    def unexpected(parent, title, text, yes, no):
        raise AssertionError(f"unexpected question {title!r}: {text}")

    monkeypatch.setattr(gui_dialogs, "confirm", unexpected)


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
    from gui.workbench import PENDING

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


# ---------------------------------------------------------------------------- the workflow
@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """One tiny baseline model (32 px, random weights) shared by the GUI workflow tests."""
    from tests.conftest import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("gui-models")).weights_path


@pytest.fixture
def wf_settings(tiny_model_path):
    from gui.settings import Settings

    return Settings(active_model=str(tiny_model_path), device="cpu")


def make_window(qtbot, settings):
    from gui.main_window import MainWindow

    win = MainWindow(settings)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    qtbot.waitUntil(lambda: win.history_loaded, timeout=10000)
    return win


@pytest.fixture
def wf_window(qtbot, wf_settings):
    win = make_window(qtbot, wf_settings)
    yield win
    win.shutdown()


def open_sample(qtbot, window, folder: Path, count: int = 1):
    window.open_paths([folder])
    wait_sample_loaded(qtbot, window, count)
    return window.samples_panel.current_sample()


def wait_classified(qtbot, window, sample, timeout: int = 30000):
    """Wait until the sample's job is over and its results are in the table."""
    def done():
        assert not window.batch.running
        job = next(j for j in window.batch.jobs if j.sample is sample)
        assert job.state == "done", job.message
        assert window.results_panel.model.rowCount() == len(sample.images)

    qtbot.waitUntil(done, timeout=timeout)


def slow_classification(monkeypatch, seconds: float = 0.05):
    """Make each network batch take a while, so pause/cancel can be tested mid-run."""
    from engine.inference.process import ClassifierProcess
    from tests.gui.fakes import slowed

    monkeypatch.setattr(ClassifierProcess, "classify_paths", slowed(ClassifierProcess.classify_paths, seconds))


def drive_dialog(monkeypatch, dialog_class, *steps):
    """Replace ``dialog_class.exec``: each call runs the next of ``steps`` on the real dialog
    (setting its fields and calling ``accept()``/``reject()`` as a person would) and returns
    the dialog's result, so the code under test meets the dialog's own checks."""
    queue = list(steps)

    def exec_(dialog):
        assert queue, f"unexpected {dialog_class.__name__}: {dialog.windowTitle()!r}"
        queue.pop(0)(dialog)
        return dialog.result()

    monkeypatch.setattr(dialog_class, "exec", exec_)
    return queue


@pytest.fixture
def store(tmp_path):
    """A result store of its own for a test (a real SQLite file in the test's folder)."""
    from engine.store.results import ResultStore

    s = ResultStore.open(tmp_path / "results.db")
    yield s
    s.close()
