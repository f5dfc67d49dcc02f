"""Labelled datasets in class folders, their validation, fingerprints and splits.

A dataset is a folder with one sub-folder per class (``Benign/ Early/ Pre/ Pro/``, any case).
Two splits are offered: ``random`` (stratified by class) and ``block``, which assigns
contiguous runs of each class's file numbering to train/val/test. Neighbouring numbers tend to
come from the same patient, so ``block`` is the closer stand-in for unseen patients.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import CLASS_IDS
from engine.core.errors import DataLayoutError, ImageLoadError
from engine.core.progress import CancelToken, Progress
from engine.imaging.preprocess import crop_and_resize
from engine.io.images import load_image, natural_key, scan_paths

_NUMBER = re.compile(r"(\d+)(?!.*\d)")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # index into CLASS_IDS

    @property
    def number(self) -> int:
        """The last number in the file name (the dataset's own numbering), -1 if none."""
        m = _NUMBER.search(self.path.stem)
        return int(m.group(1)) if m else -1


@dataclass(frozen=True)
class Dataset:
    root: Path
    classes: tuple[str, ...]
    samples: tuple[Sample, ...]

    def counts(self) -> dict[str, int]:
        return {c: sum(1 for s in self.samples if s.label == i) for i, c in enumerate(self.classes)}

    def fingerprint(self) -> str:
        """sha256 over the sorted 'class/file name' list: identifies the data a model saw."""
        lines = sorted(f"{self.classes[s.label]}/{s.path.name}" for s in self.samples)
        return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def class_folders(root: str | Path, classes: Sequence[str] = CLASS_IDS) -> tuple[list[tuple[Path, int]], list[str]]:
    """``([(class folder, label), ...], [unknown folder names])`` under ``root`` (any case, hidden
    folders ignored, natural order); :class:`DataLayoutError` when ``root`` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise DataLayoutError(f"{root}: not a folder. Expected a folder with one sub-folder per class "
                              f"({', '.join(classes)}).")
    by_lower = {c.lower(): i for i, c in enumerate(classes)}
    subdirs = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=natural_key)
    known = [(p, by_lower[p.name.lower()]) for p in subdirs if p.name.lower() in by_lower]
    return known, [p.name for p in subdirs if p.name.lower() not in by_lower]


def discover_dataset(root: str | Path, classes: Sequence[str] = CLASS_IDS, *, min_classes: int = 2) -> Dataset:
    """Find class folders under ``root`` and their images, or explain what is wrong."""
    root = Path(root)
    folders, unknown = class_folders(root, classes)
    if unknown:
        raise DataLayoutError(
            f"{root}: unknown class folder(s) {', '.join(unknown)}; expected only {', '.join(classes)}."
        )
    samples: list[Sample] = []
    found: list[str] = []
    for sub, label in folders:
        images = scan_paths([sub]).images
        if images:
            found.append(classes[label])
        samples.extend(Sample(p, label) for p in images)
    if not samples:
        raise DataLayoutError(f"{root}: no images found. Expected sub-folders {', '.join(classes)} holding images.")
    if len(found) < min_classes:
        raise DataLayoutError(
            f"{root}: images found for {len(found)} class(es) only ({', '.join(found)}); "
            f"training needs at least {min_classes} of {', '.join(classes)}."
        )
    return Dataset(root, tuple(classes), tuple(samples))


# ------------------------------------------------------------------------------------- splits
SplitName = str  # "train" | "val" | "test"


def split_dataset(
    dataset: Dataset, kind: str, seed: int, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    n_blocks: int = 10,
) -> dict[SplitName, tuple[Sample, ...]]:
    """Stratified train/val/test split; ``kind`` is "random" or "block"."""
    if kind not in ("random", "block"):
        raise DataLayoutError(f"split must be 'random' or 'block', got {kind!r}")
    rng = np.random.default_rng(seed)
    out: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    for label in range(len(dataset.classes)):
        members = sorted((s for s in dataset.samples if s.label == label), key=lambda s: (s.number, s.path.name))
        if not members:
            continue
        if kind == "random":
            order = rng.permutation(len(members))
            members = [members[i] for i in order]
            n_train = round(fractions[0] * len(members))
            n_val = round(fractions[1] * len(members))
            out["train"] += members[:n_train]
            out["val"] += members[n_train:n_train + n_val]
            out["test"] += members[n_train + n_val:]
        else:
            # Contiguous blocks of the numbering, dealt to the splits in a seeded order, so every
            # split sees several stretches of the numbering but never shares a stretch.
            blocks = np.array_split(np.arange(len(members)), n_blocks)
            order = rng.permutation(n_blocks)
            n_train = round(fractions[0] * n_blocks)
            n_val = round(fractions[1] * n_blocks)
            for rank, b in enumerate(order):
                name = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
                out[name] += [members[i] for i in blocks[b]]
    return {k: tuple(v) for k, v in out.items()}


def split_samples(card, data_dir: str | Path, split: str = "test"):
    """Rebuild the split a model was trained with (from its card) and check it is the same one."""
    recipe = card.training.get("recipe", {})
    dataset = discover_dataset(data_dir, card.classes)
    parts = split_dataset(dataset, recipe.get("split", "random"), int(recipe.get("seed", 0)))
    samples = parts[split]
    expected = card.data_fingerprint.get("test_files_sha256")
    if split == "test" and expected:
        got = Dataset(dataset.root, dataset.classes, samples).fingerprint()
        if got != expected:
            raise DataLayoutError(f"{data_dir}: the test split rebuilt from the model card does not match the "
                                  f"files the model was tested on (different data folder?)")
    return samples


# ------------------------------------------------------------------------------------ loading
@dataclass(frozen=True)
class LoadFailure:
    path: Path
    reason: str


def load_resized(
    samples: Sequence[Sample], image_size: int, crop: str, *, workers: int = 2,
    cancel: CancelToken | None = None,
) -> Iterator[Progress | tuple[np.ndarray, list[LoadFailure]]]:
    """Decode and crop/resize every sample to (N, S, S, 3) uint8, yielding progress.

    The last item yielded is ``(array, failures)``; rows of failed files are left black and
    their indices reported in ``failures`` (the caller decides whether that is acceptable).
    """
    array = np.zeros((len(samples), image_size, image_size, 3), np.uint8)
    failures: list[LoadFailure] = []

    def one(i: int) -> LoadFailure | None:
        try:
            array[i] = crop_and_resize(load_image(samples[i].path), image_size, crop)
        except ImageLoadError as exc:
            return LoadFailure(samples[i].path, exc.reason)
        return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        chunk = 64
        for start in range(0, len(samples), chunk):
            if cancel:
                cancel.raise_if_cancelled()
            for result in pool.map(one, range(start, min(len(samples), start + chunk))):
                if result is not None:
                    failures.append(result)
            yield Progress(min(len(samples), start + chunk), len(samples), "loading images")
    yield array, failures
