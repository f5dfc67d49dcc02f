"""The image on show in the main window's "Image" tab: which image of which sample is current,
reading it off the GUI thread (a later image supersedes an earlier one), the placeholder of an
unreadable image, the preprocessing preview's input, the viewer's mask overlay (the preview's
mask) and the Grad-CAM heat map, offered only for an image with a usable result in the Results
tab (:class:`gui.shown_results.ShownResults`).

:class:`CurrentImage` is driven by the samples panel's ``current_image_changed`` and
``sample_updated``, the preview's ``result_displayed``, the viewer's ``heatmap_requested`` and the
results' ``records_shown`` (connected in :class:`gui.main_window.MainWindow`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from engine.core.errors import ImageLoadError
from engine.store.naming import image_key
from gui import errors as gui_errors
from gui.viewer import crop_region
from gui.workbench import UNREADABLE
from gui.workers import PRIORITY_INTERACTIVE, TaskError

if TYPE_CHECKING:
    from pathlib import Path

    from PySide6.QtWidgets import QMainWindow

    from engine.core.records import ReviewedImage
    from gui.model_host import ModelHost
    from gui.preview import PreviewPanel
    from gui.samples import SamplesPanel
    from gui.shown_results import ShownResults
    from gui.viewer import ViewerPanel
    from gui.workbench import Sample
    from gui.workers import WorkerPool

NO_IMAGE = "Open a sample folder (File ▸ Open folder…) or drop folders here."


def load_for_view(path: Path) -> np.ndarray | ImageLoadError:
    """Worker: the full image, or the reason it cannot be read (an expected outcome)."""
    from engine.io.images import load_image

    try:
        return load_image(path)
    except ImageLoadError as exc:
        return exc


class CurrentImage:
    """The current image (``sample``, ``row``, ``path``; ``rgb`` once read) and what shows it.

    ``window`` is the :class:`gui.main_window.MainWindow` (typed as its Qt base, as in
    :mod:`gui.window_layout`): the parent of error dialogs, its status bar, and its
    ``model_card`` (replaced when the settings change), which the heat map needs."""

    def __init__(self, window: QMainWindow, *, workers: WorkerPool, model_host: ModelHost,
                 samples_panel: SamplesPanel, viewer_panel: ViewerPanel, preview_panel: PreviewPanel,
                 results: ShownResults):
        self.window = window
        self.workers = workers
        self.model_host = model_host
        self.samples_panel = samples_panel
        self.viewer_panel = viewer_panel
        self.viewer = viewer_panel.viewer
        self.preview_panel = preview_panel
        self.results = results
        self.sample: Sample | None = None
        self.row = -1
        self.path: Path | None = None
        self.rgb: np.ndarray | None = None
        self._request = 0

    # ------------------------------------------------------------------ which image
    def show(self, sample: Sample | None, row: int) -> None:
        """Show image ``row`` of ``sample`` (None or -1: the placeholder); read off the GUI thread."""
        self.sample, self.row = sample, row
        self._request += 1
        self.rgb = None
        self.viewer_panel.set_heatmap_available(False)
        if sample is None or row < 0:
            self.path = None
            self.viewer.set_image(None, placeholder=NO_IMAGE)
            self.viewer_panel.set_title("")
            self.preview_panel.set_image(None)
            return
        image = sample.images[row]
        self.path = image.path
        self.viewer_panel.set_title(f"{row + 1}/{len(sample.images)}   {image.name}")
        if sample is self.results.sample:
            self.results.panel.select_path(image_key(image.path))
        if image.state == UNREADABLE:
            self._show_unreadable(image.path, image.error or "")
            return
        request = self._request
        self.workers.submit(load_for_view, image.path, priority=PRIORITY_INTERACTIVE, name="load image",
                            on_result=lambda result: self._on_loaded(request, sample, row, result))

    def _on_loaded(self, request: int, sample: Sample, row: int, result) -> None:
        if request != self._request:
            return  # the user has moved on
        if isinstance(result, ImageLoadError):
            model = self.samples_panel.model_for(sample)
            if sample.images[row].state != UNREADABLE:
                model.set_unreadable(row, result.reason)
            self._show_unreadable(result.path, result.reason)
            return
        self.rgb = result
        self.viewer.set_image(result)
        self.preview_panel.set_image(result, sample.images[row].name)
        self.viewer_panel.set_heatmap_available(self.result_ok())

    def _show_unreadable(self, path: Path, reason: str) -> None:
        self.viewer.set_image(None, placeholder=f"{path.name}\n\nunreadable: {reason}")
        self.preview_panel.set_image(None)

    def on_sample_updated(self, sample: Sample) -> None:
        # A thumbnail decode may have found the image on show unreadable first.
        if (sample is self.sample and 0 <= self.row < len(sample.images)
                and sample.images[self.row].state == UNREADABLE and self.rgb is None):
            image = sample.images[self.row]
            self._show_unreadable(image.path, image.error or "")

    # ------------------------------------------------------------------ its results
    def result_ok(self) -> bool:
        """Whether the image has a usable result in the Results tab (and a model to explain it)."""
        if self.path is None or self.sample is None or self.window.model_card is None:
            return False
        return self.results.has_ok_result(self.sample, image_key(self.path))

    def on_records_shown(self) -> None:
        """The stored results arrived: select the image's row, offer its heat map."""
        if self.path is None:
            return
        current = image_key(self.path)
        rp = self.results.panel
        rp.select_path(current)
        if self.rgb is not None:
            row = rp.model.row_data(rp.model.row_of(current))
            self.viewer_panel.set_heatmap_available(row is not None and row.ok)

    def on_results_added(self, rows: list[ReviewedImage]) -> None:
        """New results in the Results tab (a batch): the image's own among them makes its heat map
        available and its row current."""
        if self.path is not None and self.rgb is not None:
            current = image_key(self.path)
            if any(r.path == current and r.ok for r in rows):
                self.viewer_panel.set_heatmap_available(True)
                self.results.panel.select_path(current)

    # ------------------------------------------------------------------ heat map
    def request_heatmap(self) -> None:
        if self.path is None or self.rgb is None or not self.result_ok():
            return
        request = self._request
        self.window.statusBar().showMessage("Computing the heat map…", 0)
        self.workers.submit(self.model_host.heatmap, str(self.path), priority=PRIORITY_INTERACTIVE,
                            name="heat map", on_result=lambda res: self._on_heatmap(request, res),
                            on_error=self._on_heatmap_error)

    def _on_heatmap(self, request: int, result: tuple) -> None:
        self.window.statusBar().clearMessage()
        if request != self._request or self.rgb is None:
            return
        _rgb, _heat, overlay = result
        h, w = self.rgb.shape[:2]
        card = self.window.model_card
        crop = card.preprocess.crop if card is not None else "center"
        self.viewer_panel.show_heatmap(overlay, crop_region(w, h, crop))

    def _on_heatmap_error(self, err: TaskError) -> None:
        self.window.statusBar().clearMessage()
        self.viewer_panel.act_heatmap.setChecked(False)
        gui_errors.show_error(self.window, "The heat map could not be computed: "
                                           f"{gui_errors.error_message(err.exc)}", err.details)

    # ------------------------------------------------------------------ mask overlay
    def on_preview_result(self, result) -> None:
        """The viewer's colour-mask overlay is the preview's mask (the same computation the
        model's input comes from), stretched over the part of the image the model sees."""
        if self.rgb is None or result.stages is None:
            return
        h, w = self.rgb.shape[:2]
        self.viewer.set_mask(result.stages.mask, crop_region(w, h, result.config.crop))
        self.viewer.set_mask_visible(self.viewer_panel.act_mask.isChecked())
