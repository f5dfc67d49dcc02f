"""Edit ▸ Settings… from the main window: the dialog (:mod:`gui.settings_dialog`), then saving and
applying what changed.

The active model and its review threshold decide what is flagged for review, so changing them
needs :attr:`~engine.core.identity.Permission.CHANGE_MODELS` (the dialog shows them read-only
to anyone else) and is recorded in the audit trail as ``model_changed``
(:meth:`engine.store.results.ResultStore.record_event`), under the window's identity, before
the new settings are saved; a refusal leaves the settings as they were.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from engine.core.errors import AllSightError
from engine.core.identity import Permission
from gui import errors as gui_errors

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMainWindow

    from gui.settings import Settings

log = logging.getLogger("allsight.gui.main_window")


def open_settings(window: QMainWindow) -> bool:
    """The settings dialog; True when edited settings were saved.

    ``window`` is the :class:`gui.main_window.MainWindow` (typed as its Qt base, as in
    :mod:`gui.window_layout`)."""
    from gui import settings_dialog

    edited = settings_dialog.edit_settings(window, window.settings,
                                           model_refusal=window.access.refusal(Permission.CHANGE_MODELS))
    if edited is None:
        return False
    return apply_settings(window, edited)


def _model_sha256(model: str) -> str:
    from engine.models.resolve import resolve_model_card

    try:
        return resolve_model_card(model).weights_sha256 or ""
    except (AllSightError, OSError):
        return ""  # not usable now: the status bar will say why


def record_model_change(window: QMainWindow, new: Settings) -> bool:
    """Audit a change of the active model or its review threshold (True: recorded, or there is
    no result database to record it in); a refusal is shown and False returned."""
    if not window.access.allowed(Permission.CHANGE_MODELS, "change the model or its review threshold"):
        return False
    store = window.store
    if store is None:
        log.warning("model changed to %r with no result database to record it in", new.active_model)
        return True
    try:
        store.record_event("model_changed", actor=window.access.user, model=new.active_model,
                           sha256=_model_sha256(new.active_model),
                           review_threshold_override=new.review_threshold_override)
    except AllSightError as exc:
        gui_errors.show_exception(window, "The model was not changed", exc)
        return False
    return True


def record_database_change(window: QMainWindow, new: Settings) -> bool:
    """Which result database the workstation uses is the lab's decision (where results and
    sign-offs go): it needs :attr:`~engine.core.identity.Permission.MANAGE_ACCOUNTS` and is
    audited as ``lab_database_changed`` in the database used now (the URL never has a password)."""
    if not window.access.allowed(Permission.MANAGE_ACCOUNTS, "change the lab database"):
        return False
    if window.store is None:
        return True
    try:
        window.store.record_event("lab_database_changed", actor=window.access.user,
                                  lab_database=new.lab_database or "(this workstation's own file)")
    except AllSightError as exc:
        gui_errors.show_exception(window, "The lab database was not changed", exc)
        return False
    return True


def apply_settings(window: QMainWindow, new: Settings) -> bool:
    """Save edited settings and apply what changed (model, device, threshold, lab name, the
    independent-reviewer rule, the theme, the lab database from the next start); False when a
    model or database change was refused (nothing saved)."""
    old = window.settings
    model_changed = (new.active_model, new.review_threshold_override) != (old.active_model,
                                                                          old.review_threshold_override)
    database_changed = new.lab_database != old.lab_database
    if model_changed and not record_model_change(window, new):
        return False
    if database_changed and not record_database_change(window, new):
        return False
    window.update_settings(active_model=new.active_model, device=new.device, precision=new.precision,
                           review_threshold_override=new.review_threshold_override, lab_name=new.lab_name,
                           require_independent_reviewer=new.require_independent_reviewer, theme=new.theme,
                           lab_database=new.lab_database)
    if new.theme != old.theme:
        from PySide6.QtWidgets import QApplication

        from gui import theme

        theme.apply_theme(QApplication.instance(), new.theme)
    if model_changed or (new.device, new.precision) != (old.device, old.precision):
        window.load_model_info()
        window.show_message("Settings saved. The new model settings apply from the next sample classified.")
    elif database_changed:
        where = new.lab_database or "this workstation's own result file"
        window.show_message(f"Settings saved. The result database ({where}) is used from the next start.", 10000)
    else:
        window.show_message("Settings saved.", 4000)
    return True


__all__ = ["apply_settings", "open_settings", "record_database_change", "record_model_change"]
