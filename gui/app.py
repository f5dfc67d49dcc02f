"""Application start-up: ``run_app(argv)`` is what ``python main.py`` (no subcommand) calls.

Keeps start-up light: nothing here (or in the main window) imports torch; inference modules are
imported when a classification first needs them.

Usage: ``python main.py [gui] [FOLDER_OR_IMAGE ...]`` — paths given on the command line are
opened as samples (one per folder).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from engine import __version__
from engine.core.logging_setup import setup_logging
from engine.core.paths import APP_NAME

log = logging.getLogger("allsight.gui.app")

#: Milliseconds after the window shows before the classifier process is started in the background
#: (0: once the window's first events are handled), so the first Classify finds the model loaded.
#: The process is niced and its start waits on a pipe in a thread of its own: the window does not
#: slow down meanwhile. It was 1,000 ms; a technician who opens a folder and presses Classify
#: within the first second then waited for the whole load.
WARM_UP_DELAY_MS = 0
#: Seconds a thread may hold the GIL while another waits for it (Python's default: 0.005). The
#: event loop's thread needs the GIL for every slot and model call; while background threads in
#: this process run Python (planning a job, decoding thumbnails), each wait for it cost up to 5 ms,
#: and a click's handling several of them: 45-67 ms stalls at the Classify click, 30-48 ms with
#: 1 ms (docs/performance.md, issue #17). The heavy work runs in the classifier process anyway.
GIL_SWITCH_INTERVAL_S = 0.001


def freeze_long_lived_objects() -> None:
    """Exempt everything alive now (the imported modules, the window: ~90,000 objects) from
    Python's full garbage collections.

    A full collection scans every tracked object with the GIL held; in the app that was one
    58-62 ms freeze of the event loop a few seconds into every first batch, the longest stall
    left (docs/performance.md, issue #17). Frozen objects are still freed by reference counting;
    only a reference cycle among them would be kept until exit, and the start-up objects live
    that long anyway."""
    import gc

    gc.freeze()


def start_background_work(window) -> None:  # noqa: ANN001 - a gui.main_window.MainWindow
    """What the app does once its window shows (benchmarks/gui_responsiveness.py does the same)."""
    from PySide6.QtCore import QTimer

    QTimer.singleShot(0, freeze_long_lived_objects)  # once the window's first events are handled
    if os.environ.get("ALLSIGHT_NO_WARMUP") != "1":
        # Start the classifier process now: the first Classify then finds the model loaded.
        QTimer.singleShot(WARM_UP_DELAY_MS, window.warm_up_model)


def create_application(argv: list[str] | None = None):
    """The QApplication (reused if one exists), with ALLSight's names set, and this process's GIL
    handed over at :data:`GIL_SWITCH_INTERVAL_S`."""
    from PySide6.QtWidgets import QApplication

    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    QApplication.setOrganizationName(APP_NAME)
    QApplication.setApplicationName(APP_NAME)
    QApplication.setApplicationVersion(__version__)
    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else "allsight", *(argv or [])])
    app.setApplicationDisplayName(APP_NAME)
    return app


def _existing_application():
    from PySide6.QtWidgets import QApplication

    return QApplication.instance()


def run_app(argv: list[str] | None = None) -> int:
    """Start the desktop app; returns the exit code."""
    argv = list(argv or [])
    log_file = setup_logging()
    log.info("ALLSight %s starting (log: %s)", __version__, log_file)
    created = _existing_application() is None
    app = create_application(argv)

    from gui.errors import error_message, format_details, install_exception_hooks, show_error

    install_exception_hooks()
    try:
        from gui.main_window import MainWindow
        from gui.settings import load_settings
        from gui.theme import apply_theme

        settings = load_settings()
        apply_theme(app, settings.theme)  # before any widget is built: each starts in the right colours
        window = MainWindow(settings)
    except Exception as exc:  # the window itself failed: say so instead of vanishing
        log.exception("the main window could not be created")
        show_error(None, f"ALLSight could not start: {error_message(exc)}", format_details(exc))
        return 1
    screen = app.primaryScreen()
    if screen is not None:  # a small laptop screen: stay inside it
        available = screen.availableGeometry()
        window.resize(min(window.width(), int(available.width() * 0.95)),
                      min(window.height(), int(available.height() * 0.95)))
    window.show()
    # Qt takes its own options (-platform X, -style X...) out of app.arguments().
    args = app.arguments()[1:] if created else argv
    paths = [Path(a) for a in args if not a.startswith("-")]
    missing = [p for p in paths if not p.exists()]
    if missing:
        window.statusBar().showMessage("Not found: " + ", ".join(str(p) for p in missing), 10000)
    if paths := [p for p in paths if p.exists()]:
        window.open_paths(paths)
    if window.identity is None:  # the lab requires ALLSight accounts: ask who it is, once the window shows
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, window.access.sign_in_if_needed)
    start_background_work(window)
    try:
        return int(app.exec())
    finally:
        window.shutdown()
        log.info("ALLSight closed")
