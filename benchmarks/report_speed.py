"""Time the PDF sample report for a large sample.

    python benchmarks/report_speed.py [--n 1000] [--size 224] [--heatmaps] [--keep out.pdf]

Writes N synthetic smear-like JPEGs (``--size`` pixels square; the ALL data set's images are
224x224) into a temporary folder, builds a :class:`~engine.reports.sample.SampleReport` for them (2% of
the images failed, 5% flagged for review, 10% reviewed) and times :func:`~engine.reports.pdf.write_pdf`
with thumbnails (and, with ``--heatmaps``, a stand-in Grad-CAM function that only loads and tints
the image, so it measures the report's share of the work, not the network's). Prints one JSON
line: seconds, pages, file size and the process's peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import CLASS_IDS
from engine.core.records import ReviewedImage
from engine.imaging.preprocess import PreprocessConfig
from engine.reports.pdf import write_pdf
from engine.reports.sample import ReportModelInfo, SampleReport


def smear(label: int, size: int, seed: int) -> np.ndarray:
    import cv2

    rng = np.random.default_rng([label, seed])
    img = np.full((size, size, 3), (236, 226, 232), np.uint8)
    img = np.clip(img.astype(np.int16) + rng.integers(-8, 8, img.shape), 0, 255).astype(np.uint8)
    for _ in range(3 + 3 * label):
        r = int(size * rng.uniform(0.04, 0.12))
        c = tuple(int(v) for v in rng.integers(r, size - r, 2))
        cv2.circle(img, c, r, (120 + 10 * label, 60, 170), -1)
    return img


def peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
    return kb / (1024 * 1024) if sys.platform == "darwin" else kb / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--heatmaps", action="store_true")
    ap.add_argument("--keep", type=Path, help="also copy the PDF here")
    args = ap.parse_args()

    from PIL import Image
    from pypdf import PdfReader

    with tempfile.TemporaryDirectory(prefix="allsight-report-bench-") as tmp:
        folder = Path(tmp) / "sample"
        folder.mkdir()
        rng = np.random.default_rng(0)
        images = []
        t0 = time.perf_counter()
        for i in range(args.n):
            label = int(rng.integers(0, 4))
            path = folder / f"WBC-{i + 1:04d}.jpg"
            if i % 50 == 7:
                path.write_bytes(b"\xff\xd8 not really a jpeg")
                images.append(ReviewedImage(str(path), "error", error="corrupt or unreadable image data", position=i))
                continue
            Image.fromarray(smear(label, args.size, i)).save(path, quality=90)
            reviewed = i % 10 == 3
            final = CLASS_IDS[(label + (i % 20 == 3)) % 4] if reviewed else None
            images.append(ReviewedImage(
                str(path), "ok", CLASS_IDS[label], float(rng.uniform(0.4, 1.0)),
                needs_review=i % 20 == 5, out_of_distribution=i % 100 == 5, final_class=final,
                reviewed_by="Reviewer" if reviewed else None, position=i,
            ))
        made = time.perf_counter() - t0
        report = SampleReport(
            lab_name="Benchmark lab", sample_id="BENCH-1", patient_id="P-0", operator="bench",
            reviewer="Reviewer", signed_off_at=None, created_at="2026-01-01T00:00:00+00:00",
            images=images, model=ReportModelInfo("bench", "0", "0" * 64, PreprocessConfig()),
        )

        heatmap_fn = None
        if args.heatmaps:
            from engine.io.images import load_image

            def heatmap_fn(path):
                rgb = load_image(path)
                rgb[..., 0] = np.maximum(rgb[..., 0], 128)
                return rgb

        rss_before = peak_rss_mb()
        out = Path(tmp) / "report.pdf"
        t0 = time.perf_counter()
        write_pdf(report, out, heatmap_fn=heatmap_fn)
        seconds = time.perf_counter() - t0
        pages = len(PdfReader(str(out)).pages)
        result = {
            "n_images": args.n, "image_px": args.size, "heatmaps": args.heatmaps,
            "seconds": round(seconds, 2), "images_per_second": round(args.n / seconds, 1),
            "pages": pages, "pdf_mb": round(out.stat().st_size / 1e6, 2),
            "peak_rss_mb_before": round(rss_before, 1), "peak_rss_mb_after": round(peak_rss_mb(), 1),
            "setup_seconds": round(made, 2),
        }
        if args.keep:
            args.keep.write_bytes(out.read_bytes())
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
