"""Panels that scroll instead of pushing the window off the screen.

At 150 % display scaling a 1920 x 1080 screen is 1280 x 720 logical pixels, less the task bar.
The results panel (summary, table, review line) and the queue (its button row) have minimum
sizes that, stacked, asked for 806 x 784: the window then overflowed the screen and cut its
buttons off. Each such panel sits in a :func:`scrollable` area: at a comfortable size it fills the
area exactly as before; on a small screen a scroll bar appears and every button stays reachable.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QScrollArea, QTabWidget, QWidget


def scrollable(panel: QWidget) -> QScrollArea:
    """``panel`` inside a frameless scroll area that resizes it to fit (the area's child)."""
    area = QScrollArea(panel.parentWidget())
    area.setObjectName(f"{panel.objectName() or type(panel).__name__}_scroll")
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidgetResizable(True)  # the panel fills the area; scroll bars only below its minimum
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    area.setWidget(panel)
    return area


def panel_of(page: QWidget | None) -> QWidget | None:
    """The panel a tab page shows: the scroll area's child, or the page itself."""
    return page.widget() if isinstance(page, QScrollArea) else page


def show_panel(tabs: QTabWidget, panel: QWidget) -> None:
    """Bring the tab showing ``panel`` (directly or in a :func:`scrollable` area) to the front."""
    for i in range(tabs.count()):
        if panel_of(tabs.widget(i)) is panel:
            tabs.setCurrentIndex(i)
            return


def current_panel(tabs: QTabWidget) -> QWidget | None:
    """The panel on the tab in front (unwrapped from its scroll area)."""
    return panel_of(tabs.currentWidget())


__all__ = ["current_panel", "panel_of", "show_panel", "scrollable"]
