"""The main window's widgets, actions, menus and status bar: layout only (no rules, no slots
beyond connecting the actions). :class:`gui.main_window.MainWindow` calls these once, in order,
from its constructor; the attribute names are the window's (see its module docstring).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QSplitter, QTabWidget, QToolBar, QToolButton

from gui import errors as gui_errors
from gui import theme
from gui.preview import PreviewPanel
from gui.queue_panel import QueuePanel
from gui.results import ResultsPanel
from gui.samples import SamplesPanel
from gui.scrolling import scrollable
from gui.theme import Tone
from gui.viewer import ViewerPanel


# ``window`` is the gui.main_window.MainWindow being built (typed as its Qt base: the window module
# imports this one, never the other way round).
def build_panels(window: QMainWindow) -> None:
    """The samples panel | the image tabs | the results tabs, and the batch queue dock."""
    window.samples_panel = SamplesPanel(window.workers, window)  # its default operator: gui.access_flow
    window.viewer_panel = ViewerPanel(window)
    window.viewer = window.viewer_panel.viewer
    window.preview_panel = PreviewPanel(window.workers, window)
    window.results_panel = ResultsPanel(window)
    window.center_tabs = QTabWidget(window)
    window.center_tabs.setDocumentMode(True)
    window.center_tabs.addTab(window.viewer_panel, "Image")
    window.side_tabs = QTabWidget(window)
    window.side_tabs.setDocumentMode(True)
    # Scroll areas, so a small or scaled screen scrolls a panel instead of cutting it off.
    window.side_tabs.addTab(scrollable(window.results_panel), "Results")
    window.side_tabs.addTab(scrollable(window.preview_panel), "Preprocessing")

    window.splitter = QSplitter(Qt.Orientation.Horizontal, window)
    window.splitter.setChildrenCollapsible(False)
    window.splitter.addWidget(window.samples_panel)
    window.splitter.addWidget(window.center_tabs)
    window.splitter.addWidget(window.side_tabs)
    window.splitter.setStretchFactor(0, 0)
    window.splitter.setStretchFactor(1, 1)
    window.splitter.setStretchFactor(2, 0)
    window.samples_panel.setMinimumWidth(240)
    window.side_tabs.setMinimumWidth(380)
    window.splitter.setSizes([260, 470, 710])
    window.setCentralWidget(window.splitter)

    window.queue_panel = QueuePanel(window.batch, window)
    window.queue_dock = QDockWidget("Batch queue", window)
    window.queue_dock.setObjectName("queue_dock")
    window.queue_dock.setWidget(scrollable(window.queue_panel))
    window.queue_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                                | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                                | QDockWidget.DockWidgetFeature.DockWidgetClosable)
    window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, window.queue_dock)
    window.resizeDocks([window.queue_dock], [140], Qt.Orientation.Vertical)


def _action(window: QMainWindow, text: str, slot: Callable[[], object], *, shortcut: QKeySequence | None = None,
            tip: str = "", status: str = "", role: QAction.MenuRole | None = None) -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(shortcut)
    if tip:
        action.setToolTip(tip)
    if status:
        action.setStatusTip(status)
    if role is not None:
        action.setMenuRole(role)
    action.triggered.connect(slot)
    return action


def build_actions(window: QMainWindow) -> None:
    """The window's actions (``window.act_*``), connected to its slots."""
    keys, roles = QKeySequence.StandardKey, QAction.MenuRole
    window.act_open = _action(window, "Open folder(s)…", window.open_folders_dialog, shortcut=QKeySequence(keys.Open),
                              status="Open one or more folders of smear images; each folder becomes a sample")
    window.act_quit = _action(window, "Quit", window.close, shortcut=QKeySequence(keys.Quit), role=roles.QuitRole)
    window.act_close_sample = _action(
        window, "Close sample", window.close_current_sample, shortcut=QKeySequence(keys.Close),
        tip="Take the selected sample off the list (its stored results stay in the history)")
    window.act_audit = _action(window, "Audit trail…", window.show_audit_trail,
                               tip="Every recorded action (who, what, when), its integrity check, and an export")
    window.act_about = _action(window, "About ALLSight", window._show_about, role=roles.AboutRole)
    window.act_classify = _action(window, "Classify", window.classify_current, shortcut=QKeySequence("Ctrl+R"),
                                  tip="Classify the selected sample (Ctrl+R): queued and started at once; "
                                      "a sample classified before resumes where it stopped")
    window.act_export = _action(window, "Export report…", window.export_current, shortcut=QKeySequence("Ctrl+E"),
                                tip="Save the selected sample's report as PDF, CSV or JSON (Ctrl+E)")
    window.act_settings = _action(window, "Settings…", window.open_settings, shortcut=QKeySequence(keys.Preferences),
                                  role=roles.PreferencesRole)
    window.act_sign_off = _action(window, "Sign off", window.sign_off)
    window.act_reopen = _action(window, "Reopen…", window.reopen)
    window.act_sign_in = _action(window, "Sign in…", window.sign_in,
                                 tip="Sign in with your ALLSight account: changes are then recorded under it")
    window.act_sign_out = _action(window, "Sign out", window.sign_out,
                                  tip="Sign the ALLSight account out (nothing more is recorded under it)")
    window.act_change_password = _action(window, "Change password…", window.change_password,
                                         tip="Set a new password for the account signed in")
    window.act_retrain = _action(window, "Retrain model…", window.open_retrain_wizard,
                                 tip="Teach the model the lab's own stain from its labelled images, compare, promote")
    window.act_models = _action(window, "Models…", window.open_models,
                                tip="The installed models: which is active, their figures; activate, import, export")
    window.act_accounts = _action(window, "Accounts…", window.open_accounts,
                                  tip="ALLSight accounts and roles, and the lab's policy (administrators)")


def build_menus(window: QMainWindow) -> None:
    """The menu bar and the toolbar."""
    bar = window.menuBar()
    window.file_menu = bar.addMenu("&File")
    window.file_menu.addAction(window.act_open)
    window.file_menu.addAction(window.act_export)
    window.file_menu.addAction(window.act_audit)
    window.file_menu.addSeparator()
    window.file_menu.addAction(window.act_sign_in)
    window.file_menu.addAction(window.act_sign_out)
    window.file_menu.addAction(window.act_change_password)
    window.file_menu.addSeparator()
    window.file_menu.addAction(window.act_quit)
    window.edit_menu = bar.addMenu("&Edit")
    window.edit_menu.addAction(window.act_settings)
    window.sample_menu = bar.addMenu("&Sample")
    for act in (window.act_classify, window.act_sign_off, window.act_reopen, window.act_export,
                window.act_close_sample):
        window.sample_menu.addAction(act)
    window.tools_menu = bar.addMenu("&Tools")
    window.tools_menu.addAction(window.act_retrain)
    window.tools_menu.addAction(window.act_models)
    window.tools_menu.addAction(window.act_accounts)
    window.view_menu = bar.addMenu("&View")
    for act in window.viewer_panel.actions_for_menu():
        if act is None:
            window.view_menu.addSeparator()
        else:
            window.view_menu.addAction(act)
    window.view_menu.addSeparator()
    window.view_menu.addAction(window.queue_dock.toggleViewAction())
    window.help_menu = bar.addMenu("&Help")
    window.help_menu.addAction(window.act_about)

    window.toolbar = QToolBar("Main", window)
    window.toolbar.setObjectName("main_toolbar")
    window.toolbar.setMovable(False)
    window.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    for act in (window.act_open, window.act_classify, window.act_export, window.act_settings):
        window.toolbar.addAction(act)
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, window.toolbar)

def build_status_bar(window: QMainWindow) -> None:
    """The status bar's permanent widgets: errors, busy, who acts, device, model, research use only."""
    bar = window.statusBar()
    window.error_button = QToolButton(window)
    window.error_button.setAutoRaise(True)
    theme.style(window.error_button, Tone.ERROR, "font-weight: bold;")
    window.error_button.setToolTip("Errors since start-up: click for the details (also in the log file)")
    window.error_button.clicked.connect(lambda: gui_errors.show_recent_errors(window))
    window.error_button.hide()
    window.busy_label = QLabel("", window)
    theme.style(window.busy_label, Tone.MUTED, "padding: 0 6px;")
    window.identity_label = QLabel("", window)
    window.identity_label.setStyleSheet("padding: 0 6px;")
    window.device_label = QLabel("", window)
    window.device_label.setStyleSheet("padding: 0 6px;")
    window.model_label = QLabel("", window)
    window.model_label.setStyleSheet("padding: 0 6px;")
    window.ruo_label = QLabel("Research use only — not for diagnosis", window)
    theme.style(window.ruo_label, Tone.NOTE, "padding: 0 6px;")
    bar.addPermanentWidget(window.error_button)
    bar.addPermanentWidget(window.busy_label)
    bar.addPermanentWidget(window.identity_label)
    bar.addPermanentWidget(window.device_label)
    bar.addPermanentWidget(window.model_label)
    bar.addPermanentWidget(window.ruo_label)
