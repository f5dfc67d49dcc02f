"""The store's administration methods: backing the file up, the lab's shared models, and the
workstations' account on a lab database.

A mixin of :class:`engine.store.results.ResultStore` (which is the one entry point; callers never
use this class alone), kept apart so the store's everyday methods — samples, images, results,
reviews — fit in one module a person can read in a sitting. Each method runs on the store's
locked connection and, where it changes what every workstation uses, behind the same permission
gate as the rest of the store.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from engine.core.identity import Permission
from engine.store import grants as _grants
from engine.store import lab_models as _lab_models
from engine.store.access import Gate
from engine.store.database import Database
from engine.store.errors import StoreError


class LabAdministration:
    """Backup, lab models and grants; needs the store's ``_db``, ``_gate`` and ``path``."""

    _db: Database
    _gate: Gate
    path: Path | str

    # -------------------------------------------------------------------------------- backup
    def backup(self, dest: str | os.PathLike[str]) -> Path:
        """A consistent copy of the whole database at ``dest`` (SQLite online backup), safe to
        take while the application is writing. Returns the destination path."""
        dest_path = Path(dest)
        if not isinstance(self.path, Path):
            raise StoreError(f"{self.path}: a lab database is backed up on its server (pg_dump; docs/store.md)")
        if dest_path.resolve() == self.path.resolve():
            raise StoreError(f"{dest_path}: a backup cannot overwrite the database itself")
        dest_path.parent.mkdir(parents=True, exist_ok=True)
        with self._db.read() as conn:
            target = sqlite3.connect(str(dest_path))
            try:
                dbapi: Any = conn.connection.connection.dbapi_connection  # the sqlite3 connection
                dbapi.backup(target)
            finally:
                target.close()
        return dest_path

    # -------------------------------------------------------------------------------- grants
    def grant_app_role(self, role: str, *, dry_run: bool = False) -> list[str]:
        """Give ``role`` (the workstations' account) exactly what ALLSight needs on this lab
        database (:mod:`engine.store.grants`), run as the database's owner; returns the
        statements. ``dry_run``: only return them."""
        return (_grants.app_grants if dry_run else _grants.grant_app_role)(self._db, role)

    # -------------------------------------------------------------------------------- lab models
    # The lab's shared models (engine.store.lab_models): published and activated for every
    # workstation of the database; changing them needs the models permission, as a local activation.
    def publish_lab_model(self, model: str | os.PathLike[str], *, actor: str = "") -> _lab_models.Published:
        """Store the model (its card, ``.safetensors`` or folder) in this database for the lab,
        verified first; idempotent by the weights' sha256 (audited once: ``publish_lab_model``)."""
        who = self._gate.actor(Permission.CHANGE_MODELS, actor, "share a model with the lab")
        return _lab_models.publish(self._db, model, who)

    def activate_lab_model(self, sha256: str, reason: str, *, actor: str = "") -> _lab_models.LabActivation:
        """Make the published model ``sha256`` (or an unambiguous prefix) the lab's active model;
        a rollback is activating an earlier one. Audited as ``activate_lab_model``."""
        who = self._gate.actor(Permission.CHANGE_MODELS, actor, "change the lab's model")
        return _lab_models.activate(self._db, sha256, who, reason)

    def lab_active_model(self) -> _lab_models.LabActivation | None:
        """The lab's active model (``None``: the lab never activated one)."""
        return _lab_models.active(self._db)

    def lab_model_history(self) -> list[_lab_models.LabActivation]:
        """Every activation for the lab, oldest first."""
        return _lab_models.history(self._db)

    def fetch_lab_model(self, sha256: str, dest: str | os.PathLike[str]) -> Path:
        """The published model's files in a new folder inside ``dest``, each checked against the
        database's record and the weights against the card; returns the card's path
        (:class:`~engine.store.lab_models.LabModelIntegrityError` on any mismatch, nothing written)."""
        return _lab_models.fetch(self._db, sha256, dest)


__all__ = ["LabAdministration"]
