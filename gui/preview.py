"""Masking preview: every preprocessing stage of the current image, with live parameters.

The panel runs :func:`engine.imaging.preprocess.preprocess` — the same function training and inference
use — on the image shown in the viewer, and displays one stage (original, enhanced, mask,
masked, model input). Parameter edits are debounced (``DEBOUNCE_MS``) and computed in the worker
pool; every request carries a number and only the latest one is displayed (older requests are
skipped before they start, or their results dropped when they arrive).

Exploring parameters here never changes how images are classified: a model always uses the
preprocessing stored in its model card. "Reset to model" restores that configuration, and a
notice says when the parameters on screen differ from it.

* :class:`~gui.preview_controls.PreviewControls` (:mod:`gui.preview_controls`) — the parameter
  controls, the model's configuration and the "differ" notice (its wording: :mod:`gui.preview_config`).
* :class:`PreviewPanel` — the stage selector and view, the notices, the controls laid out, and the
  requests to the worker pool.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from engine.core.errors import ConfigError
from engine.imaging.preprocess import (
    STAGE_NAMES,
    PreprocessConfig,
    PreprocessStages,
    preprocess,
)
from gui import theme
from gui.preview_controls import PreviewControls
from gui.theme import Tone
from gui.viewer import ImageViewer
from gui.workers import PRIORITY_PREVIEW, TaskError, WorkerPool

log = logging.getLogger("allsight.gui.preview")

DEBOUNCE_MS = 150

STAGE_LABELS = {
    "original": "Original",
    "enhanced": "Enhanced",
    "mask": "Mask",
    "masked": "Masked",
    "model_input": "Model input",
}


@dataclass(frozen=True)
class PreviewResult:
    request: int
    config: PreprocessConfig
    stages: PreprocessStages | None  # None: skipped because a newer request exists


class PreviewPanel(QWidget, PreviewControls):
    """Stage selector + stage view + parameter controls + Reset to model."""

    #: The parameters on screen changed (PreprocessConfig), immediately (not debounced).
    config_changed = Signal(object)
    #: A result was displayed (PreviewResult).
    result_displayed = Signal(object)

    def __init__(self, workers: WorkerPool, parent: QWidget | None = None):
        super().__init__(parent)
        self._workers = workers
        self._rgb: np.ndarray | None = None
        self._image_name = ""
        self.model_config = PreprocessConfig()
        self.model_name: str | None = None
        #: Request counter: the latest request id; results of older ones are dropped.
        self.latest_request = 0
        self.submitted_requests = 0
        self.dropped_results = 0
        self.displayed: PreviewResult | None = None
        self.current_stage = "mask"

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.recompute_now)

        # --- stage selector + view
        self.stage_group = QButtonGroup(self)
        self.stage_group.setExclusive(True)
        self.stage_buttons: dict[str, QPushButton] = {}
        stages_row = QHBoxLayout()
        stages_row.setSpacing(2)
        for i, name in enumerate(STAGE_NAMES):
            button = QPushButton(STAGE_LABELS[name], self)
            button.setCheckable(True)
            button.setToolTip(f"Show the {STAGE_LABELS[name].lower()} stage")
            self.stage_group.addButton(button, i)
            self.stage_buttons[name] = button
            stages_row.addWidget(button)
        self.stage_group.idClicked.connect(lambda i: self.set_stage(STAGE_NAMES[i]))
        self.stage_view = ImageViewer(self, placeholder="The preprocessing of the image on show "
                                                         "appears here.", navigation=False)
        self.stage_view.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.stage_caption = QLabel(self)
        theme.style(self.stage_caption, Tone.MUTED)
        self.stage_caption.setWordWrap(True)

        # --- notices
        self.model_note = QLabel(self)
        self.model_note.setWordWrap(True)
        theme.style(self.model_note, Tone.NOTE)
        self.model_note.hide()
        self.differs_notice = QLabel(self)
        self.differs_notice.setWordWrap(True)
        theme.style_sheet(self.differs_notice, lambda: theme.box_style(Tone.ROW_TO_REVIEW, Tone.WARNING,
                                                                       extra="border-radius: 3px; padding: 4px;"))
        self.differs_notice.hide()
        self.reset_button = QPushButton("Reset to model", self)
        self.reset_button.setToolTip("Restore the preprocessing parameters of the active model")
        self.reset_button.clicked.connect(self.reset_to_model)

        # --- parameters (gui.preview_controls)
        self.build_parameter_controls()

        reset_row = QHBoxLayout()
        reset_row.addWidget(self.reset_button)
        reset_row.addStretch(1)

        title = QLabel("<b>Preprocessing preview</b>", self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(title)
        layout.addLayout(stages_row)
        layout.addWidget(self.stage_view, 1)
        layout.addWidget(self.stage_caption)
        layout.addWidget(self.differs_notice)
        layout.addWidget(self.model_note)
        layout.addLayout(reset_row)
        layout.addWidget(self.controls_scroll, 0)

        self.stage_buttons[self.current_stage].setChecked(True)
        self.fill_parameter_controls()

    # ------------------------------------------------------------------ image and stages
    def set_image(self, rgb: np.ndarray | None, name: str = "") -> None:
        self._rgb = rgb
        self._image_name = name
        if rgb is None:
            self._timer.stop()
            self.latest_request += 1  # anything in flight is now stale
            self.displayed = None
            self.stage_view.set_image(None, placeholder="The preprocessing of the image on show appears here.")
            self.stage_caption.setText("")
            return
        self.recompute_now()  # a new image: no reason to wait

    def set_stage(self, name: str) -> None:
        if name not in STAGE_NAMES:
            raise ValueError(f"unknown stage {name!r}")
        self.current_stage = name
        button = self.stage_buttons[name]
        if not button.isChecked():
            button.setChecked(True)
        self._show_stage()

    def stop(self) -> None:
        """No recompute after this (the window is closing)."""
        self._timer.stop()

    def request_recompute(self) -> None:
        """Recompute after DEBOUNCE_MS without further changes."""
        if self._rgb is not None:
            self._timer.start()

    def recompute_now(self) -> int:
        """Submit a computation with the parameters on screen; returns its request id."""
        self._timer.stop()
        if self._rgb is None:
            return self.latest_request
        try:
            config = self.config()
        except ConfigError as exc:  # the controls keep lower <= upper, so this is unexpected
            self.differs_notice.setText(f"Invalid parameters: {exc}")
            self.differs_notice.show()
            return self.latest_request
        self.latest_request += 1
        self.submitted_requests += 1
        request, rgb = self.latest_request, self._rgb
        self._workers.submit(self._compute, request, rgb, config, priority=PRIORITY_PREVIEW,
                             name="preview", on_result=self._on_result, on_error=self._on_error)
        return request

    def _compute(self, request: int, rgb: np.ndarray, config: PreprocessConfig) -> PreviewResult:
        # Worker thread. Reading an int attribute is atomic; a newer request makes this one moot.
        if request != self.latest_request:
            return PreviewResult(request, config, None)
        return PreviewResult(request, config, preprocess(rgb, config))

    def _on_result(self, result: PreviewResult) -> None:
        if result.request != self.latest_request or result.stages is None:
            self.dropped_results += 1
            return
        self.displayed = result
        self._show_stage()
        self.result_displayed.emit(result)

    def _on_error(self, error: TaskError) -> None:
        from gui.errors import error_message, show_error

        show_error(self.window(), f"The preprocessing preview failed: {error_message(error.exc)}", error.details)

    def displayed_stage_image(self) -> np.ndarray | None:
        if self.displayed is None or self.displayed.stages is None:
            return None
        return getattr(self.displayed.stages, self.current_stage)

    def _show_stage(self) -> None:
        image = self.displayed_stage_image()
        if image is None:
            return
        self.stage_view.set_image(image, keep_view=True)
        size = self.displayed.config.image_size
        what = {
            "original": "centre crop resized to the model input",
            "enhanced": "after contrast enhancement (CLAHE on L)",
            "mask": "white = selected by the colour ranges",
            "masked": "enhanced image where the mask is set",
            "model_input": f"what the network sees ({self.displayed.config.model_input})",
        }[self.current_stage]
        coverage = ""
        if self.current_stage in ("mask", "masked"):
            mask = self.displayed.stages.mask
            coverage = f" · {100.0 * float(np.count_nonzero(mask)) / mask.size:.1f} % of pixels selected"
        self.stage_caption.setText(f"{STAGE_LABELS[self.current_stage]}: {what} · {size} × {size} px{coverage}")
