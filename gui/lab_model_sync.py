"""At start-up the window follows the lab's model: :func:`engine.workflow.lab_sync.sync_lab_model`
runs once on the window's worker pool (fetching and hashing a model takes seconds; the GUI thread
never waits for it), and the result is one status-bar message.

When the lab's active model was installed or activated here, the window follows it as after any
activation (a model pinned in Settings is unpinned: the lab's activation wins; the new model is
loaded). A refused model (its files do not match what was published, or it cannot be installed)
changes nothing here; the message says why and the log keeps it. Nothing is said when there is
nothing to do (no lab model, or it is already active).

``window`` is the :class:`gui.main_window.MainWindow` (typed as its Qt base, as in
:mod:`gui.model_flow`): its store, workers, access flow and status bar.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gui.workers import PRIORITY_BACKGROUND, Task, TaskError

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMainWindow

    from engine.workflow.lab_sync import LabSync

log = logging.getLogger("allsight.gui.lab_model_sync")

#: How long the status bar shows the outcome (ms).
MESSAGE_MS = 15000


def _sync(store, by: str) -> LabSync:  # worker thread
    from engine.models.library import ModelLibrary
    from engine.workflow.lab_sync import sync_lab_model

    return sync_lab_model(store, ModelLibrary(verify_network=False), by=by)


def start(window: QMainWindow) -> Task | None:
    """Follow the lab's model in the background (nothing without a result database)."""
    if window.store is None:
        return None
    from engine.core.identity import os_login

    by = window.access.user or os_login()  # nobody signed in yet: the local record names the OS login
    return window.workers.submit(_sync, window.store, by, priority=PRIORITY_BACKGROUND,
                                 name="follow the lab's model", on_result=lambda result: shown(window, result),
                                 on_error=lambda error: failed(window, error))


def shown(window: QMainWindow, result: LabSync) -> None:
    """The outcome, in the GUI thread."""
    from engine.workflow.lab_sync import SyncOutcome

    if result.outcome is SyncOutcome.UNCHANGED:
        log.info("%s", result.message)
        return
    if result.outcome is SyncOutcome.ACTIVATED:
        window.follow_active_model()  # loads the model (and says which is active)
    else:
        log.warning("%s", result.message)
    window.show_message(result.message, MESSAGE_MS)


def failed(window: QMainWindow, error: TaskError) -> None:
    """A bug in the sync: logged with its traceback, one line for the person."""
    log.error("following the lab's model failed: %s\n%s", error.exc, error.details)
    window.show_message(f"The lab's model could not be checked: {error.exc}", MESSAGE_MS)


__all__ = ["MESSAGE_MS", "start"]
