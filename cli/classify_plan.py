"""What a ``classify`` run reads and writes besides the results: the samples its inputs make
(names by :mod:`engine.store.naming`) and where its PDF reports and heat maps go, known before
the run so that :mod:`cli.outputs` can check them against the inputs and each other.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.store.naming import image_key


# ------------------------------------------------------------------------------------ samples
@dataclass
class SampleGroup:
    """The images of one sample in this run, in scan order."""

    sample_id: str
    folder: str
    from_folder: bool
    paths: list[Path] = field(default_factory=list)


def group_samples(inputs: list[str], images: list[Path] | tuple[Path, ...]) -> list[SampleGroup]:
    """Split the scanned images into samples (names by :mod:`engine.store.naming`).

    Each folder INPUT is a sample named after the folder; an image belongs to the first folder
    INPUT (in command-line order) that contains it. The remaining images (files named directly)
    form one sample named after their common parent folder, or :data:`LOOSE_SAMPLE_ID` when they
    lie in different folders. Two folders of the same name are two samples; with a result store,
    :meth:`~engine.store.results.ResultStore.register_sample` names the second ``NAME (2)``.
    """
    from engine.store.naming import loose_files_folder, sample_name

    roots = [Path(raw) for raw in inputs if os.path.isdir(raw)]
    groups: dict[str, SampleGroup] = {}
    loose: list[Path] = []
    for path in images:
        root = next((r for r in roots if _within(path, r)), None)
        if root is None:
            loose.append(path)
            continue
        folder = image_key(root)
        group = groups.get(folder)
        if group is None:
            group = groups[folder] = SampleGroup(sample_name(folder), folder, True)
        group.paths.append(path)
    if loose:
        parent = loose_files_folder(loose)
        group = groups.get(parent) if parent else None
        if group is None:
            group = groups[parent or "\0loose"] = SampleGroup(sample_name(parent), parent, False)
        group.paths.extend(loose)
    return list(groups.values())


def _within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


# ------------------------------------------------------------------------------------ reports
def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "sample"


def report_targets(report: Path, sample_ids: list[str]) -> dict[str, Path]:
    """One PDF per sample: ``report`` itself for a single sample, else
    ``<stem>-<sample_id><suffix>`` beside it."""
    if len(sample_ids) <= 1:
        return {sid: report for sid in sample_ids}
    out: dict[str, Path] = {}
    used: set[str] = set()
    suffix = report.suffix or ".pdf"
    for sid in sample_ids:
        name, n = f"{report.stem}-{_safe_name(sid)}", 1
        while name.lower() in used:
            n += 1
            name = f"{report.stem}-{_safe_name(sid)}-{n}"
        used.add(name.lower())
        out[sid] = report.with_name(name + suffix)
    return out


# ---------------------------------------------------------------------------------- heat maps
def heatmap_name(folder: Path, stem: str, used: set[str]) -> Path:
    """``<stem>_gradcam.png``, with ``_2``, ``_3``... when two inputs share a stem (compared
    case-folded: ``A`` and ``a`` are one file on Windows and macOS)."""
    name, n = f"{stem}_gradcam.png", 1
    while name.casefold() in used:
        n += 1
        name = f"{stem}_{n}_gradcam.png"
    used.add(name.casefold())
    return folder / name


def heatmap_targets(folder: Path, images: list[Path] | tuple[Path, ...]) -> dict[str, Path]:
    """The heat-map file of each image (by :func:`~engine.store.naming.image_key`), named in scan
    order by :func:`heatmap_name`: known before the run, so that it can be checked against the
    inputs, and the same whichever images fail."""
    used: set[str] = set()
    out: dict[str, Path] = {}
    for path in images:
        key = image_key(path)
        if key not in out:
            out[key] = heatmap_name(folder, path.stem, used)
    return out
