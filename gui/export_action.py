"""The Export report… action (File and Sample menus, Ctrl+E, the Results tab's Export): choose the
file, write the report of the sample the Results tab shows off the GUI thread
(:func:`gui.export.export_sample`, which also picks the format from the suffix), record the
export in the audit trail under the window's identity (``record_event("export", ...)``), and say
where it went or why it could not be written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.core.errors import AllSightError
from engine.core.identity import Permission
from gui import errors as gui_errors
from gui.workbench import export_stem

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMainWindow

    from engine.store.results import ResultStore
    from gui.access_flow import AccessFlow
    from gui.shown_results import ShownResults
    from gui.workers import TaskError, WorkerPool


def export_shown_sample(window: QMainWindow, results: ShownResults, store: ResultStore | None,
                        workers: WorkerPool, access: AccessFlow) -> bool:
    """Ask for a file and export ``results.sample``'s report to it; False if nothing was started.

    ``window`` is the :class:`gui.main_window.MainWindow` (typed as its Qt base, as in
    :mod:`gui.window_layout`): the dialog's parent, its ``settings`` (where the last export
    went, the lab's name), ``update_settings``, ``show_message`` and ``model_card``."""
    from gui import dialogs, export

    sample = results.sample
    settings = window.settings
    if sample is None or sample.store_id is None or store is None or not results.panel.model.rows:
        window.show_message("Classify the sample before exporting its report.")
        return False
    if not access.allowed(Permission.EXPORT, "export reports"):
        return False
    start = settings.last_export_dir if Path(settings.last_export_dir or "").is_dir() else ""
    path = dialogs.choose_export_file(window, start, export_stem(sample))
    if not path:
        return False
    folder = str(Path(path).parent)
    if folder != settings.last_export_dir:
        window.update_settings(last_export_dir=folder)
    window.show_message(f"Exporting {Path(path).name}…", 0)
    store_id, actor = sample.store_id, access.user
    workers.submit(export.export_sample, store, store_id, path,
                   lab_name=window.settings.lab_name, model_card=window.model_card, name="export",
                   on_result=lambda p: _exported(window, store, store_id, actor, Path(p)),
                   on_error=lambda err: _export_failed(window, path, err))
    return True


def _exported(window: QMainWindow, store: ResultStore, sample_id: str, actor: str, path: Path) -> None:
    """The report is written: record who exported what, where (as the CLI does). An export the
    audit trail cannot record does not happen: the file is removed again."""
    try:
        store.record_event("export", sample_id, actor=actor, kind=path.suffix.lower().lstrip("."),
                           path=str(path.absolute()))
    except AllSightError as exc:
        path.unlink(missing_ok=True)
        window.show_message("Export refused.", 8000)
        gui_errors.show_exception(window, f"The report was not exported to {path}", exc)
        return
    window.show_message(f"Report saved: {path}", 12000)


def _export_failed(window: QMainWindow, path: str, err: TaskError) -> None:
    window.show_message("Export failed.", 8000)
    gui_errors.show_error(window, f"The report could not be saved to {path}: "
                                  f"{gui_errors.error_message(err.exc)}", err.details)
