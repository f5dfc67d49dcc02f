"""Masking preview: every preprocessing stage of the current image, with live parameters.

The panel runs :func:`engine.imaging.preprocess.preprocess` — the same function training and inference
use — on the image shown in the viewer, and displays one stage (original, enhanced, mask,
masked, model input). Parameter edits are debounced (``DEBOUNCE_MS``) and computed in the worker
pool; every request carries a number and only the latest one is displayed (older requests are
skipped before they start, or their results dropped when they arrive).

Exploring parameters here never changes how images are classified: a model always uses the
preprocessing stored in its model card. "Reset to model" restores that configuration, and a
notice says when the parameters on screen differ from it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QEvent, QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.core.errors import ConfigError
from engine.imaging.preprocess import (
    STAGE_NAMES,
    ColorRange,
    PreprocessConfig,
    PreprocessStages,
    preprocess,
)
from gui import theme
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
LAB_SOURCE_LABELS = {
    "bgr_as_rgb": "As in the original research (BGR read as RGB)",
    "rgb": "True RGB → LAB",
}
MODEL_INPUT_LABELS = {"masked": "Masked", "enhanced": "Enhanced", "original": "Original"}
PARAMETER_LABELS = {
    "clahe_clip_limit": "CLAHE clip limit",
    "clahe_tile_grid": "CLAHE tile grid",
    "lab_source": "LAB source",
    "model_input": "model input",
    "mask_close_px": "mask closing",
    "image_size": "input size",
    "crop": "crop",
    "mean": "normalisation mean",
    "std": "normalisation std",
}


@dataclass(frozen=True)
class PreviewResult:
    request: int
    config: PreprocessConfig
    stages: PreprocessStages | None  # None: skipped because a newer request exists


def config_differences(current: PreprocessConfig, reference: PreprocessConfig) -> list[str]:
    """Names (for people) of the parameters in which ``current`` differs from ``reference``."""
    out: list[str] = []
    for name, label in PARAMETER_LABELS.items():
        if getattr(current, name) != getattr(reference, name):
            out.append(label)
    ref_ranges = {r.name: r for r in reference.color_ranges}
    cur_ranges = {r.name: r for r in current.color_ranges}
    for name in list(ref_ranges) + [n for n in cur_ranges if n not in ref_ranges]:
        a, b = cur_ranges.get(name), ref_ranges.get(name)
        if a is None or b is None:
            out.append(f"{name} range")
            continue
        for bound in ("lower", "upper"):
            for channel, x, y in zip("Lab", getattr(a, bound), getattr(b, bound), strict=False):
                if x != y:
                    out.append(f"{name} {channel} {'low' if bound == 'lower' else 'high'}")
    return out


class _RangeRow:
    """Spin boxes for one colour range: L/a/b lower and upper (0..255, lower <= upper)."""

    def __init__(self, parent: QWidget, name: str):
        self.name = name
        self.lower = [self._spin(parent) for _ in range(3)]
        self.upper = [self._spin(parent) for _ in range(3)]
        for lo, hi, channel in zip(self.lower, self.upper, "Lab", strict=False):
            lo.setToolTip(f"{name}: lowest {channel} value selected (OpenCV 8-bit LAB, 0–255)")
            hi.setToolTip(f"{name}: highest {channel} value selected (OpenCV 8-bit LAB, 0–255)")
            lo.valueChanged.connect(lambda v, hi=hi: hi.setMinimum(v))
            hi.valueChanged.connect(lambda v, lo=lo: lo.setMaximum(v))

    @staticmethod
    def _spin(parent: QWidget) -> QSpinBox:
        box = QSpinBox(parent)
        box.setRange(0, 255)
        box.setKeyboardTracking(False)
        box.setButtonSymbols(QSpinBox.ButtonSymbols.NoButtons)
        box.setAlignment(Qt.AlignmentFlag.AlignRight)
        box.setMinimumWidth(40)
        return box

    def spins(self) -> list[QSpinBox]:
        return self.lower + self.upper

    def set_range(self, rng: ColorRange) -> None:
        for lo, hi, a, b in zip(self.lower, self.upper, rng.lower, rng.upper, strict=False):
            for box in (lo, hi):
                box.blockSignals(True)
                box.setRange(0, 255)
            lo.setValue(int(a))
            hi.setValue(int(b))
            lo.setMaximum(int(b))
            hi.setMinimum(int(a))
            for box in (lo, hi):
                box.blockSignals(False)

    def value(self) -> ColorRange:
        return ColorRange(self.name, tuple(b.value() for b in self.lower), tuple(b.value() for b in self.upper))


class _FittingScrollArea(QScrollArea):
    """Asks for the whole height of its content (scrolls only when the window is too small)."""

    def setWidget(self, widget: QWidget) -> None:
        super().setWidget(widget)
        widget.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()  # the content's size hint changed (e.g. once styled)
        return super().eventFilter(watched, event)

    def sizeHint(self) -> QSize:
        widget = self.widget()
        if widget is None:
            return super().sizeHint()
        hint = widget.sizeHint()
        return QSize(hint.width(), hint.height() + 2 * self.frameWidth())


class PreviewPanel(QWidget):
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
        self._updating = False
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

        # --- parameters
        self.clip_spin = QDoubleSpinBox(self)
        self.clip_spin.setRange(0.0, 40.0)
        self.clip_spin.setSingleStep(0.5)
        self.clip_spin.setDecimals(2)
        self.clip_spin.setKeyboardTracking(False)
        self.clip_spin.setSpecialValueText("off")
        self.clip_spin.setToolTip("Contrast enhancement strength (CLAHE on L); 0 turns it off")
        self.tile_spin = QSpinBox(self)
        self.tile_spin.setRange(1, 64)
        self.tile_spin.setKeyboardTracking(False)
        self.tile_spin.setToolTip("CLAHE tiles per side")
        self.lab_combo = QComboBox(self)
        for key, label in LAB_SOURCE_LABELS.items():
            self.lab_combo.addItem(label, key)
        self.lab_combo.setToolTip("Which pixels the LAB thresholds are applied to (see docs/preprocessing.md)")
        self.lab_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.lab_combo.setMinimumContentsLength(12)
        self.model_input_combo = QComboBox(self)
        for key, label in MODEL_INPUT_LABELS.items():
            self.model_input_combo.addItem(label, key)
        self.model_input_combo.setToolTip("What the network is fed")
        self.close_spin = QSpinBox(self)
        self.close_spin.setRange(0, 50)
        self.close_spin.setSuffix(" px")
        self.close_spin.setSpecialValueText("off")
        self.close_spin.setKeyboardTracking(False)
        self.close_spin.setToolTip("Morphological closing of the mask (fills small holes)")

        enhance_box = QGroupBox("Contrast and input", self)
        eg = QGridLayout(enhance_box)
        eg.setHorizontalSpacing(8)
        eg.setVerticalSpacing(4)
        eg.addWidget(QLabel("CLAHE clip limit", enhance_box), 0, 0)
        eg.addWidget(self.clip_spin, 0, 1)
        eg.addWidget(QLabel("Tile grid", enhance_box), 0, 2)
        eg.addWidget(self.tile_spin, 0, 3)
        eg.addWidget(QLabel("Model input", enhance_box), 1, 0)
        eg.addWidget(self.model_input_combo, 1, 1)
        eg.addWidget(QLabel("Mask closing", enhance_box), 1, 2)
        eg.addWidget(self.close_spin, 1, 3)
        eg.addWidget(QLabel("LAB source", enhance_box), 2, 0)
        eg.addWidget(self.lab_combo, 2, 1, 1, 3)
        eg.setColumnStretch(1, 1)
        eg.setColumnStretch(3, 1)

        self.ranges_box = QGroupBox("Colour ranges (OpenCV LAB, 0–255)", self)
        self._ranges_grid = QGridLayout(self.ranges_box)
        self._ranges_grid.setHorizontalSpacing(4)
        self._ranges_grid.setVerticalSpacing(3)
        self.range_rows: dict[str, _RangeRow] = {}

        controls = QWidget(self)
        cl = QVBoxLayout(controls)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(enhance_box)
        cl.addWidget(self.ranges_box)
        cl.addStretch(1)
        self.controls_scroll = _FittingScrollArea(self)
        self.controls_scroll.setWidget(controls)
        self.controls_scroll.setWidgetResizable(True)
        self.controls_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.controls_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # Preferred (not Expanding): the controls get their full height, the stage view the rest.
        self.controls_scroll.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)

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

        for widget in (self.clip_spin, self.tile_spin, self.close_spin):
            widget.valueChanged.connect(self._on_param_changed)
        for combo in (self.lab_combo, self.model_input_combo):
            combo.currentIndexChanged.connect(self._on_param_changed)

        self._build_range_rows(self.model_config.color_ranges)
        self._set_controls(self.model_config)
        self.stage_buttons[self.current_stage].setChecked(True)
        self._update_notice()

    # ------------------------------------------------------------------ configuration
    def _build_range_rows(self, ranges: tuple[ColorRange, ...]) -> None:
        grid = self._ranges_grid
        while grid.count():
            item = grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.range_rows = {}
        headers = ["", "L low", "L high", "a low", "a high", "b low", "b high"]
        for col, text in enumerate(headers):
            label = QLabel(text, self.ranges_box)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            theme.style(label, Tone.MUTED)
            grid.addWidget(label, 0, col)
        for r, rng in enumerate(ranges, start=1):
            row = _RangeRow(self.ranges_box, rng.name)
            grid.addWidget(QLabel(rng.name, self.ranges_box), r, 0)
            order = [row.lower[0], row.upper[0], row.lower[1], row.upper[1], row.lower[2], row.upper[2]]
            for col, box in enumerate(order, start=1):
                grid.addWidget(box, r, col)
                box.valueChanged.connect(self._on_param_changed)
            self.range_rows[rng.name] = row

    def _set_controls(self, config: PreprocessConfig) -> None:
        self._updating = True
        try:
            if [r.name for r in config.color_ranges] != list(self.range_rows):
                self._build_range_rows(config.color_ranges)
            self.clip_spin.setValue(float(config.clahe_clip_limit))
            self.tile_spin.setValue(int(config.clahe_tile_grid))
            self.lab_combo.setCurrentIndex(max(0, self.lab_combo.findData(config.lab_source)))
            self.model_input_combo.setCurrentIndex(max(0, self.model_input_combo.findData(config.model_input)))
            self.close_spin.setValue(int(config.mask_close_px))
            for rng in config.color_ranges:
                self.range_rows[rng.name].set_range(rng)
            # Parameters without a control here (image size, crop, normalisation) come along.
            self._base_config = config
        finally:
            self._updating = False

    def config(self) -> PreprocessConfig:
        """The parameters on screen."""
        return self._base_config.replace(
            clahe_clip_limit=float(self.clip_spin.value()),
            clahe_tile_grid=int(self.tile_spin.value()),
            lab_source=self.lab_combo.currentData(),
            model_input=self.model_input_combo.currentData(),
            mask_close_px=int(self.close_spin.value()),
            color_ranges=tuple(row.value() for row in self.range_rows.values()),
        )

    def set_config(self, config: PreprocessConfig) -> None:
        """Show ``config`` in the controls and recompute (debounced)."""
        self._set_controls(config)
        self._on_param_changed()

    def set_model_config(self, config: PreprocessConfig | None, model_name: str | None,
                         note: str = "", *, apply: bool = True) -> None:
        """The active model's preprocessing (None: no model installed; the research defaults
        are used and ``note`` says so). ``apply`` also puts it in the controls."""
        self.model_config = config if config is not None else PreprocessConfig()
        self.model_name = model_name
        self.model_note.setText(note)
        self.model_note.setVisible(bool(note))
        self.reset_button.setText("Reset to model" if model_name else "Reset to defaults")
        self.reset_button.setToolTip(
            f"Restore the preprocessing parameters of model {model_name}" if model_name
            else "No model is installed: restore the default parameters of the original research")
        if apply:
            self.set_config(self.model_config)
        else:
            self._update_notice()

    def reset_to_model(self) -> None:
        self.set_config(self.model_config)

    def differs_from_model(self) -> bool:
        return self.config() != self.model_config

    def _on_param_changed(self, *_args) -> None:
        if self._updating:
            return
        self._update_notice()
        self.config_changed.emit(self.config())
        self.request_recompute()

    def _update_notice(self) -> None:
        diffs = config_differences(self.config(), self.model_config)
        if diffs:
            who = f"model {self.model_name}" if self.model_name else "the default parameters"
            shown = ", ".join(diffs[:6]) + (f" and {len(diffs) - 6} more" if len(diffs) > 6 else "")
            self.differs_notice.setText(
                f"⚠ These parameters differ from {who} ({shown}). The preview is for exploration "
                f"only: classification always uses the model's own preprocessing.")
        self.differs_notice.setVisible(bool(diffs))

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
