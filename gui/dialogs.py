"""Small dialogs: choosing sample folders, the About box."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFileSystemModel,
    QListView,
    QMessageBox,
    QTreeView,
    QWidget,
)

from engine import CLASS_DISPLAY_NAMES, CLASS_IDS, __version__


def choose_folders(parent: QWidget | None, start_dir: str = "") -> list[str]:
    """Let the user pick one or more folders (Ctrl/Shift-click selects several).

    Qt's native folder dialogs pick one folder only, so this uses Qt's own dialog with multiple
    selection switched on in its views.
    """
    dialog = QFileDialog(parent, "Open sample folder(s) — each folder is one sample",
                         start_dir or str(Path.home()))
    dialog.setFileMode(QFileDialog.FileMode.Directory)
    dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    for view in dialog.findChildren(QListView) + dialog.findChildren(QTreeView):
        if isinstance(view.model(), QFileSystemModel):
            view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
    if not dialog.exec():
        return []
    return [p for p in dialog.selectedFiles() if Path(p).is_dir()]


def show_about(parent: QWidget | None, log_file: str | None = None) -> None:
    classes = "".join(f"<li>{CLASS_DISPLAY_NAMES[c]}</li>" for c in CLASS_IDS)
    QMessageBox.about(
        parent,
        "About ALLSight",
        f"<h3>ALLSight {__version__}</h3>"
        "<p>A screening aid for acute lymphoblastic leukemia in peripheral blood smear images."
        "</p><p><b>Research use only — not for diagnosis.</b> Every result must be reviewed by a "
        "qualified person.</p>"
        f"<p>Classes:</p><ul>{classes}</ul>"
        + (f"<p>Log file: {log_file}</p>" if log_file else ""),
    )
