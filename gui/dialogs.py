"""Small dialogs: choosing folders and files, asking for a line of text, the About box.

Every dialog the main window opens goes through a function here, so tests can replace it
(``monkeypatch.setattr(gui.dialogs, "ask_text", ...)``) instead of clicking a modal dialog.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFileSystemModel,
    QInputDialog,
    QLineEdit,
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


def choose_model_file(parent: QWidget | None, start_dir: str = "") -> str:
    """A ``.safetensors`` model file, or "" when cancelled."""
    dialog = QFileDialog(parent, "Choose a model file", start_dir or str(Path.home()),
                         "ALLSight models (*.safetensors)")
    dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    if not dialog.exec():
        return ""
    files = dialog.selectedFiles()
    return files[0] if files else ""


#: Export formats: (file-dialog filter, suffix).
EXPORT_FILTERS: tuple[tuple[str, str], ...] = (
    ("PDF report (*.pdf)", ".pdf"),
    ("CSV table (*.csv)", ".csv"),
    ("JSON (*.json)", ".json"),
)


def choose_export_file(parent: QWidget | None, start_dir: str, base_name: str) -> str:
    """Where to save a report; the format follows the chosen filter/suffix. "" when cancelled."""
    dialog = QFileDialog(parent, "Export sample report", str(Path(start_dir or Path.home()) / f"{base_name}.pdf"))
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setNameFilters([f for f, _ in EXPORT_FILTERS])
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)

    def filter_changed(name: str) -> None:
        suffix = dict(EXPORT_FILTERS).get(name, ".pdf")
        current = dialog.selectedFiles()
        stem = Path(current[0]).stem if current else base_name
        dialog.selectFile(stem + suffix)

    dialog.filterSelected.connect(filter_changed)
    if not dialog.exec():
        return ""
    files = dialog.selectedFiles()
    if not files:
        return ""
    path = Path(files[0])
    if path.suffix.lower() not in {s for _, s in EXPORT_FILTERS}:
        path = path.with_name(path.name + dict(EXPORT_FILTERS).get(dialog.selectedNameFilter(), ".pdf"))
    return str(path)


def confirm(parent: QWidget | None, title: str, text: str, yes: str, no: str) -> bool:
    """A yes/no question whose buttons say what they do; the safe answer (``no``) is the default
    and what Escape gives."""
    box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.NoButton, parent)
    yes_button = box.addButton(yes, QMessageBox.ButtonRole.AcceptRole)
    no_button = box.addButton(no, QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(no_button)
    box.setEscapeButton(no_button)
    box.exec()
    return box.clickedButton() is yes_button


def ask_text(parent: QWidget | None, title: str, label: str, text: str = "") -> str | None:
    """One line of text from the user (stripped), or None when cancelled."""
    dialog = QInputDialog(parent)
    dialog.setWindowTitle(title)
    dialog.setLabelText(label)
    dialog.setTextValue(text)
    dialog.setTextEchoMode(QLineEdit.EchoMode.Normal)
    if not dialog.exec():
        return None
    return dialog.textValue().strip()
