"""Tools ▸ Models…: every installed model (shipped, read-only, and the lab's own), which one is
active, what each was trained on and how it measured, who promoted it and how many stored
results it produced; activate (promote or roll back, with a reason), import, export, delete.

Everything goes through :class:`engine.models.library.ModelLibrary` (the same code as
``main.py models``). An activation is recorded in the result database's audit trail as
``model_changed`` (who, why, both models' sha256) before the switch; when the store refuses it
(the role may not change models), nothing changes. The library verifies the card and the
weights' sha256 here; the network itself is built by the window's model process when it loads
the new model (this process never imports torch).

"Share with the lab…" stores the selected model in the result database and makes it the lab's
active model (:mod:`engine.store.lab_models`, with a reason, audited; the models permission, as an
activation); every workstation on that database follows at its next start (:mod:`gui.lab_model_sync`),
checking every file's sha256 first, and this one follows at once. On a workstation's own SQLite
file that reaches this workstation only, and the question says so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.core.errors import AllSightError
from engine.models.library import InstalledModel, ModelLibrary, ModelSource
from gui import dialogs
from gui import errors as gui_errors
from gui.workers import TaskError, WorkerPool

if TYPE_CHECKING:
    from engine.store.results import ResultStore

COLUMNS = ("", "Model", "Source", "Created", "Trained on", "Test accuracy", "Results", "Promoted")


def trained_on(model: InstalledModel) -> str:
    fp = model.card.data_fingerprint
    images = fp.get("n_images") or fp.get("images") or fp.get("n")
    samples = fp.get("n_samples") or fp.get("samples")
    parts = [f"{images} images" if images else "", f"{samples} samples" if samples else "",
             str(fp.get("source", fp.get("data_dir", "")) or "")]
    return ", ".join(p for p in parts if p) or "—"


def test_accuracy(model: InstalledModel) -> str:
    figure = model.test_figure
    return f"{figure[1] * 100:.1f} % ({figure[0]})" if figure else "—"


def describe(m: InstalledModel) -> str:
    """The selected model in a few lines: what it is, where it came from, what it was trained on."""
    card = m.card
    came = (f"installed {m.installed_at[:16].replace('T', ' ')} by {m.installed_by} ({m.origin})"
            if m.source is ModelSource.LAB else "shipped with ALLSight (read-only)")
    fingerprint = card.data_fingerprint.get("sha256") or card.data_fingerprint.get("fingerprint") or ""
    return (f"{m.ref} · {card.architecture}, {card.image_size} px · sha256 {m.sha256[:16]}… · {came}\n"
            f"Trained on: {trained_on(m)}" + (f" (data fingerprint {str(fingerprint)[:16]}…)" if fingerprint else ""))


def is_lab_database(store: ResultStore) -> bool:
    """Whether the store is the lab's shared database (a server), not this workstation's file."""
    return store.dialect == "postgresql"


def share_tooltip(store: ResultStore | None) -> str:
    if store is None:
        return "No result database: nothing can be shared"
    if is_lab_database(store):
        return ("Store this model in the lab database and make it the lab's model: every workstation "
                "switches to it at its next start, after checking its files")
    return "This workstation's result database is a file of its own: sharing reaches this workstation only"


def choose_folder(parent: QWidget | None, title: str) -> str:
    return QFileDialog.getExistingDirectory(parent, title, str(Path.home()))


def share_model(store: ResultStore, library: ModelLibrary, card_path: Path, sha256: str, reason: str,
                actor: str) -> tuple:
    """The share itself (a worker thread): publish, make it the lab's active model, follow it in
    this workstation's library. Returns (the lab's activation, the sync's outcome)."""
    from engine.workflow.lab_sync import sync_lab_model

    store.publish_lab_model(card_path, actor=actor)
    activation = store.activate_lab_model(sha256, reason, actor=actor)
    return activation, sync_lab_model(store, library, by=actor)


def import_model_file(library: ModelLibrary, store: ResultStore | None, path: str, actor: str) -> InstalledModel:
    """Install ``path`` into the library (verified) and record it (a worker thread)."""
    m = library.install(path, by=actor, origin=f"imported from {path}")
    if store is not None:
        store.record_event("model_installed", actor=actor, model=m.ref, sha256=m.sha256, origin=m.origin)
    return m


class ModelsDialog(QDialog):
    def __init__(self, library: ModelLibrary, store: ResultStore | None, actor: str, parent: QWidget | None = None,
                 *, change_refusal: str = "", on_activated: Callable[[], None] = lambda: None):
        super().__init__(parent)
        self.library = library
        self.store = store
        self.actor = actor
        self.change_refusal = change_refusal
        self.on_activated = on_activated
        self.models: list[InstalledModel] = []
        #: Where sharing, importing and exporting run: each copies and verifies a model's files
        #: (the ResNet18 with its graphs: ~57 MB; sharing it into the database takes about a second),
        #: too long for the GUI thread. One at a time; ``busy`` while one runs.
        self.workers = WorkerPool(self, max_threads=1)
        self.busy = False
        self.setWindowTitle("ALLSight — models")
        self.resize(900, 420)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.detail = QLabel(self)
        self.detail.setWordWrap(True)
        self.activate_button = QPushButton("Activate…", self)
        self.import_button = QPushButton("Import…", self)
        self.export_button = QPushButton("Export…", self)
        self.delete_button = QPushButton("Delete", self)
        self.share_button = QPushButton("Share with the lab…", self)
        self.share_button.setToolTip(share_tooltip(store))
        close = QPushButton("Close", self)
        self.activate_button.clicked.connect(self.activate_selected)
        self.import_button.clicked.connect(self.import_model)
        self.export_button.clicked.connect(self.export_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.share_button.clicked.connect(self.share_selected)
        close.clicked.connect(self.reject)
        for button in (self.activate_button, self.import_button, self.delete_button, self.share_button):
            if change_refusal:
                button.setToolTip(f"Changing the models: {change_refusal}")
        buttons = QHBoxLayout()
        for b in (self.activate_button, self.import_button, self.export_button, self.delete_button,
                  self.share_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(self.detail)
        layout.addLayout(buttons)
        self.refresh()

    # ------------------------------------------------------------------ contents
    def refresh(self) -> None:
        counts = self.store.results_per_model() if self.store is not None else {}
        try:
            active_sha = self.library.active().sha256
        except AllSightError as exc:
            active_sha = ""
            self.detail.setText(f"⚠ {exc}")
        self.models = self.library.models()
        latest = self.library.latest_activations()
        self.table.setRowCount(len(self.models))
        for row, m in enumerate(self.models):
            promoted = latest.get(m.sha256)
            cells = ("●" if m.sha256 == active_sha else "", m.ref, m.source.value, m.card.created[:10],
                     trained_on(m), test_accuracy(m), str(counts.get(m.sha256, 0)),
                     f"{promoted.by}, {promoted.at[:10]}: {promoted.reason}" if promoted else "")
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(f"sha256 {m.sha256}")
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        self._update_buttons()

    def selected(self) -> InstalledModel | None:
        rows = self.table.selectionModel().selectedRows()
        return self.models[rows[0].row()] if rows else None

    def select(self, ref: str) -> None:
        for row, m in enumerate(self.models):
            if m.ref == ref:
                self.table.selectRow(row)
                return

    def _update_buttons(self) -> None:
        m = self.selected()
        active = self.table.item(self.table.currentRow(), 0) if m is not None else None
        is_active = active is not None and active.text() == "●"
        allowed = not self.change_refusal
        free = not self.busy
        self.activate_button.setEnabled(free and allowed and m is not None and not is_active)
        self.delete_button.setEnabled(free and allowed and m is not None and m.source is ModelSource.LAB
                                      and not is_active)
        self.export_button.setEnabled(free and m is not None)
        self.import_button.setEnabled(free and allowed)
        self.share_button.setEnabled(free and allowed and m is not None and self.store is not None)
        if m is not None and free:
            self.detail.setText(describe(m))


    # ------------------------------------------------------------------ acts
    def _record(self, activation) -> None:
        if self.store is not None:
            self.store.record_event("model_changed", actor=self.actor, **activation.audit_details())

    def activate_selected(self) -> bool:
        m = self.selected()
        if m is None:
            return False
        reason = dialogs.ask_text(self, "Activate model", f"Why is {m.ref} to classify from now on? "
                                                         "(kept in the audit trail)")
        if not reason:
            return False
        try:
            self.library.activate(m.ref, by=self.actor, reason=reason, record=self._record)
        except AllSightError as exc:
            gui_errors.show_exception(self, f"{m.ref} was not activated", exc)
            return False
        self.refresh()
        self.on_activated()
        return True

    def share_selected(self) -> bool:
        """Publish the selected model in the result database and make it the lab's active model
        (asking why), in a worker thread, then follow it here. True when the share was started
        (it ends with a line in the detail area, or an error dialog)."""
        m, store = self.selected(), self.store
        if m is None or store is None or m.card.path is None or self.busy:
            return False
        where = ("every workstation of the lab" if is_lab_database(store) else
                 "this workstation only (its result database is a file of its own, not the lab's database)")
        reason = dialogs.ask_text(self, "Share with the lab", f"{m.ref} becomes the model of {where}. Why? "
                                                             "(kept in the audit trail)")
        if not reason:
            return False
        self._in_background(f"Sharing {m.ref} with the lab…", f"{m.ref} was not shared with the lab",
                            lambda shared: self._shared(m.ref, shared),
                            share_model, store, self.library, m.card.path, m.sha256, reason, self.actor)
        return True

    def _in_background(self, doing: str, failure: str, done: Callable[[Any], None], fn: Callable[..., Any],
                       *args: Any) -> None:
        """Run ``fn(*args)`` in the dialog's worker, the buttons disabled meanwhile; then
        ``done(result)`` on the GUI thread, or one error dialog starting with ``failure``."""
        self.busy = True
        self._update_buttons()
        self.detail.setText(doing)

        def finished(value: Any) -> None:
            self.busy = False
            done(value)

        def failed(error: TaskError) -> None:
            self.busy = False
            self._update_buttons()
            self.detail.setText(f"{failure}.")
            gui_errors.show_exception(self, failure, error.exc)

        self.workers.submit(fn, *args, on_result=finished, on_error=failed, name="models-dialog")

    def _shared(self, ref: str, shared: tuple) -> None:
        from engine.workflow.lab_sync import SyncOutcome

        activation, followed = shared
        self.refresh()
        self.select(ref)
        if followed.outcome is SyncOutcome.REFUSED:
            gui_errors.show_error(self, followed.message)
        elif followed.changed:
            self.on_activated()
        others = "Every workstation switches to it at its next start." if self.store is not None and \
            is_lab_database(self.store) else "Shared with this workstation only."
        self.detail.setText(f"The lab's active model is now {activation.ref}. {others}")

    def done(self, result: int) -> None:
        self.workers.shutdown()  # an act in progress finishes (its result is then not shown)
        super().done(result)

    def import_model(self) -> bool:
        """Install a model file (verified) in the worker; True when the import was started."""
        path = dialogs.choose_model_file(self)
        if not path or self.busy:
            return False

        def imported(m: InstalledModel) -> None:
            self.refresh()
            self.select(m.ref)

        self._in_background(f"Importing {path}…", f"{path} was not imported", imported,
                            import_model_file, self.library, self.store, path, self.actor)
        return True

    def export_selected(self) -> bool:
        """Copy the selected model (weights, card, graphs; verified) into a folder, in the worker."""
        m = self.selected()
        folder = choose_folder(self, f"Export {m.ref} to…") if m is not None else ""
        if m is None or not folder or self.busy:
            return False
        self._in_background(f"Exporting {m.ref}…", f"{m.ref} was not exported",
                            lambda path: self.detail.setText(f"Exported {m.ref} to {path} (with its card and graphs)."),
                            self.library.export, m.ref, folder)
        return True

    def delete_selected(self) -> bool:
        m = self.selected()
        if m is None or not dialogs.confirm(self, "Delete model", f"Delete {m.ref}? Its stored results keep "
                                            "naming it, but it can no longer classify.", "Delete", "Keep"):
            return False
        try:
            if self.store is not None:  # recorded first: a refusal leaves the model in place
                self.store.record_event("model_deleted", actor=self.actor, model=m.ref, sha256=m.sha256)
            self.library.delete(m.ref)
        except AllSightError as exc:
            gui_errors.show_exception(self, f"{m.ref} was not deleted", exc)
            return False
        self.refresh()
        return True


__all__ = ["ModelsDialog"]
