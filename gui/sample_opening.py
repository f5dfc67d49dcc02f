"""Opening samples: folders and loose files scanned in the worker pool, grouped into samples, named.

:class:`SampleOpening` is a mixin of :class:`gui.samples.SamplesPanel`. It scans what the person
opened (off the GUI thread: a network folder can take a while to list), makes one sample per folder
(or, if the person agrees, one per sub-folder of images: :func:`gui.workbench.sample_folders`), names
loose files as the CLI does (:mod:`engine.store.naming`), and hands each new sample to the panel's
list. It also answers whether a folder is open already and which sample ID is still free.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from engine.io.images import ScanResult, scan_paths
from gui.workbench import Sample, SampleImage, sample_folders
from gui.workers import PRIORITY_BACKGROUND

if TYPE_CHECKING:
    from PySide6.QtCore import SignalInstance

    from gui.workers import WorkerPool


def scan_sample_paths(paths: list[Path]) -> ScanResult:
    """Worker-thread wrapper (a network folder can take a while to list)."""
    return scan_paths(paths)


class SampleOpening:
    """Scanning opened paths into samples, mixed into :class:`gui.samples.SamplesPanel`."""

    # What the panel provides.
    workers: WorkerPool
    samples: list[Sample]
    default_operator: str
    confirm_split: Callable[[Path, list[Path]], bool]
    status_message: SignalInstance
    add_sample: Callable[..., Sample]
    select_sample: Callable[[Sample], None]

    def find_sample(self, folder: Path) -> Sample | None:
        folder = Path(folder).resolve()
        for sample in self.samples:
            if sample.folder is not None and sample.folder.resolve() == folder:
                return sample
        return None

    def unique_sample_id(self, base: str, *, exclude: Sample | None = None) -> str:
        taken = {s.sample_id for s in self.samples if s is not exclude}
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base} ({n})", n + 1
        return candidate

    def open_paths(self, paths: list[str | Path]) -> None:
        """Add one sample per folder; loose image files become one sample named after their common
        folder, or "loose-files" (:mod:`engine.store.naming`, as the CLI names them). The folders
        are scanned in the worker pool; samples appear when scanned."""
        folders = [Path(p) for p in paths if Path(p).is_dir()]
        files = [Path(p) for p in paths if not Path(p).is_dir()]
        for folder in folders:
            existing = self.find_sample(folder)
            if existing is not None:
                self.select_sample(existing)
                self.status_message.emit(f"{folder} is already open as sample {existing.sample_id}.")
                continue
            self._scan([folder], folder)
        if files:
            self._scan(files, None)

    def _scan(self, paths: list[Path], folder: Path | None) -> None:
        where = str(folder) if folder is not None else f"{len(paths)} file(s)"
        self.status_message.emit(f"Scanning {where}…")
        self.workers.submit(
            scan_sample_paths, paths, priority=PRIORITY_BACKGROUND, name="scan",
            on_result=lambda result: self._on_scanned(paths, folder, result),
        )

    def _on_scanned(self, paths: list[Path], folder: Path | None, result: ScanResult) -> None:
        from engine.store.naming import loose_files_folder, sample_name

        sample_folder = folder
        if folder is None:  # files picked one by one: their common folder, if they have one (as the CLI)
            common = loose_files_folder(result.images or paths)
            sample_folder = Path(common) if common else None
        base = sample_folder if sample_folder is not None else paths[0].parent
        if not result.images:
            self.status_message.emit(
                f"No images found in {base}"
                + (f" ({len(result.skipped)} other file(s) skipped)" if result.skipped else "") + ".")
            return
        if folder is not None and self.find_sample(folder) is not None:
            return  # opened twice in quick succession
        parts = sample_folders(folder, result.images) if folder is not None else []
        if parts and self.confirm_split(folder, [p for p, _ in parts]):
            for sub, images in parts:
                if self.find_sample(sub) is None:
                    self.add_sample(Sample(sample_id=self.unique_sample_id(sample_name(sub)), folder=sub,
                                           images=[SampleImage(p) for p in images], operator=self.default_operator),
                                    select=sub == parts[0][0])
            return
        sample = Sample(
            sample_id=self.unique_sample_id(sample_name(sample_folder if sample_folder is not None else "")),
            folder=sample_folder,
            images=[SampleImage(p) for p in result.images],
            operator=self.default_operator,
            skipped=result.skipped,
        )
        self.add_sample(sample)
