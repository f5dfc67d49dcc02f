"""What the main window shows of the active model: the status bar's model and device labels and
the preprocessing preview's starting parameters, for an installed model (its card) or for none
(why it cannot be used). :meth:`gui.main_window.MainWindow.load_model_info` reads the card and
calls these; no torch is imported here or there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gui import theme
from gui.theme import Tone

if TYPE_CHECKING:
    from PySide6.QtWidgets import QLabel

    from engine.models.card import ModelCard
    from gui.preview import PreviewPanel


def show_model(model_label: QLabel, preview_panel: PreviewPanel, card: ModelCard,
               threshold_override: float | None) -> None:
    """The model in use: its name and version, its card's details in the tooltip."""
    model_label.setText(f"Model: {card.id} {card.version}")
    theme.style(model_label, None, "padding: 0 6px;")
    model_label.setToolTip(
        f"{card.path}\nArchitecture: {card.architecture}, input {card.image_size} px\n"
        f"Review threshold: {card.review_threshold:.3f}"
        + (f" — overridden in the settings: {threshold_override:.3f}" if threshold_override is not None else ""))
    preview_panel.set_model_config(card.preprocess, f"{card.id} {card.version}")


def show_no_model(model_label: QLabel, preview_panel: PreviewPanel, model: str, error: Exception) -> None:
    """No usable model (a normal state): say so, and why; the preview starts from the defaults."""
    model = model or "the library's active model"
    model_label.setText("⚠ No model installed")
    theme.style(model_label, Tone.ERROR, "padding: 0 6px;")
    model_label.setToolTip(
        f"The active model “{model}” cannot be used:\n{error}\n\n"
        "Classification needs an installed model (Tools ▸ Models… or Edit ▸ Settings… to choose one); image viewing "
        "and the preview work without one.")
    preview_panel.set_model_config(
        None, None, f"No model installed (“{model}”): the preview starts from the default "
                    "parameters of the original research.")


def show_device(device_label: QLabel, configured: str, running: str | None) -> None:
    """Where the model runs once loaded (``running``); before that, the device the settings ask for."""
    if running is None:
        device_label.setText(f"Device: {configured}")
        device_label.setToolTip("The model is loaded when a sample is first classified")
    else:
        device_label.setText(f"Device: {running}")
        device_label.setToolTip("Where the model runs")
