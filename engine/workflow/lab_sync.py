"""A workstation following the lab's model: when the lab database names an active model
(:mod:`engine.store.lab_models`) other than this workstation's, it is fetched, verified,
installed into the workstation's model library and activated there.

Both front ends run it the same way: the desktop app once at start-up, off the GUI thread
(:mod:`gui.lab_model_sync`), and after "Share with the lab"; ``main.py models sync``. Here, not in
:mod:`engine.models`, because it needs the store (the engine's layers: models sit below store).

Why nothing is written to the database: the lab's activation is already audited
(``activate_lab_model``, with who and why), and a workstation follows it whoever is at it — a
technician whose role may not change models too. The local library's own history records the
switch (by whom, with the lab's reason), as for any activation.

A model whose files do not match what was published (:class:`~engine.store.lab_models.LabModelIntegrityError`),
or that cannot be installed or activated here, is refused: nothing is installed, the active
model stays as it was, and :class:`LabSync` says why in words a person can act on.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from engine.core.errors import AllSightError, ModelError

if TYPE_CHECKING:
    from engine.models.library import InstalledModel, ModelLibrary
    from engine.store.lab_models import LabActivation
    from engine.store.results import ResultStore

log = logging.getLogger(__name__)


class SyncOutcome(StrEnum):
    UNCHANGED = "unchanged"  # the lab names no model, or this workstation already uses it
    ACTIVATED = "activated"  # the lab's model is now active here (installed first if it was not)
    REFUSED = "refused"  # not followed: the message says why; nothing changed here


@dataclass(frozen=True)
class LabSync:
    """What :func:`sync_lab_model` did."""

    outcome: SyncOutcome
    message: str
    #: The lab's active model (``id@version`` and sha256; "" when the lab names none).
    model: str = ""
    sha256: str = ""
    #: True when the files were fetched from the lab database and installed here.
    installed: bool = False

    @property
    def changed(self) -> bool:
        return self.outcome is SyncOutcome.ACTIVATED


def lab_reason(lab: LabActivation) -> str:
    """The reason the local activation is recorded with: the lab's, and whose it was."""
    return f"lab's active model: {lab.reason} ({lab.activated_by or '?'}, {lab.activated_at[:10]})"


def _installed(library: ModelLibrary, sha256: str) -> InstalledModel | None:
    return next((m for m in library.models() if m.sha256 == sha256), None)


def sync_lab_model(store: ResultStore, library: ModelLibrary, *, by: str) -> LabSync:
    """Make ``library``'s active model the lab's (see the module docstring); ``by`` is who the
    local install and activation are recorded under."""
    try:
        lab = store.lab_active_model()
    except AllSightError as exc:
        return LabSync(SyncOutcome.REFUSED, f"The lab's model could not be read: {exc}")
    if lab is None:
        return LabSync(SyncOutcome.UNCHANGED, "The lab database names no shared model.")
    try:
        here = library.active()
        current, current_ref = here.sha256, here.ref
    except ModelError as exc:  # the active model is gone or damaged: following the lab repairs it
        log.warning("the active model cannot be read (%s); following the lab's", exc)
        current, current_ref = "", "none"
    if current == lab.sha256:
        return LabSync(SyncOutcome.UNCHANGED, f"The lab's model {lab.ref} is active on this workstation.",
                       lab.ref, lab.sha256)
    fetched = False
    try:
        if _installed(library, lab.sha256) is None:
            with tempfile.TemporaryDirectory(prefix="allsight-lab-model-") as tmp:
                card_path = store.fetch_lab_model(lab.sha256, tmp)
                library.install(card_path, by=by, origin=f"the lab database {store.path} (activated for the lab "
                                                         f"by {lab.activated_by or '?'} {lab.activated_at[:10]})")
            fetched = True
        library.activate(lab.sha256, by=by, reason=lab_reason(lab))
    except AllSightError as exc:
        log.error("the lab's model %s (sha256 %s) was refused: %s", lab.ref, lab.sha256, exc)
        why = str(exc).rstrip(". ")
        return LabSync(SyncOutcome.REFUSED, f"The lab's model {lab.ref} was not used on this workstation: {why}. "
                                            f"This workstation keeps {current_ref}.", lab.ref, lab.sha256)
    verb = "installed from the lab database and activated" if fetched else "activated"
    return LabSync(SyncOutcome.ACTIVATED, f"The lab's model {lab.ref} was {verb} (was {current_ref}).",
                   lab.ref, lab.sha256, fetched)


__all__ = ["LabSync", "SyncOutcome", "lab_reason", "sync_lab_model"]
