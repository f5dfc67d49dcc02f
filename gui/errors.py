"""The one error-reporting path of the GUI.

Every error a person must see goes through :func:`show_error` (or :func:`report_error` from any
thread): it writes the message and details to the log, tells the listeners (the main window's
status-bar error indicator, which lists the recent errors with their details), then shows one
modal dialog with the details folded away. If further errors arrive while that dialog is open they are appended to it
instead of stacking more dialogs. :func:`install_exception_hooks` routes uncaught exceptions (in
slots, event handlers and Python threads) here, so the app never crashes silently.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from types import TracebackType

from PySide6.QtCore import QObject, QThread, Signal, Slot
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from engine.core.errors import AllSightError
from engine.core.identity import PermissionDenied

log = logging.getLogger("allsight.gui.errors")

#: The dialog currently open, if any (only touched in the GUI thread).
_open_box: QMessageBox | None = None
_extra_count = 0

#: The latest errors (time, message, details), newest last, for the status-bar error list.
RECENT_ERRORS: deque[tuple[float, str, str]] = deque(maxlen=50)
_listeners: list[Callable[[str, str], None]] = []


def add_listener(fn: Callable[[str, str], None]) -> None:
    """Call ``fn(message, details)`` (GUI thread) for every error shown, e.g. a status indicator."""
    if fn not in _listeners:
        _listeners.append(fn)


def remove_listener(fn: Callable[[str, str], None]) -> None:
    if fn in _listeners:
        _listeners.remove(fn)


def _log_file_hint() -> str:
    try:
        from engine.core.logging_setup import log_dir

        return f"The details are also written to the log file in {log_dir()}."
    except Exception:  # pragma: no cover - a hint only
        return ""


def show_error(parent: QWidget | None, message: str, details: str | None = None,
               *, title: str = "ALLSight — error") -> None:
    """Log ``message`` (+ ``details``) and show it in one dialog. Call in the GUI thread."""
    global _open_box, _extra_count
    log.error("%s%s", message, f"\n{details}" if details else "")
    RECENT_ERRORS.append((time.time(), message, details or ""))
    for listener in tuple(_listeners):  # a listener may remove itself (a window closing)
        try:
            listener(message, details or "")
        except Exception:
            log.exception("error listener failed")
    if QApplication.instance() is None:
        return  # no GUI (e.g. a crash before the application exists): the log has it
    if _open_box is not None:
        # One dialog at a time: add this error to the open one.
        _extra_count += 1
        extra = f"\n\n--- further error ---\n{message}\n{details or ''}"
        _open_box.setDetailedText((_open_box.detailedText() or "") + extra)
        _open_box.setInformativeText(
            f"{_extra_count} more error(s) occurred while this message was open; see the details.\n"
            + _log_file_hint()
        )
        return
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Critical)
    box.setWindowTitle(title)
    box.setText(message)
    box.setInformativeText(_log_file_hint())
    if details:
        box.setDetailedText(details)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    _open_box, _extra_count = box, 0
    try:
        box.exec()
    finally:
        _open_box = None
        box.deleteLater()


def show_refusal(parent: QWidget | None, message: str, *, title: str = "ALLSight — not permitted") -> None:
    """Tell the person an action was refused to them (and why), in one dialog; logged."""
    log.warning("refused: %s", message)
    if QApplication.instance() is None:
        return
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(title)
    box.setText(message)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    try:
        box.exec()
    finally:
        box.deleteLater()


def show_exception(parent: QWidget | None, context: str, exc: BaseException) -> None:
    """``context`` ("The review could not be saved") and why: a refusal
    (:class:`PermissionDenied`) as one clear message, anything else through :func:`show_error`
    with the traceback in the details."""
    if isinstance(exc, PermissionDenied):
        show_refusal(parent, f"{context}: {exc}")
    else:
        show_error(parent, f"{context}: {error_message(exc)}", format_details(exc))


def error_message(exc: BaseException) -> str:
    """What to tell a person: engine errors are written for people; anything else is a bug."""
    if isinstance(exc, AllSightError):
        return str(exc)
    return f"An unexpected error occurred: {type(exc).__name__}: {exc}"


def format_details(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


class _Bridge(QObject):
    """Carries errors from any thread to the GUI thread (queued signal)."""

    error = Signal(str, str)

    @Slot(str, str)
    def show(self, message: str, details: str) -> None:
        show_error(_dialog_parent(), message, details or None)


_bridge: _Bridge | None = None


def _dialog_parent() -> QWidget | None:
    app = QApplication.instance()
    return app.activeWindow() if isinstance(app, QApplication) else None


def _in_gui_thread() -> bool:
    app = QApplication.instance()
    return app is not None and QThread.currentThread() is app.thread()


def report_error(message: str, details: str | None = None) -> None:
    """Thread-safe :func:`show_error`: shows the dialog in the GUI thread."""
    if _in_gui_thread() or _bridge is None:
        show_error(_dialog_parent(), message, details)
    else:
        log.error("%s%s", message, f"\n{details}" if details else "")
        _bridge.error.emit(message, details or "")


_previous_hooks: tuple[Callable, Callable] | None = None


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    details = "".join(traceback.format_exception(exc_type, exc, tb))
    try:
        report_error(error_message(exc), details)
    except Exception:  # the error path must never raise itself
        log.critical("uncaught exception (and the error dialog failed):\n%s", details)
        sys.__excepthook__(exc_type, exc, tb)


def _threading_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    thread = args.thread.name if args.thread is not None else "?"
    exc = args.exc_value if args.exc_value is not None else args.exc_type()
    details = f"In thread {thread}:\n" + "".join(
        traceback.format_exception(args.exc_type, exc, args.exc_traceback))
    try:
        report_error(error_message(exc), details)
    except Exception:
        log.critical("uncaught exception in thread %s (and the error dialog failed):\n%s", thread, details)


def install_exception_hooks() -> None:
    """Route uncaught exceptions of the GUI thread and of Python threads to the error dialog.

    Call once the QApplication exists, from the GUI thread. Idempotent.
    """
    global _bridge, _previous_hooks
    if _bridge is None:
        _bridge = _Bridge()
        _bridge.error.connect(_bridge.show)
    if _previous_hooks is None:
        _previous_hooks = (sys.excepthook, threading.excepthook)
    sys.excepthook = _excepthook
    threading.excepthook = _threading_excepthook


def uninstall_exception_hooks() -> None:
    global _previous_hooks
    if _previous_hooks is not None:
        sys.excepthook, threading.excepthook = _previous_hooks
        _previous_hooks = None


def show_recent_errors(parent: QWidget | None) -> None:
    """The list of recent errors with their details (the status-bar indicator opens it)."""
    from datetime import datetime

    if not RECENT_ERRORS:
        return
    lines = []
    for ts, message, details in reversed(RECENT_ERRORS):
        lines.append(f"[{datetime.fromtimestamp(ts):%Y-%m-%d %H:%M:%S}] {message}")
        if details:
            lines.append(details.rstrip())
        lines.append("")
    latest = RECENT_ERRORS[-1][1]
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("ALLSight — recent errors")
    box.setText(f"{len(RECENT_ERRORS)} recent error(s). Latest: {latest}")
    box.setInformativeText(_log_file_hint())
    box.setDetailedText("\n".join(lines))
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    try:
        box.exec()
    finally:
        box.deleteLater()
