"""The lab's labelled images for retraining: where each comes from, what cannot train, and a
validation split that never puts one patient on both sides.

Three sources (:class:`Source`), used alone or together by the retraining wizard and by
``main.py train --from-store``:

* **store** — the lab's own reviews: the final class of every *reviewed* image of every
  *signed-off* sample in the result database (an image excluded by its reviewer is left out; so is
  one whose file no longer has the content that was reviewed). Its group is the sample: a patient.
* **folder** — labelled class folders (``Benign/ Early/ Pre/ Pro/``), grouped into contiguous
  blocks of each class's file numbering (neighbouring numbers tend to share a patient).
* **development** — the original development set, where the lab has it (for replay against
  forgetting), grouped like a folder.

:func:`check` says what cannot train, as :class:`Problem` records with a code and one sentence:
a class missing or too small, unknown class folders, unreadable files (listed; ``blocking`` is
False for those — the person may choose to skip them), the same image (by content) on both sides
of the split. :func:`split` holds validation out by group, never by image.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine import CLASS_IDS
from engine.core.errors import DataLayoutError
from engine.core.label_next import VIA_LABEL_NEXT
from engine.io.images import natural_key, scan_paths
from engine.training.data import Sample, class_folders

if TYPE_CHECKING:
    from engine.store.results import ResultStore

#: Fewest images a class needs in training, and in validation, to be trained and checked at all.
MIN_TRAIN_PER_CLASS = 8
MIN_VAL_PER_CLASS = 2
#: Blocks per class of folder data (as the development set's block split).
N_BLOCKS = 10


class Source(StrEnum):
    STORE = "store"
    FOLDER = "folder"
    DEVELOPMENT = "development"


class ProblemCode(StrEnum):
    NO_SIGNED_OFF_SAMPLES = "no_signed_off_samples"
    UNKNOWN_FOLDER = "unknown_folder"
    UNREADABLE = "unreadable"
    CHANGED_SINCE_REVIEW = "changed_since_review"
    CLASS_MISSING = "class_missing"
    CLASS_TOO_SMALL = "class_too_small"
    DUPLICATE_ACROSS_SPLIT = "duplicate_across_split"


@dataclass(frozen=True)
class Problem:
    code: ProblemCode
    message: str
    paths: tuple[str, ...] = ()
    #: True: training cannot start. False: the listed files can be skipped if the person says so.
    blocking: bool = True


@dataclass(frozen=True)
class LabImage:
    path: Path
    label: int  # index into CLASS_IDS
    source: Source
    #: What must stay on one side of the split: the sample (store) or a block of numbering (folders).
    group: str
    sha256: str | None = None
    #: Its current review was made in Label next (engine.core.label_next).
    via_label_next: bool = False

    @property
    def class_id(self) -> str:
        return CLASS_IDS[self.label]


def _digest(path: Path) -> str | None:
    from engine.store.identity import hash_file

    return hash_file(path)


def from_store(store: ResultStore) -> tuple[list[LabImage], list[Problem]]:
    """Every reviewed, not excluded image of every signed-off sample, labelled with its final class."""
    images: list[LabImage] = []
    changed: list[str] = []
    signed = [s for s in store.list_samples() if s.signed_off]
    latest_via: dict[str, str] = {}  # image path -> the view its latest review was made in
    for entry in store.audit(action="record_review"):
        if entry.path is not None:
            latest_via[entry.path] = str(entry.details.get("via", ""))
    if not signed:
        return [], [Problem(ProblemCode.NO_SIGNED_OFF_SAMPLES,
                            f"the result database {store._db.name} has no signed-off samples: only the reviews of "
                            "signed-off samples are used for training")]
    for sample in signed:
        for r in store.predictions(sample.sample_id):
            if r.final_class not in CLASS_IDS:  # not reviewed, excluded, or withdrawn
                continue
            path = Path(r.path)
            if r.image_sha256 is None or _digest(path) != r.image_sha256:
                changed.append(str(path))
                continue
            images.append(LabImage(path, CLASS_IDS.index(r.final_class), Source.STORE, f"sample:{sample.sample_id}",
                                   r.image_sha256, latest_via.get(r.path) == VIA_LABEL_NEXT))
    problems = []
    if changed:
        problems.append(Problem(ProblemCode.CHANGED_SINCE_REVIEW,
                                f"{len(changed)} reviewed image(s) are missing or no longer the file that was "
                                "reviewed; they are left out", tuple(changed), blocking=False))
    return images, problems


def _block_groups(samples: Sequence[Sample], prefix: str) -> list[str]:
    """Each sample's contiguous block of its class's numbering (N_BLOCKS per class)."""
    groups = [""] * len(samples)
    for label in {s.label for s in samples}:
        idx = sorted((i for i, s in enumerate(samples) if s.label == label),
                     key=lambda i: (samples[i].number, natural_key(samples[i].path)))
        for b, block in enumerate(np.array_split(np.arange(len(idx)), min(N_BLOCKS, len(idx)))):
            for k in block:
                groups[idx[k]] = f"{prefix}:{CLASS_IDS[label]}:{b}"
    return groups


def from_folder(root: str | Path, source: Source = Source.FOLDER) -> tuple[list[LabImage], list[Problem]]:
    """The images of a class-folder data set; unknown class folders and unreadable files are problems."""
    root = Path(root)
    folders, unknown = class_folders(root)
    problems = []
    if unknown:
        problems.append(Problem(ProblemCode.UNKNOWN_FOLDER,
                                f"{root}: unknown class folder(s) {', '.join(unknown)}; expected only "
                                f"{', '.join(CLASS_IDS)} (rename or remove them)", tuple(str(root / u) for u in unknown)))
    samples = [Sample(p, label) for sub, label in folders for p in scan_paths([sub]).images]
    images, unreadable = [], []
    for sample, group in zip(samples, _block_groups(samples, f"{source.value}:{root.name}"), strict=True):
        digest = _digest(sample.path)
        if digest is None or not _decodes(sample.path):
            unreadable.append(str(sample.path))
            continue
        images.append(LabImage(sample.path, sample.label, source, group, digest))
    if unreadable:
        problems.append(Problem(ProblemCode.UNREADABLE, f"{len(unreadable)} file(s) under {root} cannot be read as "
                                "images", tuple(unreadable), blocking=False))
    return images, problems


def _decodes(path: Path) -> bool:
    from engine.core.errors import ImageLoadError
    from engine.io.images import load_image

    try:
        load_image(path)
    except ImageLoadError:
        return False
    return True


def split(images: Sequence[LabImage], val_fraction: float = 0.2, seed: int = 0
          ) -> tuple[tuple[LabImage, ...], tuple[LabImage, ...]]:
    """``(train, validation)``: whole groups (samples, blocks) dealt to validation per source and
    class of the group's majority, seeded, until about ``val_fraction`` of each is held out."""
    if not 0 < val_fraction < 1:
        raise DataLayoutError(f"the validation share must be between 0 and 1, got {val_fraction}")
    rng = np.random.default_rng(seed)
    by_group: dict[str, list[LabImage]] = {}
    for im in images:
        by_group.setdefault(im.group, []).append(im)
    strata: dict[tuple[Source, int], list[str]] = {}
    for g, members in sorted(by_group.items()):
        label = Counter(m.label for m in members).most_common(1)[0][0]
        strata.setdefault((members[0].source, label), []).append(g)
    held: set[str] = set()
    for groups in strata.values():
        order = [groups[i] for i in rng.permutation(len(groups))]
        total, taken = sum(len(by_group[g]) for g in groups), 0
        for g in order:
            if len(groups) < 2 or taken >= val_fraction * total:
                break
            held.add(g)
            taken += len(by_group[g])
    train = tuple(im for im in images if im.group not in held)
    val = tuple(im for im in images if im.group in held)
    return train, val


def check(train: Sequence[LabImage], val: Sequence[LabImage], *, min_train: int = MIN_TRAIN_PER_CLASS,
          min_val: int = MIN_VAL_PER_CLASS) -> list[Problem]:
    """What stops this split from training: classes missing or too small, and the same image
    content on both sides (a copy of a training image would make validation look better)."""
    problems = []
    n_train, n_val = Counter(im.class_id for im in train), Counter(im.class_id for im in val)
    missing = [c for c in CLASS_IDS if n_train[c] == 0 and n_val[c] == 0]
    if missing:
        problems.append(Problem(ProblemCode.CLASS_MISSING, f"no labelled images of {', '.join(missing)}: every class "
                                "needs images, or the new model would never call it"))
    small = [f"{c} ({n_train[c]} for training, {n_val[c]} for validation)" for c in CLASS_IDS
             if c not in missing and (n_train[c] < min_train or n_val[c] < min_val)]
    if small:
        problems.append(Problem(ProblemCode.CLASS_TOO_SMALL,
                                f"too few images of {'; '.join(small)}: each class needs at least {min_train} for "
                                f"training and {min_val} for validation (held out by sample)"))
    train_hashes = {im.sha256: im for im in train if im.sha256}
    dupes = [f"{im.path} = {train_hashes[im.sha256].path}" for im in val if im.sha256 in train_hashes]
    if dupes:
        problems.append(Problem(ProblemCode.DUPLICATE_ACROSS_SPLIT,
                                f"{len(dupes)} validation image(s) are copies of training images (same content); "
                                "remove the copies", tuple(dupes)))
    return problems


def counts(images: Iterable[LabImage]) -> dict[Source, dict[str, int]]:
    """Images per source and class (every class listed, zeros included), for the Data step."""
    out: dict[Source, dict[str, int]] = {}
    for im in images:
        out.setdefault(im.source, dict.fromkeys(CLASS_IDS, 0))[im.class_id] += 1
    return out


def fingerprint(images: Iterable[LabImage]) -> str:
    """sha256 over the sorted (source, class, content) list: identifies what a model trained on."""
    lines = sorted(f"{im.source.value}/{im.class_id}/{im.sha256 or im.path.name}" for im in images)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


__all__ = ["MIN_TRAIN_PER_CLASS", "MIN_VAL_PER_CLASS", "LabImage", "Problem", "ProblemCode", "Source", "check",
           "counts", "fingerprint", "from_folder", "from_store", "split"]
