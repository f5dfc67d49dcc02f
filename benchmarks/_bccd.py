"""The BCCD development set (another lab's smear fields, VOC boxes) as in-memory test images.

Used only by the benchmarks: nothing here is fitted on, and nothing is written to disk.

* whole fields: the 640x480 JPEGs, as a lab would give them;
* white-cell crops: a square around each annotated ``WBC`` box, sized so that the cell takes
  the same share of the crop as a white cell does of a training field
  (:data:`TRAIN_CELL_SHARE`), then resized to 224 px;
* colour-matched crops: the same crops with their LAB mean and spread moved to the training
  set's (Reinhard et al. 2001 colour transfer), so only morphology and texture still differ.

Images are split by number into a *development* half (even numbers, which may be looked at while
choosing a design) and an *evaluation* half (odd numbers, only ever reported), as the BCCD README
asks: keep what evaluates a detector out of what it is fitted or tuned on.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.io.images import load_image

#: Side of a white cell's box over the side of the field in the training set (engine.imaging.cells on
#: every 9th field): the median over all detected white cells is 0.125, over each field's
#: largest 0.22; blasts are the larger cells, so 0.15.
TRAIN_CELL_SHARE = 0.15


def locate(explicit: str | None = None) -> Path | None:
    """The BCCD folder: ``explicit``, ``$ALLSIGHT_BCCD`` or ``../shared/data/bccd``."""
    here = Path(__file__).resolve().parents[1]
    for candidate in (explicit, os.environ.get("ALLSIGHT_BCCD"), here.parent / "shared" / "data" / "bccd"):
        if candidate and (Path(candidate) / "annotations").is_dir():
            return Path(candidate)
    return None


@dataclass(frozen=True)
class Field:
    name: str
    number: int
    rgb: np.ndarray
    wbc_boxes: tuple[tuple[int, int, int, int], ...]  # (x0, y0, x1, y1)

    @property
    def half(self) -> str:
        return "development" if self.number % 2 == 0 else "evaluation"


def load_fields(root: Path, half: str | None = None) -> list[Field]:
    """Every readable annotated field (``half``: "development", "evaluation" or None for both)."""
    fields = []
    for xml in sorted((root / "annotations").glob("*.xml")):
        tree = ET.parse(xml).getroot()
        name = tree.findtext("filename") or (xml.stem + ".jpg")
        number = int(re.sub(r"\D", "", Path(name).stem) or 0)
        path = root / "images" / name
        if not path.is_file():
            continue
        boxes = []
        for obj in tree.findall("object"):
            if obj.findtext("name") != "WBC":
                continue
            b = obj.find("bndbox")
            boxes.append(tuple(int(float(b.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax")))
        f = Field(name, number, load_image(path), tuple(boxes))
        if half is None or f.half == half:
            fields.append(f)
    return fields


def cell_crops(fields: list[Field], size: int = 224, share: float = TRAIN_CELL_SHARE) -> list[np.ndarray]:
    """Square crops around each WBC box, the cell taking ``share`` of the side, resized to ``size``
    (reflected at the field's border)."""
    crops = []
    for f in fields:
        h, w = f.rgb.shape[:2]
        pad = int(max(h, w))
        padded = cv2.copyMakeBorder(f.rgb, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        for x0, y0, x1, y1 in f.wbc_boxes:
            side = max(x1 - x0, y1 - y0) / share
            cx, cy = (x0 + x1) / 2 + pad, (y0 + y1) / 2 + pad
            half = int(round(min(side, 2 * pad) / 2))
            crop = padded[int(cy) - half:int(cy) + half, int(cx) - half:int(cx) + half]
            if crop.size:
                crops.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
    return crops


def lab_stats(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of LAB (float, OpenCV 8-bit scale) over ``images``."""
    labs = [cv2.cvtColor(im, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float64) for im in images]
    means = np.stack([lab.mean(0) for lab in labs])
    stds = np.stack([lab.std(0) for lab in labs])
    return means.mean(0), stds.mean(0)


def colour_match(rgb: np.ndarray, target_mean: np.ndarray, target_std: np.ndarray) -> np.ndarray:
    """Reinhard colour transfer: the image's LAB mean and spread moved to the target's."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float64)
    mean = lab.reshape(-1, 3).mean(0)
    std = lab.reshape(-1, 3).std(0) + 1e-6
    out = (lab - mean) / std * target_std + target_mean
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
