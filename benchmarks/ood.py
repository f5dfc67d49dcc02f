"""How often the out-of-distribution flag fires, on in-distribution test images and on images
that differ from the training data in ways a lab will meet.

    python benchmarks/ood.py DATA_DIR [--model resnet18]

In-distribution: the model's own held-out test split (rebuilt from its card). Shifted sets are
made from those same test images (nothing leaves memory): grayscale camera, strong stain hue
shifts, inverted colours, blank/near-uniform frames, heavy defocus, different magnification,
H&E-like pink stain, and synthetic non-smear content (noise, gradients, text-like patterns).
Reports the flagged fraction per set, for the Mahalanobis detector alone and combined with the
image-level checks (which is what the product uses).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.imaging.augment import blur, hue_saturation  # noqa: E402
from engine.inference.classifier import Classifier  # noqa: E402
from engine.io.images import load_image  # noqa: E402
from engine.training.data import split_samples  # noqa: E402


def grayscale(im):
    g = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)
    return np.stack([g] * 3, -1)


def he_pink(im):
    """Recolour like an H&E section: hematoxylin purple-blue nuclei on eosin pink."""
    g = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    pink, purple = np.array([236, 160, 200], np.float32), np.array([90, 40, 140], np.float32)
    return (g[..., None] * pink + (1 - g[..., None]) * purple).astype(np.uint8)


def zoom_out(im):
    small = cv2.resize(im, (im.shape[1] // 3, im.shape[0] // 3), interpolation=cv2.INTER_AREA)
    return np.tile(small, (3, 3, 1))[: im.shape[0], : im.shape[1]]


def zoom_in(im):
    h, w = im.shape[:2]
    return cv2.resize(im[h // 3: 2 * h // 3, w // 3: 2 * w // 3], (w, h), interpolation=cv2.INTER_CUBIC)


def synthetic(kind: str, i: int, size: int = 224) -> np.ndarray:
    rng = np.random.default_rng(i)
    if kind == "noise":
        return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    if kind == "gradient":
        x = np.linspace(0, 255, size, dtype=np.float32)
        c = rng.integers(0, 256, 3)
        return np.clip(x[None, :, None] * (c / 255) + x[:, None, None] * (1 - c / 255), 0, 255).astype(np.uint8)
    if kind == "document":
        img = np.full((size, size, 3), 250, np.uint8)
        for y in range(10, size, 14):
            cv2.putText(img, f"ALL report {rng.integers(1e6)}", (5, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (20, 20, 20), 1)
        return img
    if kind == "blank":
        return np.full((size, size, 3), rng.integers(180, 256, 3), np.uint8)
    raise ValueError(kind)


SHIFTS = {
    "grayscale camera": grayscale,
    "stain hue +40 deg": lambda im: hue_saturation(im, 40),
    "stain hue -40 deg": lambda im: hue_saturation(im, -40),
    "inverted colours": lambda im: 255 - im,
    "H&E-like pink stain": he_pink,
    "slight defocus (sigma 2)": lambda im: blur(im, 2.0),
    "defocus (sigma 3)": lambda im: blur(im, 3.0),
    "heavy defocus (sigma 6)": lambda im: blur(im, 6.0),
    "3x lower magnification": zoom_out,
    "3x higher magnification": zoom_in,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--max-images", type=int, default=300)
    args = parser.parse_args()
    clf = Classifier(args.model, device="cpu")
    samples = split_samples(clf.card, args.data_dir, "test")[: args.max_images]
    raw = [load_image(s.path) for s in samples]
    threshold = clf.ood_threshold

    def rates(images):
        results = clf.classify_arrays(images)
        feature = np.mean([r.ood_score is not None and r.ood_score > threshold for r in results])
        combined = np.mean([r.out_of_distribution for r in results])
        review = np.mean([r.needs_review for r in results])
        return feature, combined, review

    rows = [("in-distribution test images", len(raw), *rates(raw))]
    for name, fn in SHIFTS.items():
        rows.append((name, len(raw), *rates([fn(im) for im in raw])))
    for kind in ("noise", "gradient", "document", "blank"):
        imgs = [synthetic(kind, i) for i in range(50)]
        rows.append((f"non-smear: {kind}", len(imgs), *rates(imgs)))
    print(f"model {clf.card.id} {clf.card.version}; Mahalanobis threshold {threshold:.1f}\n")
    print("| image set | n | flagged by feature distance | flagged OOD (product) | needs review |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, n, feature, combined, review in rows:
        print(f"| {name} | {n} | {feature * 100:.1f} % | {combined * 100:.1f} % | {review * 100:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
