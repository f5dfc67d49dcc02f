"""The white-cell detector (engine.imaging.cells) measured against the original work's LAB colour masks.

    python benchmarks/cells.py DATA_DIR [--bccd DIR] [--every 3]

Both are used the same way as a "is there a white cell in this field" check: a component of at
least the detector's minimum area in the mask. Reported:

* on the ALL fields: how often a cell is found (every field has at least one white cell), and the
  share of the field each mask covers (a white-cell mask should cover little: red cells are not
  white cells);
* on the same fields with their cells painted out (engine.imaging.probes.cell_free): how often a cell is
  still "found" (the check's false alarms on real cell-free fields);
* on BCCD (another lab, with annotated white-cell boxes): the share of annotated white cells the
  mask touches, and the share of the mask lying outside every white-cell box.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bccd  # noqa: E402

from engine.imaging.cells import DEFAULT_CELL_DETECTOR, white_cell_mask  # noqa: E402
from engine.imaging.preprocess import PreprocessConfig, color_mask, enhance_contrast  # noqa: E402
from engine.imaging.probes import cell_free  # noqa: E402
from engine.io.images import load_image  # noqa: E402
from engine.training.data import discover_dataset  # noqa: E402

MASKS_CFG = PreprocessConfig()


def lab_masks(rgb: np.ndarray) -> np.ndarray:
    """The original work's union of pink, blue and purple LAB ranges, on the enhanced image."""
    return color_mask(enhance_contrast(rgb, MASKS_CFG.clahe_clip_limit, MASKS_CFG.clahe_tile_grid), MASKS_CFG)


def finds_cell(mask: np.ndarray) -> bool:
    size = DEFAULT_CELL_DETECTOR.analysis_size
    small = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
    n, _, stats, _ = cv2.connectedComponentsWithStats((small > 0).astype(np.uint8))
    return bool((stats[1:, cv2.CC_STAT_AREA] >= DEFAULT_CELL_DETECTOR.min_area_fraction * size**2).any())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data_dir")
    ap.add_argument("--bccd")
    ap.add_argument("--every", type=int, default=3, help="use every N-th ALL field")
    args = ap.parse_args()
    samples = discover_dataset(args.data_dir).samples[:: args.every]
    methods = {"detector (engine.imaging.cells)": white_cell_mask, "original LAB masks": lab_masks}
    rows = {m: {"found": 0, "cover": [], "free_found": 0, "hit": 0, "boxes": 0, "outside": []} for m in methods}
    for s in samples:
        rgb = load_image(s.path)
        free = cell_free(rgb)
        for name, fn in methods.items():
            mask = fn(rgb)
            rows[name]["found"] += finds_cell(mask)
            rows[name]["cover"].append(float((mask > 0).mean()))
            rows[name]["free_found"] += finds_cell(fn(free))
    root = _bccd.locate(args.bccd)
    fields = _bccd.load_fields(root) if root else []
    for f in fields:
        inside = np.zeros(f.rgb.shape[:2], bool)
        for x0, y0, x1, y1 in f.wbc_boxes:
            inside[y0:y1, x0:x1] = True
        for name, fn in methods.items():
            mask = fn(f.rgb) > 0
            for x0, y0, x1, y1 in f.wbc_boxes:
                rows[name]["boxes"] += 1
                rows[name]["hit"] += bool(mask[y0:y1, x0:x1].any())
            if mask.any():
                rows[name]["outside"].append(float((mask & ~inside).sum() / mask.sum()))
    n = len(samples)
    print(f"{n} ALL fields (every {args.every}th), {len(fields)} BCCD fields\n")
    print("| check | ALL fields: cell found | mask covers (mean) | cell-free fields: cell 'found' | "
          "BCCD white cells touched | BCCD mask outside white-cell boxes |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, r in rows.items():
        boxes = f"{100 * r['hit'] / r['boxes']:.1f} % ({r['hit']}/{r['boxes']})" if r["boxes"] else "—"
        outside = f"{100 * np.mean(r['outside']):.1f} %" if r["outside"] else "—"
        print(f"| {name} | {100 * r['found'] / n:.1f} % | {100 * np.mean(r['cover']):.1f} % | "
              f"{100 * r['free_found'] / n:.1f} % | {boxes} | {outside} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
