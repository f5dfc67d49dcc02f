"""What a lab's fine-tune trains and checks on: its labelled images (class folders and/or its
reviewed images from the store, :mod:`engine.training.lab_data`), split by sample or block, and
the replay and reference parts of the original development set where the lab has it.

:func:`lab_training_data` is the one data selection of the retraining wizard and of
``main.py train --init MODEL`` / ``--from-store DB``: it refuses what cannot train (a
:class:`~engine.core.errors.DataLayoutError` listing every blocking problem), skips unreadable
files only when asked to, and never lets the development set's test split into training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.errors import DataLayoutError
from engine.imaging.augment import AugmentConfig
from engine.training import lab_data
from engine.training.data import Sample
from engine.training.lab_data import LabImage, Problem, Source


@dataclass(frozen=True)
class TrainingData:
    """The images of one fine-tune, by role."""

    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    #: The development set's training split, mixed into each epoch (forgetting.epoch_order).
    replay_train: tuple[Sample, ...] = ()
    #: Some of its validation split: model selection and calibration see both labs.
    replay_val: tuple[Sample, ...] = ()
    #: The development set's test split: the compare step's reference, never trained on.
    reference: tuple[Sample, ...] = ()
    fingerprint: Mapping[str, Any] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()


def base_augment(base_card: Any) -> AugmentConfig:
    """The augmentation the base model was trained with (its card's recipe); the standard preset
    when the card does not say."""
    raw = (base_card.training.get("recipe", {}) if base_card is not None else {}).get("augment")
    names = {f.name for f in dataclasses.fields(AugmentConfig)}
    if isinstance(raw, dict) and set(raw) <= names:
        try:
            values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
            return AugmentConfig(**values)
        except (TypeError, ValueError):
            pass
    return AugmentConfig.preset("standard")


def fine_tune_augment(base_card: Any) -> AugmentConfig:
    """A fine-tune's augmentation by default: the standard preset, with the base model's
    background swap (for the shipped ResNet18 0.9), so the call keeps following the white cell.
    Measured (docs/results.md, "A lab's fine-tune"): without the swap a fine-tune relearns the
    background (the swap probe's "follows the cells" fell from 88 to 78 %); with the base's full
    recipe it barely learns the new lab (77 % instead of 86 %)."""
    return dataclasses.replace(AugmentConfig.preset("standard"),
                               p_background_swap=base_augment(base_card).p_background_swap)


def default_distill(replay: bool) -> float:
    """The forgetting guard's distillation weight by default: off when the development set is
    replayed (replay alone guards better and lets the new lab be learned: docs/results.md,
    "A lab's fine-tune"), on when the lab has only its own images."""
    return 0.0 if replay else 1.0


def _samples(images: Sequence[LabImage]) -> tuple[Sample, ...]:
    return tuple(Sample(im.path, im.label) for im in images)


@dataclass(frozen=True)
class Survey:
    """What the Data step shows before anything trains: the images found, their split, and
    every problem (blocking or skippable)."""

    images: tuple[LabImage, ...]
    train: tuple[LabImage, ...]
    val: tuple[LabImage, ...]
    problems: tuple[Problem, ...]

    def counts(self) -> dict[Source, dict[str, int]]:
        return lab_data.counts(self.images)

    def blocking(self, skip_unreadable: bool = False) -> list[Problem]:
        """The problems that stop training (unreadable files only when they are not skipped)."""
        return [p for p in self.problems if p.blocking or not skip_unreadable]


def survey(*, folders: Sequence[str | Path] = (), store: Any = None, val_fraction: float = 0.2,
           seed: int = 0) -> Survey:
    """The lab's images from ``folders`` and/or ``store`` (a ResultStore), split by group
    (sample or block), with every problem found; torch-free (the wizard runs it in the GUI
    process, off the GUI thread)."""
    if not folders and store is None:
        raise DataLayoutError("no labelled data given: name class folders and/or a result database")
    images: list[LabImage] = []
    problems: list[Problem] = []
    for folder in folders:
        found, issues = lab_data.from_folder(folder)
        images += found
        problems += issues
    if store is not None:
        found, issues = lab_data.from_store(store)
        images += found
        problems += issues
    train, val = lab_data.split(images, val_fraction, seed)
    problems += lab_data.check(train, val)
    return Survey(tuple(images), train, val, tuple(problems))


def refusal(problems: Sequence[Problem]) -> str:
    """One message naming every problem, with the files each lists (20 at most)."""
    lines = []
    for p in problems:
        listed = "".join(f"\n    {path}" for path in p.paths[:20])
        more = f"\n    ... and {len(p.paths) - 20} more" if len(p.paths) > 20 else ""
        hint = "" if p.blocking else " (pass --skip-broken to train without them)"
        lines.append(f"  {p.message}{hint}{listed}{more}")
    return "the labelled data cannot train a model:\n" + "\n".join(lines)


def lab_training_data(*, folders: Sequence[str | Path] = (), store: Any = None, replay_dir: str | Path | None = None,
                      base_card: Any = None, val_fraction: float = 0.2, seed: int = 0,
                      skip_unreadable: bool = False, replay_val_images: int = 200) -> TrainingData:
    """The lab's images from ``folders`` and/or ``store`` (a ResultStore), split by group;
    with ``replay_dir`` (the development set) and ``base_card`` (the model fine-tuned, whose card
    names its splits) the replay and reference parts. :class:`DataLayoutError` listing every
    problem that stops training."""
    found = survey(folders=folders, store=store, val_fraction=val_fraction, seed=seed)
    blocking = found.blocking(skip_unreadable)
    if blocking:
        raise DataLayoutError(refusal(blocking))
    images, train, val, problems = found.images, found.train, found.val, found.problems
    replay_train: tuple[Sample, ...] = ()
    replay_val: tuple[Sample, ...] = ()
    reference: tuple[Sample, ...] = ()
    if replay_dir:
        if base_card is None:
            raise DataLayoutError("replaying the development set needs the model it was trained into (--init)")
        from engine.training.data import split_samples

        replay_train = tuple(split_samples(base_card, replay_dir, "train"))
        import numpy as np

        val_all = split_samples(base_card, replay_dir, "val")
        keep = np.random.default_rng(seed).choice(len(val_all), min(replay_val_images, len(val_all)), replace=False)
        replay_val = tuple(val_all[i] for i in sorted(keep))  # a seeded share of every class
        reference = tuple(split_samples(base_card, replay_dir, "test"))
    fp = {"sha256": lab_data.fingerprint(images), "n_images": len(images),
          "n_from_label_next": sum(im.via_label_next for im in images),
          "n_samples": len({im.group for im in images if im.source is Source.STORE}),
          "sources": {str(s): dict(c) for s, c in lab_data.counts(images).items()},
          "split": "by sample (store) / block (folders)", "split_sizes": {"train": len(train), "val": len(val)},
          "replay": {"train": len(replay_train), "val": len(replay_val), "data_dir_name": Path(replay_dir).name}
          if replay_dir else {}}
    return TrainingData(_samples(train), _samples(val), replay_train, replay_val, reference, fp, tuple(problems))


__all__ = ["Survey", "TrainingData", "base_augment", "default_distill", "fine_tune_augment", "lab_training_data", "refusal", "survey"]
