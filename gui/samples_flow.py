"""The main window's list of samples and what the person does to it, apart from classifying and
reviewing: opening folders (the dialog, paths, drops; whether a folder of folders is one sample
or several), the stored samples merged in at start-up, saving edited IDs and the sample's
operator (who prepared it: a description of the sample; the edit is recorded under the window's
identity), when a sample's IDs are locked, and closing a sample.

:class:`SamplesFlow` answers the samples panel's questions (``lock_reason``, ``confirm_split``)
and its ``sample_edited`` (connected in :class:`gui.main_window.MainWindow`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from engine.core.errors import AllSightError
from gui import errors as gui_errors

if TYPE_CHECKING:
    from PySide6.QtGui import QDropEvent
    from PySide6.QtWidgets import QMainWindow

    from engine.store.results import ResultStore
    from gui.access_flow import AccessFlow
    from gui.batch import BatchQueue
    from gui.samples import SamplesPanel
    from gui.shown_results import ShownResults
    from gui.workbench import HistoryEntry, Sample, Workbench

log = logging.getLogger("allsight.gui.main_window")  # the window's log, as before the split


def dropped_paths(event: QDropEvent) -> list[Path]:
    """The existing local files and folders a drag carries."""
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls()
            if url.isLocalFile() and Path(url.toLocalFile()).exists()]


class SamplesFlow:
    """Opening, listing, editing and closing samples.

    ``window`` is the :class:`gui.main_window.MainWindow` (typed as its Qt base, as in
    :mod:`gui.window_layout`): the parent of the dialogs, its ``show_message``,
    ``update_actions`` and ``update_settings``, and its ``settings`` (replaced when they change);
    ``access`` says who acts."""

    def __init__(self, window: QMainWindow, *, store: ResultStore | None, workbench: Workbench,
                 batch: BatchQueue, samples_panel: SamplesPanel, results: ShownResults, access: AccessFlow):
        self.window = window
        self.access = access
        self.store = store
        self.workbench = workbench
        self.batch = batch
        self.panel = samples_panel
        self.results = results
        self.history_loaded = False  # the stored samples are in the list

    # ------------------------------------------------------------------ opening
    def open_folders_dialog(self) -> None:
        from gui import dialogs

        settings = self.window.settings
        start = settings.last_open_dir if Path(settings.last_open_dir or "").is_dir() else ""
        folders = dialogs.choose_folders(self.window, start)
        if folders:
            self.open_paths(folders)

    def open_paths(self, paths: list[str | Path]) -> None:
        """Open folders (one sample each) and/or image files; remembers where they came from."""
        paths = [Path(p) for p in paths]
        if not paths:
            return
        first = paths[0]
        remembered = str(first.parent if first.is_dir() or first.is_file() else first)
        if remembered != self.window.settings.last_open_dir:
            self.window.update_settings(last_open_dir=remembered)
        self.panel.open_paths(paths)

    def confirm_split(self, folder: Path, subfolders: list[Path]) -> bool:
        from gui import dialogs

        names = ", ".join(p.name for p in subfolders[:4]) + (", …" if len(subfolders) > 4 else "")
        return dialogs.confirm(
            self.window, "Open as separate samples?",
            f"{folder.name} holds no image itself but {len(subfolders)} folders of images ({names}).\n\n"
            "Each folder is usually one patient's sample. Open each as its own sample, or all of them "
            "as one sample?", f"Open {len(subfolders)} samples", "Open as one sample")

    def on_history(self, entries: list[HistoryEntry]) -> None:
        """The stored samples (read at start-up) join the list."""
        merge = self.workbench.merge_history(entries, self.panel.samples)
        for sample, stored in merge.adopted:  # opened in this session before the history arrived
            self.workbench.adopt(sample, stored)
            self.results.show_adopted(sample)
        self.panel.add_history(list(merge.added))
        self.history_loaded = True
        if merge.added:
            log.info("result history: %d sample(s) from %s", len(merge.added), self.store.path)

    # ------------------------------------------------------------------ IDs
    def lock_reason(self, sample: Sample) -> str:
        if sample.signed_off:
            return f"✔ Signed off by {sample.signed_off_by}: reopen the sample to edit it."
        if self.batch.is_active(sample):
            return "Being classified: the IDs can be edited when it has finished (or is cancelled)."
        return ""

    def on_sample_edited(self, sample: Sample) -> None:
        """Save the sample's IDs and operator to the store (audited there, under the window's
        identity; a refusal puts the stored values back)."""
        before = sample.store_id
        try:
            saved = self.workbench.save_ids(sample, self.access.user)
        except AllSightError as exc:
            gui_errors.show_exception(self.window, f"The change to sample {before} could not be saved", exc)
            saved = False
        if saved:
            self.window.show_message(f"Saved sample {sample.store_id}.", 4000)
        self.panel.refresh_sample(sample)
        self.results.retitle(sample)

    # ------------------------------------------------------------------ closing
    def close_current_sample(self) -> bool:
        """Take the selected sample off the list; refused while it is queued or being classified."""
        sample = self.panel.current_sample()
        if sample is None:
            return False
        if self.batch.is_active(sample):
            self.window.show_message(f"Sample {sample.sample_id} is in the batch queue: remove it there (or let "
                                     "it finish) before closing it.")
            return False
        self.panel.remove_sample(sample)
        kept = " Its results stay in the result history (listed again at the next start)." if sample.store_id else ""
        self.window.show_message(f"Closed sample {sample.sample_id}.{kept}")
        self.window.update_actions()
        return True
