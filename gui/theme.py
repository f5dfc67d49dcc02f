"""Colours that read on a light and on a dark desktop, and the light/dark/system choice.

The widgets never name a colour: they name a :class:`Tone` (what the colour says: muted text,
something to review, an error, a success) and :func:`color` / :func:`qcolor` pick the shade that
has enough contrast on the current palette's window colour. Hard-coded dark greys on a dark
desktop theme (the queue's black text on dark grey) were unreadable; a test checks every tone's
contrast on both palettes (WCAG 2.1 contrast ratio >= 4.5 for text).

A colour chosen when a widget is built must change with the palette (the user picks another
theme, or the desktop switches to dark): :func:`style` gives a widget a style sheet in a tone and
re-applies it on every palette change, and :func:`follow` calls any refresh (re-render a rich-text
line, reset a model's colours) then. Widgets with a style sheet get no palette event of their
own and keep the palette they had when it was set, so one hidden watcher widget hears the
application's change, tells the followers and sets every widget's style sheet again.

``Settings.theme`` is ``"system"`` (follow the desktop; the default), ``"light"`` or ``"dark"``
(Qt's Fusion style with :func:`dark_palette`, the same on every platform).
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Mapping
from enum import StrEnum
from types import MappingProxyType

from PySide6.QtCore import QEvent, QObject, Qt, Signal, Slot
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory, QWidget
from shiboken6 import isValid

from gui.settings import THEMES


class Tone(StrEnum):
    """What a colour means (text tones first, then backgrounds)."""

    MUTED = "muted"  # secondary text: captions, hints, "not reviewed"
    OK = "ok"  # signed off, intact, locked
    WARNING = "warning"  # flagged, to review, not signed off yet (also a notice box's border)
    ERROR = "error"  # unreadable, failed, refused
    NOTE = "note"  # model notes in the preview, "research use only"
    ROW_TO_REVIEW = "row_to_review"  # background of a result row (or a notice box) that needs a look
    ROW_ERROR = "row_error"  # background of a result row (or a warning box, a tile) that failed


TEXT_TONES = (Tone.MUTED, Tone.OK, Tone.WARNING, Tone.ERROR, Tone.NOTE)
BACKGROUND_TONES = (Tone.ROW_TO_REVIEW, Tone.ROW_ERROR)

#: Shades for a light window colour.
LIGHT: Mapping[Tone, str] = MappingProxyType({
    Tone.MUTED: "#546e7a", Tone.OK: "#276b2c", Tone.WARNING: "#b34700", Tone.ERROR: "#c62828",
    Tone.NOTE: "#6d4c41", Tone.ROW_TO_REVIEW: "#fff3e0", Tone.ROW_ERROR: "#fdecea",
})
#: Shades for a dark window colour: lighter text, darker row tints.
DARK: Mapping[Tone, str] = MappingProxyType({
    Tone.MUTED: "#a9bcc5", Tone.OK: "#81c784", Tone.WARNING: "#ffb74d", Tone.ERROR: "#ef9a9a",
    Tone.NOTE: "#d7b8a8", Tone.ROW_TO_REVIEW: "#4a3418", Tone.ROW_ERROR: "#4f2121",
})


def _palette(palette: QPalette | None) -> QPalette:
    return palette if palette is not None else QGuiApplication.palette()


def is_dark(palette: QPalette | None = None) -> bool:
    """Whether the palette's window colour is dark (lightness under half)."""
    return _palette(palette).color(QPalette.ColorRole.Window).lightnessF() < 0.5


def shades(palette: QPalette | None = None) -> Mapping[Tone, str]:
    """The shade table (:data:`LIGHT` or :data:`DARK`) for the palette (default: the application's)."""
    return DARK if is_dark(palette) else LIGHT


def color(tone: Tone, palette: QPalette | None = None) -> str:
    """``#rrggbb`` of ``tone`` for the palette (default: the application's)."""
    return shades(palette)[tone]


def qcolor(tone: Tone, palette: QPalette | None = None) -> QColor:
    return QColor(color(tone, palette))


def text_color(palette: QPalette | None = None) -> str:
    """``#rrggbb`` of the palette's ordinary text (what a label without a colour is written in)."""
    return _palette(palette).color(QPalette.ColorRole.WindowText).name()


def text_style(tone: Tone | None, extra: str = "") -> str:
    """A style sheet for a label written in ``tone`` (None: only ``extra``)."""
    if tone is None:
        return extra
    return f"color: {color(tone)};{' ' + extra if extra else ''}"


def box_style(background: Tone, border: Tone, text: Tone | None = None, extra: str = "") -> str:
    """A framed notice: ``text`` (None: the palette's text colour) on ``background``."""
    fg = color(text) if text is not None else text_color()
    return (f"color: {fg}; background: {color(background)}; border: 1px solid {color(border)};"
            f"{' ' + extra if extra else ''}")


def span(tone: Tone, html_text: str) -> str:
    """Rich text ``html_text`` (already escaped) in ``tone``."""
    return f"<span style='color:{color(tone)}'>{html_text}</span>"


# ---------------------------------------------------------------------------- following changes
class _Watcher(QWidget):
    """A hidden top-level widget (never shown): Qt sends it the application's palette change,
    which it passes on as :attr:`changed`."""

    changed = Signal()

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ApplicationPaletteChange:
            self.changed.emit()
            _repolish_style_sheets()
        return super().event(event)


def _repolish_style_sheets() -> None:
    """Qt keeps the palette a widget had when its style sheet was set (a bold button stays light
    grey on a dark palette): every widget with a style sheet gets it again."""
    for widget in QApplication.allWidgets():
        sheet = widget.styleSheet()
        if sheet:
            widget.setStyleSheet(sheet)


class _Watching:
    watcher: _Watcher | None = None  # made on first use (it needs the QApplication)


def _watcher() -> _Watcher:
    if _Watching.watcher is None or not isValid(_Watching.watcher):
        _Watching.watcher = _Watcher()
        _Watching.watcher.setObjectName("allsight-theme-watcher")
    return _Watching.watcher


class _Follower(QObject):
    """A child of the followed object (dies with it) that runs its refresh on a palette change."""

    def __init__(self, parent: QObject, name: str, callback: Callable[[], object]):
        super().__init__(parent)
        self.setObjectName(name)
        self.set_callback(callback)
        _watcher().changed.connect(self.refresh)

    def set_callback(self, callback: Callable[[], object]) -> None:
        # a bound method is held weakly: the follower must not keep its own parent alive
        self._callback = weakref.WeakMethod(callback) if inspect.ismethod(callback) else (lambda: callback)

    @Slot()
    def refresh(self) -> None:
        callback = self._callback()
        if callback is not None:
            callback()


def follow(obj: QObject, callback: Callable[[], object], *, key: str = "", now: bool = False) -> None:
    """Call ``callback`` whenever the application palette changes, for as long as ``obj`` lives
    (``now``: and once now). A bound method is held weakly; any other callable must not hold
    ``obj`` itself (it would never be freed). A second call with the same non-empty ``key``
    replaces the first one's callback."""
    name = f"allsight-theme:{key}" if key else ""
    existing = obj.findChild(_Follower, name, Qt.FindChildOption.FindDirectChildrenOnly) if key else None
    if existing is not None:
        existing.set_callback(callback)
    else:
        _Follower(obj, name, callback)
    if now:
        callback()


def _restyle(ref: weakref.ref, make: Callable[[], str]) -> None:
    widget = ref()
    if widget is not None:
        sheet = make()
        if widget.styleSheet() != sheet:  # each setStyleSheet re-polishes (and may relayout)
            widget.setStyleSheet(sheet)


def style_sheet(widget: QWidget, make: Callable[[], str]) -> None:
    """Give ``widget`` the style sheet ``make()`` now and again on every palette change (a later
    call replaces it). ``make`` must not hold ``widget``."""
    ref = weakref.ref(widget)
    follow(widget, lambda: _restyle(ref, make), key="style", now=True)


def style(widget: QWidget, tone: Tone | None, extra: str = "") -> None:
    """Write ``widget``'s text in ``tone`` (None: the palette's colour) plus ``extra`` CSS, now and
    after every palette change; calling it again changes the tone."""
    style_sheet(widget, lambda: text_style(tone, extra))


# ---------------------------------------------------------------------------- the choice
def dark_palette() -> QPalette:
    """Fusion's palette in dark greys with readable text, links and selection (the bevel shades,
    Light/Mid/Dark/Shadow, are derived from the dark button colour)."""
    base, window, text = QColor("#1e2327"), QColor("#2b3137"), QColor("#e8eaed")
    p = QPalette(window, window)
    for role, value in ((QPalette.ColorRole.Window, window), (QPalette.ColorRole.WindowText, text),
                        (QPalette.ColorRole.Base, base), (QPalette.ColorRole.AlternateBase, QColor("#262c31")),
                        (QPalette.ColorRole.Text, text), (QPalette.ColorRole.Button, window),
                        (QPalette.ColorRole.ButtonText, text), (QPalette.ColorRole.ToolTipBase, QColor("#37414a")),
                        (QPalette.ColorRole.ToolTipText, text), (QPalette.ColorRole.Highlight, QColor("#3d7bd9")),
                        (QPalette.ColorRole.HighlightedText, QColor("#ffffff")),
                        (QPalette.ColorRole.BrightText, QColor("#ffffff")),
                        (QPalette.ColorRole.Link, QColor("#8ab4f8")), (QPalette.ColorRole.LinkVisited, QColor("#c58af9")),
                        (QPalette.ColorRole.PlaceholderText, QColor("#9aa0a6"))):
        p.setColor(role, value)
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#80868b"))
    return p


def light_palette() -> QPalette:
    return QPalette(QColor("#efefef"))


class _Desktop:
    style: str | None = None  # the style the application started with (what "system" goes back to)


def apply_theme(app: QGuiApplication, choice: str) -> None:
    """Apply ``choice`` (one of :data:`THEMES`) to ``app``: light and dark use the Fusion style so
    the palette is honoured everywhere; "system" goes back to the desktop's style and palette."""
    if choice not in THEMES:
        raise ValueError(f"theme must be one of {', '.join(THEMES)}, got {choice!r}")
    widgets = isinstance(app, QApplication)
    if widgets and _Desktop.style is None:
        _Desktop.style = app.style().name()
    if choice == "system":
        if widgets and _Desktop.style and app.style().name() != _Desktop.style:
            app.setStyle(QStyleFactory.create(_Desktop.style))
        app.setPalette(QPalette())  # a palette with nothing set: the desktop's again
        return
    if widgets:
        app.setStyle(QStyleFactory.create("Fusion"))
    app.setPalette(dark_palette() if choice == "dark" else light_palette())


def contrast_ratio(fg: QColor, bg: QColor) -> float:
    """WCAG 2.1 contrast ratio of two colours (1 to 21)."""
    def luminance(c: QColor) -> float:
        def lin(v: float) -> float:
            return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4
        return 0.2126 * lin(c.redF()) + 0.7152 * lin(c.greenF()) + 0.0722 * lin(c.blueF())
    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


__all__ = ["BACKGROUND_TONES", "DARK", "LIGHT", "TEXT_TONES", "THEMES", "Tone", "apply_theme", "box_style", "color",
           "contrast_ratio", "dark_palette", "follow", "is_dark", "light_palette", "qcolor", "shades", "span", "style",
           "style_sheet", "text_color", "text_style"]
