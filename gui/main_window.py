"""The main window: samples on the left, the image in the middle, the preprocessing preview on
the right, status along the bottom.

Layout (attribute names in brackets, for the work that adds the batch queue, results and
review)::

    [menuBar: file_menu, view_menu, help_menu]
    [splitter: samples_panel | center_tabs (tab "Image" = viewer_panel) | preview_panel]
    [statusBar: message · busy_label · model_label · ruo_label]

``center_tabs`` is where the results table and review screens go (``add_center_tab``); docks
for the queue can be added with ``addDockWidget`` (dock nesting is enabled). All background work
goes through ``self.workers`` (:class:`gui.workers.WorkerPool`), which ``shutdown()`` stops.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QSplitter, QTabWidget, QWidget

from engine import __version__
from engine.errors import AllSightError, ImageLoadError
from gui.preview import PreviewPanel
from gui.samples import UNREADABLE, Sample, SamplesPanel
from gui.settings import Settings, load_settings, save_settings
from gui.viewer import ViewerPanel, crop_region
from gui.workers import PRIORITY_INTERACTIVE, WorkerPool

log = logging.getLogger("allsight.gui.main_window")

DEFAULT_SIZE = (1400, 900)


def window_title() -> str:
    return f"ALLSight {__version__} — research use only"


def _load_for_view(path: Path) -> np.ndarray | ImageLoadError:
    """Worker: the full image, or the reason it cannot be read (an expected outcome)."""
    from engine.imageio import load_image

    try:
        return load_image(path)
    except ImageLoadError as exc:
        return exc


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings if settings is not None else load_settings()
        self.setWindowTitle(window_title())
        self.resize(*DEFAULT_SIZE)
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)

        self.workers = WorkerPool(self)
        self.workers.default_error_parent = self

        # Panels
        self.samples_panel = SamplesPanel(self.workers, self, default_operator=self.settings.operator_name)
        self.viewer_panel = ViewerPanel(self)
        self.viewer = self.viewer_panel.viewer
        self.preview_panel = PreviewPanel(self.workers, self)
        self.center_tabs = QTabWidget(self)
        self.center_tabs.setDocumentMode(True)
        self.center_tabs.addTab(self.viewer_panel, "Image")

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.samples_panel)
        self.splitter.addWidget(self.center_tabs)
        self.splitter.addWidget(self.preview_panel)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self.samples_panel.setMinimumWidth(240)
        self.preview_panel.setMinimumWidth(360)
        self.splitter.setSizes([360, 590, 450])
        self.setCentralWidget(self.splitter)

        # Current image state
        self.current_sample: Sample | None = None
        self.current_row = -1
        self.current_path: Path | None = None
        self.current_rgb: np.ndarray | None = None
        self._image_request = 0

        self._build_actions()
        self._build_menus()
        self._build_status_bar()
        self.model_card = None
        self.model_error: str | None = None
        self.load_model_info()

        sp = self.samples_panel
        sp.set_open_action(self.act_open)
        sp.current_image_changed.connect(self._on_current_image_changed)
        sp.sample_updated.connect(self._on_sample_updated)
        sp.status_message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        sp.operator_entered.connect(self._on_operator_entered)
        self.viewer_panel.navigate.connect(self.step_image)
        self.preview_panel.result_displayed.connect(self._on_preview_result)
        self.workers.busy_changed.connect(self._on_busy_changed)
        self._closed = False

    # ------------------------------------------------------------------ construction
    def _build_actions(self) -> None:
        self.act_open = QAction("Open folder(s)…", self)
        self.act_open.setShortcut(QKeySequence.StandardKey.Open)
        self.act_open.setStatusTip("Open one or more folders of smear images; each folder becomes a sample")
        self.act_open.triggered.connect(self.open_folders_dialog)
        self.act_quit = QAction("Quit", self)
        self.act_quit.setShortcut(QKeySequence.StandardKey.Quit)
        self.act_quit.setMenuRole(QAction.MenuRole.QuitRole)
        self.act_quit.triggered.connect(self.close)
        self.act_about = QAction("About ALLSight", self)
        self.act_about.setMenuRole(QAction.MenuRole.AboutRole)
        self.act_about.triggered.connect(self._show_about)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        self.file_menu = bar.addMenu("&File")
        self.file_menu.addAction(self.act_open)
        self.file_menu.addSeparator()
        self.file_menu.addAction(self.act_quit)
        self.view_menu = bar.addMenu("&View")
        for act in self.viewer_panel.actions_for_menu():
            if act is None:
                self.view_menu.addSeparator()
            else:
                self.view_menu.addAction(act)
        self.help_menu = bar.addMenu("&Help")
        self.help_menu.addAction(self.act_about)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.busy_label = QLabel("", self)
        self.busy_label.setStyleSheet("color: #546e7a; padding: 0 6px;")
        self.model_label = QLabel("", self)
        self.model_label.setStyleSheet("padding: 0 6px;")
        self.ruo_label = QLabel("Research use only — not for diagnosis", self)
        self.ruo_label.setStyleSheet("color: #8d6e63; padding: 0 6px;")
        bar.addPermanentWidget(self.busy_label)
        bar.addPermanentWidget(self.model_label)
        bar.addPermanentWidget(self.ruo_label)

    def add_center_tab(self, widget: QWidget, title: str) -> int:
        """For later screens (results table, review)."""
        return self.center_tabs.addTab(widget, title)

    # ------------------------------------------------------------------ model
    def load_model_info(self) -> None:
        """Read the active model's card (cheap: JSON only, no torch). No model installed is a
        normal state: the status bar says so and the preview uses the research defaults."""
        from engine.checkpoint import resolve_model_card

        model = self.settings.active_model
        try:
            card = resolve_model_card(model)
        except (AllSightError, OSError) as exc:
            self.model_card, self.model_error = None, str(exc)
            log.warning("active model %r unavailable: %s", model, exc)
            self.model_label.setText("⚠ No model installed")
            self.model_label.setStyleSheet("color: #c62828; padding: 0 6px;")
            self.model_label.setToolTip(
                f"The active model “{model}” cannot be used:\n{exc}\n\n"
                "Classification needs an installed model; image viewing and the preview work without one.")
            self.preview_panel.set_model_config(
                None, None, f"No model installed (“{model}”): the preview starts from the default "
                            "parameters of the original research.")
            return
        self.model_card, self.model_error = card, None
        self.model_label.setText(f"Model: {card.id} {card.version}")
        self.model_label.setStyleSheet("padding: 0 6px;")
        self.model_label.setToolTip(f"{card.path}\nArchitecture: {card.architecture}, "
                                    f"input {card.image_size} px")
        self.preview_panel.set_model_config(card.preprocess, f"{card.id} {card.version}")

    # ------------------------------------------------------------------ samples
    def open_folders_dialog(self) -> None:
        from gui import dialogs

        start = self.settings.last_open_dir if Path(self.settings.last_open_dir or "").is_dir() else ""
        folders = dialogs.choose_folders(self, start)
        if folders:
            self.open_paths(folders)

    def open_paths(self, paths: list[str | Path]) -> None:
        """Open folders (one sample each) and/or image files; remembers where they came from."""
        paths = [Path(p) for p in paths]
        if not paths:
            return
        first = paths[0]
        remembered = str(first.parent if first.is_dir() or first.is_file() else first)
        if remembered != self.settings.last_open_dir:
            self.update_settings(last_open_dir=remembered)
        self.samples_panel.open_paths(paths)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._dropped_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        if self._dropped_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = self._dropped_paths(event)
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)
        else:
            event.ignore()

    @staticmethod
    def _dropped_paths(event) -> list[Path]:
        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        return [Path(url.toLocalFile()) for url in mime.urls()
                if url.isLocalFile() and Path(url.toLocalFile()).exists()]

    def _on_operator_entered(self, name: str) -> None:
        if name and name != self.settings.operator_name:
            self.samples_panel.default_operator = name
            self.update_settings(operator_name=name)

    # ------------------------------------------------------------------ current image
    def step_image(self, delta: int) -> None:
        self.samples_panel.step_image(delta)

    def _on_current_image_changed(self, sample: Sample | None, row: int) -> None:
        self.current_sample, self.current_row = sample, row
        self._image_request += 1
        self.current_rgb = None
        if sample is None or row < 0:
            self.current_path = None
            self.viewer.set_image(None, placeholder="Open a sample folder (File ▸ Open folder…) "
                                                    "or drop folders here.")
            self.viewer_panel.set_title("")
            self.preview_panel.set_image(None)
            return
        image = sample.images[row]
        self.current_path = image.path
        self.viewer_panel.set_title(f"{row + 1}/{len(sample.images)}   {image.name}")
        if image.state == UNREADABLE:
            self._show_unreadable(image.path, image.error or "")
            return
        request = self._image_request
        self.workers.submit(_load_for_view, image.path, priority=PRIORITY_INTERACTIVE, name="load image",
                            on_result=lambda result: self._on_image_loaded(request, sample, row, result))

    def _on_image_loaded(self, request: int, sample: Sample, row: int, result) -> None:
        if request != self._image_request:
            return  # the user has moved on
        if isinstance(result, ImageLoadError):
            model = self.samples_panel.model_for(sample)
            if sample.images[row].state != UNREADABLE:
                model.set_unreadable(row, result.reason)
            self._show_unreadable(result.path, result.reason)
            return
        self.current_rgb = result
        self.viewer.set_image(result)
        self.preview_panel.set_image(result, sample.images[row].name)

    def _show_unreadable(self, path: Path, reason: str) -> None:
        self.viewer.set_image(None, placeholder=f"{path.name}\n\nunreadable: {reason}")
        self.preview_panel.set_image(None)

    def _on_sample_updated(self, sample: Sample) -> None:
        # A thumbnail decode may have found the image on show unreadable first.
        if (sample is self.current_sample and 0 <= self.current_row < len(sample.images)
                and sample.images[self.current_row].state == UNREADABLE and self.current_rgb is None):
            image = sample.images[self.current_row]
            self._show_unreadable(image.path, image.error or "")

    # ------------------------------------------------------------------ mask overlay
    def _on_preview_result(self, result) -> None:
        """The viewer's colour-mask overlay is the preview's mask (the same computation the
        model's input comes from), stretched over the part of the image the model sees."""
        if self.current_rgb is None or result.stages is None:
            return
        h, w = self.current_rgb.shape[:2]
        self.viewer.set_mask(result.stages.mask, crop_region(w, h, result.config.crop))
        self.viewer.set_mask_visible(self.viewer_panel.act_mask.isChecked())

    # ------------------------------------------------------------------ status, settings
    def _on_busy_changed(self, pending: int) -> None:
        self.busy_label.setText(f"Working… ({pending})" if pending else "")

    def update_settings(self, **changes) -> None:
        self.settings = self.settings.replace(**changes)
        try:
            save_settings(self.settings)
        except OSError as exc:
            log.warning("settings could not be saved: %s", exc)
            self.statusBar().showMessage(f"Settings could not be saved: {exc}", 10000)

    def _show_about(self) -> None:
        from engine.logging_setup import log_dir
        from gui import dialogs

        dialogs.show_about(self, str(log_dir() / "allsight.log"))

    # ------------------------------------------------------------------ closing
    def shutdown(self) -> None:
        """Stop background work (idempotent). Called on close; tests call it in teardown."""
        if self._closed:
            return
        self._closed = True
        self.preview_panel._timer.stop()
        self.workers.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)

