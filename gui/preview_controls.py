"""The preview's parameter controls: contrast, model input, mask closing and the colour ranges.

:class:`PreviewControls` is a mixin of :class:`gui.preview.PreviewPanel`. It builds the controls
(one :class:`RangeRow` of spin boxes per colour range, all in a :class:`FittingScrollArea`), reads
the configuration they show (:meth:`~PreviewControls.config`) and sets it, holds the active model's
configuration for "Reset to model", and keeps the notice that says when the two differ
(:func:`gui.preview_config.config_differences`). An edit becomes the panel's ``config_changed``
signal and a (debounced) recompute of the panel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.imaging.preprocess import ColorRange, PreprocessConfig
from gui import theme
from gui.preview_config import config_differences
from gui.theme import Tone

if TYPE_CHECKING:
    from PySide6.QtCore import SignalInstance
    from PySide6.QtWidgets import QPushButton

LAB_SOURCE_LABELS = {
    "bgr_as_rgb": "As in the original research (BGR read as RGB)",
    "rgb": "True RGB → LAB",
}
MODEL_INPUT_LABELS = {"masked": "Masked", "enhanced": "Enhanced", "original": "Original"}


class RangeRow:
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


class FittingScrollArea(QScrollArea):
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


class PreviewControls:
    """The parameter controls and the model's configuration, mixed into :class:`gui.preview.PreviewPanel`
    (a widget: what this makes is the panel's)."""

    # What the panel provides.
    model_config: PreprocessConfig
    model_name: str | None
    model_note: QLabel
    differs_notice: QLabel
    reset_button: QPushButton
    config_changed: SignalInstance
    request_recompute: Callable[[], None]

    def build_parameter_controls(self) -> QScrollArea:
        """The controls, in a scroll area that asks for their whole height; the colour ranges' rows
        come with :meth:`fill_parameter_controls`."""
        self._updating = False  # the controls are being set: their changes are not edits
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
        self.range_rows: dict[str, RangeRow] = {}

        controls = QWidget(self)
        cl = QVBoxLayout(controls)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(enhance_box)
        cl.addWidget(self.ranges_box)
        cl.addStretch(1)
        self.controls_scroll = FittingScrollArea(self)
        self.controls_scroll.setWidget(controls)
        self.controls_scroll.setWidgetResizable(True)
        self.controls_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.controls_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # Preferred (not Expanding): the controls get their full height, the stage view the rest.
        self.controls_scroll.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)

        for widget in (self.clip_spin, self.tile_spin, self.close_spin):
            widget.valueChanged.connect(self._on_param_changed)
        for combo in (self.lab_combo, self.model_input_combo):
            combo.currentIndexChanged.connect(self._on_param_changed)
        return self.controls_scroll

    def fill_parameter_controls(self) -> None:
        """Show the model's configuration (its colour ranges' rows built), without recomputing: the
        panel's last step, so the rows' widgets come after everything else it makes."""
        self._build_range_rows(self.model_config.color_ranges)
        self._set_controls(self.model_config)
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
            row = RangeRow(self.ranges_box, rng.name)
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
