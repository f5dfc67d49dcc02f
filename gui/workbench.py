"""The desktop workflow without the widgets: who acts, the open samples, their place in the result
store, review, sign-off and reopening. Qt-free (an import-linter contract keeps it so) and tested
without Qt (tests/gui/test_workbench.py); :class:`gui.main_window.MainWindow` and the flows it
owns (:mod:`gui.samples_flow`, :mod:`gui.classify_flow`, :mod:`gui.sign_off_flow`) ask the person
(names, reasons, files), call a :class:`Workbench` method and show what it returns or raises.

The rules themselves live in the engine: sample naming in :mod:`engine.store.naming` and
:meth:`~engine.store.results.ResultStore.register_sample`, what blocks a sign-off in
:func:`engine.core.records.sign_off_blockers`, classification in
:mod:`engine.workflow.classification`. This module decides what the app does with them: which
open sample is which stored one, what a sample's status note says, when Classify is refused,
and who the window acts as (:func:`starting_identity`, :func:`refusal`): the OS login unless the
lab requires ALLSight accounts, then the account signed in; every change is recorded under that
identity's ``user`` (the store refuses what its role may not do, whatever the window shows).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.core.errors import AllSightError
from engine.core.identity import ROLE_PERMISSIONS, Identity, Permission, Role, os_identity
from engine.core.jobs import JobState
from engine.core.records import sign_off_statement
from engine.store.naming import image_key
from engine.store.review import UNCHECKED

if TYPE_CHECKING:
    from engine.core.records import ReviewedImage
    from engine.io.images import SkippedFile
    from engine.store.results import ResultStore
    from engine.store.results import Sample as StoredSample

PENDING, READY, UNREADABLE = "pending", "ready", "unreadable"

#: What a store-changing action says while the lab requires accounts and nobody is signed in.
SIGN_IN_FIRST = "Sign in first (File ▸ Sign in…)"


@dataclass(eq=False)
class SampleImage:
    path: Path
    state: str = PENDING
    #: Why the file cannot be used (engine ImageLoadError reason), when ``state == UNREADABLE``.
    error: str | None = None
    #: (width, height) of the full image, once decoded.
    size: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(eq=False)
class Sample:
    """One patient sample as the app shows it: a folder of smear images plus the IDs typed by
    the operator. Its stored counterpart (once classified) is ``store_id`` in the result store."""

    sample_id: str
    folder: Path | None
    images: list[SampleImage] = field(default_factory=list)
    patient_id: str = ""
    operator: str = ""
    #: Files in the folder that are not images (by extension), as reported by the scan.
    skipped: tuple[SkippedFile, ...] = ()
    #: The sample's id in the result store (None until registered; follows renames).
    store_id: str | None = None
    #: Set when the store says the sample is signed off (no edits until reopened).
    signed_off_by: str | None = None
    signed_off_at: str | None = None
    #: Loaded from the result history at start-up (not opened in this session).
    from_history: bool = False
    #: A short state shown after the name in the sample list ("12/40 classified", "signed off").
    status_note: str = ""

    @property
    def signed_off(self) -> bool:
        return self.signed_off_at is not None

    @property
    def unreadable_count(self) -> int:
        return sum(1 for im in self.images if im.state == UNREADABLE)

    def image_keys(self) -> list[str]:
        """The store's keys of the sample's images, in order."""
        return [image_key(im.path) for im in self.images]


class StoreUnavailable(AllSightError):
    """The result store could not be opened, so nothing can be recorded."""


@dataclass(frozen=True)
class HistoryEntry:
    """A stored sample read at start-up: its image paths and how many the active model has left."""

    sample: StoredSample
    paths: tuple[str, ...]
    pending: int | None


@dataclass(frozen=True)
class HistoryMerge:
    """What the stored history means for the samples open now."""

    #: (open sample, its stored record): opened before the history arrived, it *is* that sample.
    adopted: tuple[tuple[Sample, StoredSample], ...] = ()
    #: Stored samples not open: listed as history.
    added: tuple[Sample, ...] = ()


@dataclass(frozen=True)
class Registration:
    """What registering an open sample did (nothing: it was registered already)."""

    #: A stored sample was made for it.
    created: bool = False
    #: It is a sample stored before (the same folder): it took that sample's IDs and state.
    adopted: bool = False
    #: For the person ("" when there is nothing to say): e.g. the ID it was saved under.
    note: str = ""


def history_note(n_images: int, pending: int | None) -> str:
    """A stored sample's note in the list, from how many images the active model has left."""
    if pending is None or not n_images or pending >= n_images:
        return ""
    return f"{n_images - pending}/{n_images} classified" if pending else "classified"


def note_after_job(state: JobState, done: int, total: int, left_to_review: int | None) -> str:
    """A sample's note once its batch job ended."""
    if state == JobState.DONE:
        return f"{left_to_review} to review" if left_to_review else "classified"
    if state == JobState.CANCELLED:
        return f"{done}/{total} classified (stopped)"
    return "failed"


def note_from_results(n_images: int, n_pending: int, n_flagged_unreviewed: int) -> str:
    """A sample's note from its stored results."""
    if n_pending:
        return f"{n_images - n_pending}/{n_images} classified"
    return f"{n_flagged_unreviewed} to review" if n_flagged_unreviewed else "reviewed"


def stop_question(label: str, done: int, total: int, n_queued: int, *, quitting: bool) -> str:
    """What stopping a running classification means, asked before Quit, close or Cancel: what
    is saved, that it resumes, and what happens to the samples queued behind it."""
    left = max(0, total - done)
    lines = [f"Sample {label} is being classified: {done} of {total} images done." if total
             else f"Sample {label} is being classified."]
    lines.append("Every result so far is saved. Classifying the sample again resumes"
                 + (f" with the {left} image(s) left." if total else " where it stopped."))
    if n_queued:
        lines.append(f"{n_queued} more sample(s) in the queue will not be classified now"
                     + (" (the queue is not kept when ALLSight closes)." if quitting else "; Start carries on with them."))
    return "\n\n".join(lines)


def sample_folders(folder: Path, images: Sequence[Path]) -> list[tuple[Path, list[Path]]]:
    """The sub-folders of ``folder`` that each hold images, with their images, when ``folder``
    itself holds none directly and at least two sub-folders do: a folder of sample folders (a
    day's work), which the app offers to open as one sample per sub-folder. Otherwise ``[]``."""
    groups: dict[Path, list[Path]] = {}
    for path in images:
        try:
            first = path.relative_to(folder).parts[0]
        except (ValueError, IndexError):
            return []
        if len(path.relative_to(folder).parts) == 1:
            return []  # an image directly in the folder: it is one sample
        groups.setdefault(folder / first, []).append(path)
    return sorted(groups.items()) if len(groups) >= 2 else []


def export_stem(sample: Sample) -> str:
    """The report's suggested file name (without suffix): the sample ID, made safe for a file system."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in sample.sample_id)
    return f"{safe}_report"


# ---------------------------------------------------------------------- who acts
def starting_identity(store: ResultStore | None) -> Identity | None:
    """Who the window acts as when it opens (or after a sign-out): the OS login, unless the
    store requires ALLSight accounts; then the account signed in on it, or ``None`` (nobody:
    every change is refused until someone signs in)."""
    if store is None or not store.accounts_required:
        return os_identity()
    user = store.user
    return user if user is not None and user.via == "password" else None


def roles_allowed(permission: Permission) -> str:
    """The roles that may take an action, for people: "a reviewer or administrator account"."""
    roles = [r.value for r in Role if permission in ROLE_PERMISSIONS[r]]
    article = "an" if roles and roles[0][0] in "aeiou" else "a"
    return f"{article} {' or '.join(roles)} account"


def refusal(identity: Identity | None, permission: Permission) -> str:
    """Why ``identity`` may not take an action needing ``permission`` ("" when it may): the
    window's tooltips and messages; the store applies the same rule itself."""
    if identity is None:
        return SIGN_IN_FIRST
    if not identity.may(permission):
        return f"Needs {roles_allowed(permission)} (signed in: {identity.name}, {identity.role.value})"
    return ""


def identity_status(identity: Identity | None) -> str:
    """The status bar's line about who acts."""
    if identity is None:
        return "Not signed in: File ▸ Sign in…"
    return f"Signed in: {identity.describe()}"


class Workbench:
    """The open samples' dealings with the result store (``store`` None: it could not be
    opened, ``store_error`` says why; classification and review are then refused)."""

    def __init__(self, store: ResultStore | None, store_error: str | None = None):
        self.store = store
        self.store_error = store_error

    def _store(self) -> ResultStore:
        if self.store is None:
            raise StoreUnavailable(f"The result history cannot be used, so results could not be saved: "
                                   f"{self.store_error}")
        return self.store

    # ------------------------------------------------------------------ history
    def read_history(self, model_sha256: str | None) -> list[HistoryEntry]:
        """Every stored sample (runs in a worker thread: the store is thread-safe)."""
        store = self._store()
        out = []
        for s in store.list_samples():
            paths = tuple(im.path for im in store.images(s.sample_id))
            pending = len(store.pending_paths(s.sample_id, model_sha256)) if model_sha256 else None
            out.append(HistoryEntry(s, paths, pending))
        return out

    @staticmethod
    def merge_history(entries: Iterable[HistoryEntry], open_samples: Sequence[Sample]) -> HistoryMerge:
        """Match the stored samples with the open ones (by store id, then by folder)."""
        by_folder = {s.folder.resolve(): s for s in open_samples if s.folder is not None}
        known = {s.store_id for s in open_samples if s.store_id is not None}
        adopted, added = [], []
        for entry in entries:
            stored = entry.sample
            if stored.sample_id in known:
                continue
            open_sample = by_folder.get(Path(stored.folder).resolve()) if stored.folder else None
            if open_sample is not None and open_sample.store_id is None:
                adopted.append((open_sample, stored))
                continue
            sample = Sample(sample_id=stored.sample_id, folder=Path(stored.folder) if stored.folder else None,
                            images=[SampleImage(Path(p)) for p in entry.paths],
                            patient_id=stored.patient_id, operator=stored.operator, store_id=stored.sample_id,
                            signed_off_by=stored.signed_off_by, signed_off_at=stored.signed_off_at,
                            from_history=True, status_note=history_note(len(entry.paths), entry.pending))
            added.append(sample)
        return HistoryMerge(tuple(adopted), tuple(added))

    @staticmethod
    def adopt(sample: Sample, stored: StoredSample) -> None:
        """The open sample is the stored one: take its IDs and sign-off state."""
        sample.sample_id = sample.store_id = stored.sample_id
        sample.patient_id = stored.patient_id or sample.patient_id
        sample.operator = stored.operator or sample.operator
        sample.signed_off_by, sample.signed_off_at = stored.signed_off_by, stored.signed_off_at

    # ------------------------------------------------------------------ registration and IDs
    def register(self, sample: Sample, open_samples: Sequence[Sample], operator: str, *,
                 actor: str = "") -> Registration:
        """Give the sample its stored sample (first classification), recorded under ``actor``;
        ``operator`` is the sample's when it has none (who prepared it: a description, not who
        acts). Raises StoreUnavailable, StoreError or PermissionDenied."""
        if sample.store_id is not None:
            return Registration()
        folder = image_key(sample.folder) if sample.folder is not None else ""
        # IDs of the other open samples are taken: two open samples never share a stored one.
        taken = {t for s in open_samples if s is not sample for t in (s.sample_id, s.store_id) if t}
        stored, created = self._store().register_sample(
            sample.sample_id, folder, patient_id=sample.patient_id, operator=sample.operator or operator, taken=taken,
            actor=actor)
        if not created:
            self.adopt(sample, stored)
            return Registration(adopted=True)
        note = ""
        if stored.sample_id != sample.sample_id:
            note = f"Sample ID {sample.sample_id} is already in the result history; saved as {stored.sample_id}."
            sample.sample_id = stored.sample_id
        sample.store_id, sample.operator = stored.sample_id, stored.operator
        return Registration(note=note, created=True)

    def save_ids(self, sample: Sample, actor: str) -> bool:
        """Store the IDs and operator typed for a registered sample (audited by the store under
        ``actor``). True when something changed; when the store refuses (a StoreError, or
        PermissionDenied: nobody signed in, or a role that may not) the sample gets its stored
        values back and the error is raised."""
        if sample.store_id is None or self.store is None:
            return False
        stored = self.store.get_sample(sample.store_id)
        if stored is None:
            return False
        changes: dict[str, str] = {}
        if sample.sample_id != stored.sample_id:
            changes["new_sample_id"] = sample.sample_id
        if sample.patient_id != stored.patient_id:
            changes["patient_id"] = sample.patient_id
        if sample.operator != stored.operator:
            changes["operator"] = sample.operator
        if not changes:
            return False
        try:
            updated = self.store.update_sample(sample.store_id, actor=actor, **changes)
        except AllSightError:
            sample.sample_id, sample.patient_id, sample.operator = (stored.sample_id, stored.patient_id,
                                                                    stored.operator)
            raise
        sample.store_id = updated.sample_id
        return True

    # ------------------------------------------------------------------ classification
    @staticmethod
    def classify_refusal(sample: Sample | None) -> str:
        """Why Classify cannot start for this sample ("" when it can; the model is the window's
        business)."""
        if sample is None:
            return "Open or select a sample first."
        if sample.signed_off:
            return f"Sample {sample.sample_id} is signed off; reopen it to classify it again."
        if not sample.images:
            return f"Sample {sample.sample_id} has no images."
        return ""

    # ------------------------------------------------------------------ results, review, sign-off
    def read_records(self, sample: Sample) -> list[ReviewedImage]:
        """The sample's latest prediction per image with its current review (worker thread)."""
        return self._store().predictions(self._store_id(sample))

    def refresh_sign_state(self, sample: Sample) -> None:
        """Take the sign-off state from the store (another workstation may have changed it)."""
        if sample.store_id is None or self.store is None:
            return
        stored = self.store.get_sample(sample.store_id)
        if stored is not None:
            sample.signed_off_by, sample.signed_off_at = stored.signed_off_by, stored.signed_off_at

    @staticmethod
    def _store_id(sample: Sample) -> str:
        if sample.store_id is None:
            raise AllSightError(f"Sample {sample.sample_id} has not been classified yet.")
        return sample.store_id

    def review(self, sample: Sample, path: str, final_class: str | None, reviewer: str, via: str = "",
               seen: object = UNCHECKED) -> str:
        """Record the reviewer's class for one image (None: withdraw its review); the time it
        was recorded (as stored). ``via``: the view it was made in (``"label_next"``). ``seen``:
        the review time the reviewer was shown (None: not reviewed; by default not checked); another workstation's change
        since raises :class:`engine.store.errors.ReviewConflictError` and writes nothing."""
        return self._store().record_review(self._store_id(sample), path, final_class, reviewer, via=via, seen=seen)

    def sign_off_statement(self, sample: Sample) -> str:
        """The sentence the reviewer is asked to sign for ``sample``, from its stored records
        (:func:`engine.core.records.sign_off_statement`: the CLI and the report say the same)."""
        store_id = self._store_id(sample)
        return sign_off_statement(store_id, self._store().predictions(store_id))

    def sign_off(self, sample: Sample, reviewer: str, statement: str, require_independent: bool = False, *,
                 password: str | None = None) -> None:
        """Sign the sample off, recording the ``statement`` the reviewer agreed to (the store
        refuses with a SignOffError naming its blockers, an empty statement, or, with
        ``require_independent`` or the lab policy's rule, a reviewer who classified images of
        the sample; once accounts are required, with AuthenticationError unless ``password`` is
        the signed-in reviewer's)."""
        stored = self._store().sign_off(self._store_id(sample), reviewer, statement,
                                        require_independent_reviewer=require_independent, password=password)
        sample.signed_off_by, sample.signed_off_at = stored.signed_off_by, stored.signed_off_at

    def reopen(self, sample: Sample, actor: str, reason: str) -> None:
        """Reopen a signed-off sample; the reason goes to the audit log."""
        if not reason.strip():
            raise AllSightError("Not reopened: a reason is required.")
        self._store().reopen(self._store_id(sample), actor, reason)
        sample.signed_off_by = sample.signed_off_at = None


__all__ = [
    "PENDING", "READY", "SIGN_IN_FIRST", "UNREADABLE", "HistoryEntry", "HistoryMerge", "Registration", "Sample",
    "SampleImage", "StoreUnavailable", "Workbench", "export_stem", "history_note", "identity_status", "note_after_job",
    "note_from_results", "refusal", "roles_allowed", "sample_folders", "starting_identity", "stop_question",
]
