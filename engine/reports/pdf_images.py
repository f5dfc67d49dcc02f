"""The thumbnails of the PDF report's image table: each image, its masked version and its Grad-CAM
overlay as small JPEGs, and the ReportLab flowable that draws one.

A row's thumbnails are made when the row is drawn and dropped once its last cell is drawn, so a
report of thousands of images never holds more than one row's images in memory.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.core.errors import AllSightError, Cancelled
from engine.imaging.preprocess import PreprocessConfig
from engine.reports.pdf_fonts import ReportFonts

# The PDF writer's one logger, whichever of its modules logs (engine.reports.pdf).
log = logging.getLogger("engine.reports.pdf")

#: Thumbnail size in pixels (JPEG in memory) and as drawn in the PDF (points; 1 pt = 1/72 in).
THUMB_PX = 64
THUMB_PT = 40.0


def thumb_jpeg(rgb: np.ndarray, size: int = THUMB_PX) -> bytes:
    """An image (RGB or grey, any size and dtype) as a JPEG whose longer side is ``size`` pixels."""
    import cv2
    from PIL import Image

    rgb = np.ascontiguousarray(rgb[..., :3]) if rgb.ndim == 3 else np.stack([rgb] * 3, axis=-1)
    if rgb.dtype != np.uint8:
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    if scale != 1.0:
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = cv2.resize(rgb, new, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=80)
    return out.getvalue()


class RowImages:
    """The thumbnails of one row, made on first use (when the row is drawn) and then dropped."""

    __slots__ = ("_jpegs", "_left", "_notes", "check", "config", "heatmap_fn", "kinds", "path", "tick")

    def __init__(self, path: str | Path, config: PreprocessConfig, heatmap_fn, kinds: tuple[str, ...],
                 check: Callable[[], None], tick: Callable[[], None]):
        self.path, self.config, self.heatmap_fn, self.kinds = path, config, heatmap_fn, kinds
        self.check, self.tick = check, tick
        self._jpegs: dict[str, bytes] | None = None
        self._notes: dict[str, str] = {}
        self._left = 0

    def _make(self) -> None:
        from engine.imaging.preprocess import preprocess
        from engine.io.images import load_image

        self.check()
        jpegs: dict[str, bytes] = {}
        notes: dict[str, str] = {}
        if "original" in self.kinds or "masked" in self.kinds:
            try:
                stages = preprocess(load_image(self.path), self.config)
                for kind in ("original", "masked"):
                    if kind in self.kinds:
                        jpegs[kind] = thumb_jpeg(getattr(stages, kind))
                del stages
            except AllSightError as exc:
                log.warning("report: no thumbnail for %s: %s", self.path, exc)
                notes["original"] = notes["masked"] = "unavailable"
        if "heatmap" in self.kinds:
            try:
                heat = self.heatmap_fn(self.path)
                if heat is None:
                    notes["heatmap"] = "\u2014"
                else:
                    jpegs["heatmap"] = thumb_jpeg(np.asarray(heat))
            except Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed heat map must not lose the report
                log.warning("report: no Grad-CAM for %s: %s", self.path, exc)
                notes["heatmap"] = "unavailable"
        self._jpegs, self._notes, self._left = jpegs, notes, len(self.kinds)
        self.tick()

    def take(self, kind: str) -> bytes | str:
        """JPEG bytes, or a short note to print instead."""
        if self._jpegs is None:
            self._make()
        assert self._jpegs is not None
        result: bytes | str = self._jpegs.get(kind) or self._notes.get(kind, "unavailable")
        self._left -= 1
        if self._left <= 0:  # every cell of the row is drawn: free the thumbnails
            self._jpegs, self._notes = None, {}
        return result


def thumb_flowable(fonts: ReportFonts):
    """The flowable class of one thumbnail cell (``Thumb(row, kind)``), its notes set in ``fonts``.

    A class made per report because ReportLab is imported lazily: only the PDF writer needs it.
    """
    from reportlab.lib.utils import ImageReader
    from reportlab.platypus import Flowable

    class Thumb(Flowable):
        def __init__(self, row: RowImages, kind: str):
            super().__init__()
            self.row, self.kind = row, kind

        def wrap(self, avail_width, avail_height):
            return THUMB_PT, THUMB_PT

        def draw(self):
            item = self.row.take(self.kind)
            c = self.canv
            if isinstance(item, bytes):
                c.drawImage(ImageReader(io.BytesIO(item)), 0, 0, THUMB_PT, THUMB_PT,
                            preserveAspectRatio=True, anchor="c")
            else:
                c.setFont(fonts.regular, 6.5)
                c.setFillGray(0.4)
                c.drawCentredString(THUMB_PT / 2, THUMB_PT / 2 - 2, item)

    return Thumb
