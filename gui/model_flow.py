"""Tools ▸ Models… and Tools ▸ Retrain model… from the main window, and what the window does
after an activation: a model pinned in Settings is unpinned (the lab's activation wins) and the
active model is loaded.

``window`` is the :class:`gui.main_window.MainWindow` (typed as its Qt base, as in
:mod:`gui.window_layout`): its store, workers, access flow, settings and model status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.core.identity import Permission

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMainWindow


def open_models(window: QMainWindow) -> bool:
    """The model manager (:mod:`gui.models_dialog`)."""
    from engine.models.library import ModelLibrary
    from gui.models_dialog import ModelsDialog

    dialog = ModelsDialog(ModelLibrary(verify_network=False), window.store, window.access.user, window,
                          change_refusal=window.access.refusal(Permission.CHANGE_MODELS),
                          on_activated=window.follow_active_model)
    try:
        dialog.exec()
    finally:
        dialog.deleteLater()
    return True


def follow_active_model(window: QMainWindow) -> None:
    """After an activation: unpin a model chosen in Settings and load the active one."""
    if window.settings.active_model:
        window.update_settings(active_model="")
    window.load_model_info()
    window.show_message(f"Active model: {getattr(window.model_card, 'id', '?')} "
                        f"{getattr(window.model_card, 'version', '')}", 8000)


def open_retrain_wizard(window: QMainWindow) -> bool:
    """The retraining wizard; an interrupted training is offered for resuming first. True when
    a new model was promoted. Without PyTorch (the lean install) it says what to install instead."""
    from engine.core.errors import MissingExtraError
    from engine.core.optional import require_torch
    from engine.models.library import ModelLibrary
    from gui import dialogs
    from gui.errors import show_error

    try:
        require_torch("Retraining a model")
    except MissingExtraError as exc:
        show_error(window, str(exc))
        return False
    from gui.retrain_wizard import RetrainWizard, interrupted_runs

    resume = None
    for run_dir in interrupted_runs():
        if dialogs.confirm(window, "Resume training", f"A training started {run_dir.name} was interrupted. "
                           "Resume it from its last epoch?", "Resume", "Start a new one"):
            resume = run_dir
            break
    wizard = RetrainWizard(ModelLibrary(verify_network=False), window.store, window.workers, window.access.user,
                           window, promote_refusal=window.access.refusal(Permission.CHANGE_MODELS), resume=resume)
    try:
        promoted = wizard.exec()
    finally:
        wizard.deleteLater()
    if promoted and wizard.promoted is not None:
        window.follow_active_model()
    return bool(promoted)


__all__ = ["follow_active_model", "open_models", "open_retrain_wizard"]
