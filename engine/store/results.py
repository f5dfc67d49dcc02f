"""Persistent history of classified samples: an embedded SQLite database (stdlib ``sqlite3``).

A *sample* is one patient's folder of blood-smear images. The store keeps, per sample, the
images (with a sha256 of their content, and the size and mtime that tell when to hash again),
every model prediction (with the sha256 of the content it was made from: one ``ok`` result per
image, model file and content, after any number of errors),
the reviewers' decisions (append-only, kept *beside* the model output, never over it), the
sign-off, and an audit log in which every mutating call writes one row in the same transaction.

Guarantees
----------
* Every write is its own short ``BEGIN IMMEDIATE ... COMMIT`` transaction, committed before the
  call returns: a prediction recorded with :meth:`ResultStore.record_prediction` survives the
  process being killed the moment after. The database runs in WAL mode with
  ``synchronous=NORMAL`` (a committed transaction survives a crash of the application; a power
  loss may lose the last few commits but never corrupts the file).
* Re-running is cheap and safe: :meth:`~ResultStore.add_images` and
  :meth:`~ResultStore.record_prediction` are idempotent, and :meth:`~ResultStore.pending_paths`
  lists what a model has still to do (resume): an image it has no ``ok`` result for *from the
  file's current content*. So an error result is retried on the next run, and a file replaced
  after it was classified (``add_images`` notices: size or mtime changed, then the sha256) is
  classified again; the old results stay in the history.
* Only regular files are read, never more than :data:`MAX_HASHED_FILE_BYTES`: a pipe, a device
  or a link to one is recorded without a hash and never blocks (:func:`hash_file`).
* A file that is not an ALLSight result database (another application's SQLite file, a JPEG) is
  refused with a :class:`StoreError` before anything is written to it
  (:func:`engine.store.schema.recognise`).
* A signed-off sample is frozen: nothing about it changes until :meth:`~ResultStore.reopen`; its
  images whose file changed on disk since are reported by :meth:`~ResultStore.changed_images`.

Threading model
---------------
One :class:`ResultStore` holds **one** connection opened with ``check_same_thread=False`` and
serialises every call on it with a re-entrant lock. Any thread may call any method: the GUI may
write from worker threads and read from the GUI thread through the same object. Calls are short
(file hashing happens outside the lock), so a reader waits at most for one small transaction.
Several processes (the GUI and a ``classify --db`` run) may open the same file at once: SQLite's
own locking plus a busy timeout handles that.

The file format carries a schema version (``PRAGMA user_version``). Opening an older file runs
the migrations in :data:`MIGRATIONS`; a file written by a newer ALLSight is refused with a
:class:`StoreError` rather than guessed at.

Modules
-------
This module opens the file and is the one entry point; each group of methods delegates to the
functions of the same names in a module of its own, run on the store's locked connection
(:class:`engine.store.database.Database`): :mod:`engine.store.samples` (creating and naming
samples), :mod:`engine.store.images` (adding files, noticing changed ones),
:mod:`engine.store.predictions` (model results, resume), :mod:`engine.store.review` (reviews,
sign-off, reopen); the administration methods (backup, the lab's shared models, the
workstations' database account) are the mixin :class:`engine.store.lab_administration.LabAdministration`.
The records handed out are in :mod:`engine.store.records`; what is read of an
image file (sha256, size, mtime) is :mod:`engine.store.identity`; the audit log's hash chain is
:mod:`engine.store.audit`. The names other modules import from here are re-exported (``__all__``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from engine.core.identity import AuthenticationError, Identity, Permission
from engine.core.paths import user_dir
from engine.core.records import EXCLUDED_CLASS, ImageResult, ReviewedImage
from engine.store import images as _images
from engine.store import predictions as _predictions
from engine.store import recording as _recording
from engine.store import review as _review
from engine.store import samples as _samples
from engine.store.access import Accounts, Gate
from engine.store.accounts import REFUSED, authenticate, check_password
from engine.store.audit import OPEN_TAIL, AuditCheck, check_chain
from engine.store.changes import ChangeWatcher
from engine.store.database import Database  # noqa: F401 - re-exported
from engine.store.engines import BUSY_TIMEOUT_S, open_database
from engine.store.errors import ReviewConflictError, SignOffError, StoreError
from engine.store.identity import MAX_HASHED_FILE_BYTES, hash_file
from engine.store.lab_administration import LabAdministration
from engine.store.leases import Leases
from engine.store.predictions import STORED_CONTENT, Content
from engine.store.recording import NewPrediction
from engine.store.records import AuditEntry, ImageRecord, Sample
from engine.store.review import MAX_STATEMENT_CHARS, REVIEW_CLASSES
from engine.store.rows import WITHDRAWN_REVIEW
from engine.store.schema import MIGRATIONS, SCHEMA_VERSION, migrate

log = logging.getLogger(__name__)

DB_FILE_NAME = "allsight.sqlite3"



def default_db_path() -> Path:
    """``<user data dir>/allsight.sqlite3``; the folder is ``$ALLSIGHT_DATA_DIR`` when set, else
    the platform's per-user data folder (``engine.core.paths.user_dir("data")``). Nothing is created here."""
    return user_dir("data") / DB_FILE_NAME


def _details(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {"unreadable_details": text}
    return value if isinstance(value, dict) else {"value": value}


def _aware(when: datetime | None) -> datetime | None:
    if when is None or when.tzinfo is not None:
        return when
    return when.astimezone()  # naive: this computer's local time


class ResultStore(LabAdministration):
    """The result history database. Open with :meth:`open` (or the constructor), use as a
    context manager or call :meth:`close`. Safe to share between threads (see module docs)."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        #: The SQLite file (a Path), or the lab database's URL without its password (a str).
        target = path if path is not None else default_db_path()
        self._db = open_database(target)
        self.path: Path | str = self._db.path
        #: What was wrong with the audit chain when the store was opened (its last
        #: :data:`~engine.store.audit.OPEN_TAIL` entries, the count and the head were checked),
        #: or ``None``. The store opens anyway: a lab must still reach its data.
        #: :meth:`verify_audit` checks the whole chain.
        self.audit_problem: AuditCheck | None = None
        self._gate = Gate(self._db)
        #: The accounts and the lab policy (:class:`engine.store.access.Accounts`).
        self.accounts = Accounts(self._db, self._gate)
        #: Which workstation classifies which sample now (:class:`engine.store.leases.Leases`).
        self.leases = Leases(self._db)
        check = self._check_audit(OPEN_TAIL)
        if not check.ok:
            self.audit_problem = check
            log.warning("%s: %s", self.path, check.describe())

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> ResultStore:
        """Open (creating or migrating as needed) the database at ``path`` (default:
        :func:`default_db_path`)."""
        return cls(path)

    def close(self) -> None:
        """Close the connection (checkpointing the WAL). Later calls raise :class:`StoreError`."""
        self._db.close()

    def __enter__(self) -> ResultStore:  # noqa: PYI034 (Self needs Python 3.11)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"

    @property
    def dialect(self) -> str:
        """``"sqlite"`` (a file) or ``"postgresql"`` (a lab database)."""
        return self._db.dialect

    def watch_changes(self, *, poll_s: float | None = None) -> ChangeWatcher:
        """A watcher of what other connections (other workstations, other windows) change in
        this store from now on (:mod:`engine.store.changes`); the caller closes it."""
        return ChangeWatcher(self._db, poll_s=poll_s)

    @property
    def journal_mode(self) -> str:
        if self._db.dialect != "sqlite":
            return self._db.dialect
        with self._db.read() as conn:
            return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    # -------------------------------------------------------------------------------- who acts
    def sign_in(self, username: str, password: str) -> Identity:
        """Sign ``username`` in on this store (:class:`AuthenticationError` when refused; both
        are audited). Needed for every change once the lab requires accounts
        (:attr:`accounts` ``.policy``); changes are then recorded under this account."""
        identity = authenticate(self._db, username, password)
        self._gate.signed_in(identity)
        return identity

    def sign_out(self) -> None:
        self._gate.signed_out()

    @property
    def user(self) -> Identity | None:
        """Who is signed in on this store (``None``: nobody; the front end names the OS login)."""
        return self._gate.user

    @property
    def accounts_required(self) -> bool:
        return self.accounts.policy.accounts_required

    def integrity_problems(self) -> list[str]:
        """Accounts and policy values changed outside ALLSight (they differ from the audit trail)."""
        from engine.store.accounts import integrity_problems

        return integrity_problems(self._db)

    def record_event(self, action: str, sample_id: str | None = None, *, actor: str = "", **details: Any) -> None:
        """Audit an act the store does not perform itself: ``"export"`` (a report or the audit
        trail written; needs the export permission), ``"model_changed"`` (the active model
        chosen), ``"model_installed"`` or ``"model_deleted"`` (the model library; these three
        need the models permission), ``"lab_database_changed"`` (the workstation set to use
        another result database from its next start; needs the accounts permission)."""
        permission = {"export": Permission.EXPORT, "model_changed": Permission.CHANGE_MODELS,
                      "model_installed": Permission.CHANGE_MODELS,
                      "model_deleted": Permission.CHANGE_MODELS,
                      "lab_database_changed": Permission.MANAGE_ACCOUNTS}.get(action)
        if permission is None:
            raise StoreError(f"unknown audit event {action!r}")
        what = {"export": "export", "lab_database_changed": "change the lab database"}.get(action, "change the model")
        who = self._gate.actor(permission, actor, what)
        from engine.store.rows import audit

        with self._db.write() as conn:
            pk = self._db.sample_row(conn, sample_id)["pk"] if sample_id is not None else None
            audit(conn, who, action, pk, **details)

    # -------------------------------------------------------------------------------- samples
    def create_or_get_sample(self, sample_id: str, folder: str | os.PathLike[str], patient_id: str = "",
                             operator: str = "", *, actor: str = "") -> Sample:
        """The sample ``sample_id``, created (with an audit row under ``actor``, else the
        operator) if new. An existing sample is returned unchanged (``folder``/``patient_id``/
        ``operator`` are then ignored)."""
        actor = self._gate.actor(Permission.CLASSIFY, actor, "register samples")
        return _samples.create_or_get_sample(self._db, sample_id, folder, patient_id, operator, actor)

    def register_sample(self, name: str, folder: str | os.PathLike[str], *, patient_id: str = "",
                        operator: str = "", taken: Iterable[str] = (), actor: str = "") -> tuple[Sample, bool]:
        """The stored sample of the images of ``folder``, named after ``name``: ``(sample, created)``.

        The one sample-naming rule of both front ends (the CLI's ``classify --db`` and the app):
        the ID is ``name``, or ``name (2)``, ``name (3)``... when that ID belongs to another folder
        or is in ``taken`` (IDs already used in this run or session). So the same folder always
        comes back as the same sample, however it was classified, and two folders of the same name
        never merge into one sample. ``folder`` "" (files from several folders) matches a stored
        sample without a folder.
        """
        actor = self._gate.actor(Permission.CLASSIFY, actor, "register samples")
        return _samples.register_sample(self._db, name, folder, patient_id=patient_id, operator=operator,
                                        taken=taken, actor=actor)

    def get_sample(self, sample_id: str) -> Sample | None:
        """The sample, or ``None`` when there is none with that id."""
        return _samples.get_sample(self._db, sample_id)

    def results_per_model(self) -> dict[str, int]:
        """How many results (stored predictions) each model produced, by its weights' sha256."""
        with self._db.read() as conn:
            rows = conn.execute("SELECT model_sha256, COUNT(*) FROM predictions GROUP BY model_sha256").fetchall()
        return {str(sha): int(n) for sha, n in rows}

    def list_samples(self) -> list[Sample]:
        """Every sample, newest first (by creation time)."""
        return _samples.list_samples(self._db)

    def update_sample(self, sample_id: str, *, new_sample_id: str | None = None, patient_id: str | None = None,
                      operator: str | None = None, actor: str) -> Sample:
        """Rename a sample and/or change its patient id or operator (``None`` = keep). The audit
        row records the old and new values. Refused for a signed-off sample or a taken id."""
        actor = self._gate.actor(Permission.CLASSIFY, actor, "edit a sample's IDs")
        return _samples.update_sample(self._db, sample_id, new_sample_id=new_sample_id, patient_id=patient_id,
                                      operator=operator, actor=actor)

    # -------------------------------------------------------------------------------- images
    def add_images(self, sample_id: str, paths: Iterable[str | os.PathLike[str]], actor: str = "") -> int:
        """Add image files to a sample, in the given order after those already there, and notice
        the ones already there that changed on disk. Returns how many images were added.

        Idempotent: paths already in the sample (or repeated) keep their place. Each new file's
        sha256, size and mtime are read first, outside the database lock (no hash for a file that
        is unreadable, not a regular file or too large: :func:`hash_file`). A file already in the
        sample is hashed again when its size or mtime differ from the stored ones (or it had no
        hash); when its content changed, the image takes the new sha256 (audited as
        ``image_changed``), so :meth:`pending_paths` lists it again and :meth:`predictions` no
        longer returns the results of the old content (they stay in the history). Same content,
        new mtime: only the stored identity is refreshed (not audited: it changes no result).

        A signed-off sample is never changed: new images are refused (:class:`SignOffError`), and
        changed files are left as they are (:meth:`changed_images` reports them).
        """
        actor = self._gate.actor(Permission.CLASSIFY, actor, "add images")
        return _images.add_images(self._db, sample_id, paths, actor)

    def images(self, sample_id: str) -> list[ImageRecord]:
        """The sample's images in their stored order."""
        return _images.images(self._db, sample_id)

    def changed_images(self, sample_id: str) -> list[str]:
        """The sample's image paths (in order) whose file no longer has the content its results
        belong to: replaced, edited, deleted or become unreadable since it was hashed (or readable,
        when it was not). Writes nothing. For a signed-off sample, which :meth:`add_images`
        never changes, this is how a front end can warn that the signed-off results describe files
        that are no longer there as they were. A file whose size and mtime are unchanged is taken
        as unchanged (not hashed again)."""
        return _images.changed_images(self._db, sample_id)

    # -------------------------------------------------------------------------------- predictions
    def record_prediction(self, sample_id: str, path: str | os.PathLike[str], result: ImageResult, model_id: str,
                          model_version: str, model_sha256: str, actor: str = "", *,
                          image_sha256: str | None | Literal[Content.STORED] = STORED_CONTENT) -> bool:
        """Store one model result for one image, committed before returning.

        ``result`` is any object with the attributes of :class:`engine.core.records.ImageResult`
        (``status``, ``predicted_class``, ``confidence``, ``probabilities``, ``needs_review``,
        ``out_of_distribution``, ``ood_score``, ``error``, ``flags``). A result without ``flags``
        (an older caller) gets codes derived from its ``ood_reason`` text and flags, as stored
        results of schema 1 are migrated. An image not yet in the sample is added first (at the
        end, hashed).

        ``image_sha256`` is the content the result was made from: by default the image's stored
        sha256; the classification service passes the one it planned with, so that a result
        cannot be filed under a file that replaced the one classified meanwhile.

        Idempotent per model file and content: returns False, changing nothing, when an ``ok``
        prediction of ``model_sha256`` for this content of the image exists. Otherwise (no
        prediction yet, or only errors: a retry) the result is added as a new row; earlier rows
        stay in the history.
        """
        return self.record_predictions(sample_id, [NewPrediction(path, result, image_sha256)], model_id,
                                       model_version, model_sha256, actor)[0]

    def record_predictions(self, sample_id: str, items: Sequence[NewPrediction], model_id: str, model_version: str,
                           model_sha256: str, actor: str = "") -> list[bool]:
        """Store a batch of one model's results for one sample's images, in one transaction
        committed before returning (all of them, or none): what :meth:`record_prediction` does for
        each, in order, with one audit entry each. Returns, per item, whether it was recorded
        (False: an ``ok`` result of the model for that content exists already, or the same image
        came earlier in the batch). Raises :class:`SignOffError` when the sample is signed off
        and anything would be recorded."""
        def who() -> str:  # checked inside the batch's own transaction
            return self._gate.actor(Permission.CLASSIFY, actor, "record results")

        return _recording.record_predictions(self._db, sample_id, items, model_id, model_version, model_sha256, who)

    def pending_paths(self, sample_id: str, model_sha256: str) -> list[str]:
        """The sample's image paths (in order) that ``model_sha256`` has still to classify: no
        ``ok`` prediction of it for the image's current content. That is an image it never
        classified (what is left after an interrupted run), one whose latest result is an error
        (retried: the file may have been incomplete, or locked, when it was read), and one whose
        file was replaced since (:meth:`add_images` noticed the new content)."""
        return _predictions.pending_paths(self._db, sample_id, model_sha256)

    def predictions(self, sample_id: str, model_sha256: str | None = None) -> list[ReviewedImage]:
        """One record per image that has a prediction for its current content, in image order:
        the latest prediction of ``model_sha256`` (default: each image's most recent prediction,
        whatever the model), joined with the image's current review (the latest one made for the
        same content). Images without one are left out — see :meth:`pending_paths`. Results of
        a file's earlier content (it was replaced) stay in the database but are not returned."""
        return _predictions.predictions(self._db, sample_id, model_sha256)

    # -------------------------------------------------------------------------------- review
    def record_review(self, sample_id: str, path: str | os.PathLike[str], final_class: str | None, reviewer: str,
                      note: str = "", *, via: str = "", seen: object = _review.UNCHECKED) -> str:
        """Append a reviewer's class for one image (one of :data:`engine.CLASS_IDS`, or
        :data:`EXCLUDED_CLASS` to leave the image out of the counts; ``None`` withdraws the
        current review: the image is "not reviewed" again, and the withdrawal is itself a row of
        the history, audited as ``withdraw_review``, stored as an empty class). The model's prediction is
        kept unchanged beside it; the latest review is the current one. The review belongs to the
        image's current content: if the file is replaced, the new content has no review.
        Refused for a signed-off sample (:class:`SignOffError`) until :meth:`reopen`. ``via``
        names the view it was made in (``"label_next"``), kept in the audit entry: the retraining
        wizard counts the images Label next taught. ``seen``: the review the reviewer was shown
        (its ``reviewed_at``; ``None`` for "not reviewed"): when another workstation changed it
        since, nothing is written and :class:`ReviewConflictError` says who changed it, when, to
        what. Returns the stored time of the new review."""
        reviewer = self._gate.actor(Permission.REVIEW, reviewer, "review images")
        return _review.record_review(self._db, sample_id, path, final_class, reviewer, note, via, seen)

    def sign_off(self, sample_id: str, reviewer: str, statement: str, *,
                 require_independent_reviewer: bool = False, password: str | None = None) -> Sample:
        """Record that ``reviewer`` signed the sample's result off now, declaring ``statement``.

        ``statement`` is the sentence the reviewer agreed to (build it with
        :func:`engine.core.records.sign_off_statement` so that every front end says the same);
        it is required, kept with the sample (:attr:`Sample.sign_off_statement`) and in the
        ``sign_off`` audit entry. Refused (:class:`SignOffError`) when the statement is empty,
        when the sample has no images, when an image has no prediction yet, when a flagged image
        (needs review, out of distribution or an error, on its latest prediction) has no review,
        or when it is already signed off; with ``require_independent_reviewer``, also when the
        reviewer is the actor of any ``record_prediction`` audit entry of the sample (compared
        ignoring case and surrounding spaces). The audit row keeps the sample-level call at the
        time of signing.

        Once the lab requires accounts, only a signed-in account whose role may sign off can, it
        must enter its ``password`` again (a sign-off is a signature, not a click), and the lab
        policy's ``independent_reviewer_required`` applies whatever the caller passes.
        """
        reviewer = self._gate.actor(Permission.SIGN_OFF, reviewer, "sign samples off")
        policy = self.accounts.policy
        if policy.accounts_required and not check_password(self._db, reviewer, password or ""):
            raise AuthenticationError(f"not signed off: {REFUSED}")
        return _review.sign_off(self._db, sample_id, reviewer, statement,
                                require_independent_reviewer=require_independent_reviewer
                                or policy.independent_reviewer_required)

    def reopen(self, sample_id: str, actor: str, reason: str) -> Sample:
        """Undo a sign-off so the sample can be reviewed again; ``reason`` is required and kept in
        the audit log together with who had signed it off and when."""
        actor = self._gate.actor(Permission.REOPEN, actor, "reopen samples")
        return _review.reopen(self._db, sample_id, actor, reason)

    # -------------------------------------------------------------------------------- audit
    def audit(self, sample_id: str | None = None, *, actor: str | None = None, action: str | None = None,
              since: datetime | None = None, until: datetime | None = None) -> list[AuditEntry]:
        """The audit log, oldest first: every row, or those matching every filter given: about
        the sample ``sample_id`` (its current id; :class:`StoreError` if there is none), by
        ``actor``, of ``action``, written at or after ``since`` and before ``until`` (aware
        datetimes; a naive one is taken as local time)."""
        sql = ("SELECT a.pk, a.ts, a.actor, a.action, s.sample_id, i.path, a.details, a.prev_hash, a.entry_hash "
               "FROM audit_log a LEFT JOIN samples s ON s.pk = a.sample_pk LEFT JOIN images i ON i.pk = a.image_pk")
        where: list[str] = []
        params: list[Any] = []
        if actor is not None:
            where.append("a.actor = ?")
            params.append(actor)
        if action is not None:
            where.append("a.action = ?")
            params.append(action)
        with self._db.read() as conn:
            if sample_id is not None:
                where.append("a.sample_pk = ?")
                params.append(self._db.sample_row(conn, sample_id)["pk"])
            clause = f" WHERE {' AND '.join(where)}" if where else ""
            rows = conn.execute(sql + clause + " ORDER BY a.pk", params).fetchall()
        entries = [AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], _details(r[6]), r[7], r[8]) for r in rows]
        if since is None and until is None:
            return entries
        start, end = _aware(since), _aware(until)
        return [e for e in entries if (t := e.time) is not None and (start is None or t >= start)
                and (end is None or t < end)]

    def verify_audit(self) -> AuditCheck:
        """Check the whole audit chain (every entry's hash and link, the count, the head, the
        triggers). What it can and cannot detect: docs/store.md. Also updates :attr:`audit_problem`."""
        check = self._check_audit(None)
        self.audit_problem = None if check.ok else check
        return check

    def _check_audit(self, tail: int | None) -> AuditCheck:
        try:
            with self._db.read() as conn:
                return check_chain(conn, tail)
        except StoreError as err:
            return AuditCheck(False, 0, None, f"the audit log cannot be read: {err}", tail is None)


# Names defined in engine.store's other modules are re-exported: they were all importable from
# here before the store was split, and its callers import them from here.
__all__ = [
    "BUSY_TIMEOUT_S",
    "DB_FILE_NAME",
    "EXCLUDED_CLASS",
    "MAX_HASHED_FILE_BYTES",
    "MAX_STATEMENT_CHARS",
    "MIGRATIONS",
    "NewPrediction",
    "REVIEW_CLASSES",
    "SCHEMA_VERSION",
    "STORED_CONTENT",
    "WITHDRAWN_REVIEW",
    "AuditCheck",
    "AuditEntry",
    "ImageRecord",
    "ResultStore",
    "ReviewConflictError",
    "Sample",
    "SignOffError",
    "StoreError",
    "default_db_path",
    "hash_file",
    "migrate",
]
