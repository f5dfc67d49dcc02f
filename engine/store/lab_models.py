"""The lab's shared models, kept in the result database (schema 7): one model promoted on one
workstation becomes the model of every workstation that shares the database.

Why in the database: the lab's workstations already share it (and trust it for the results and
the audit trail), so the model every result is made with travels the same way, with the same
audit entries, instead of on USB sticks. Each workstation keeps its own model library
(:mod:`engine.models.library`); :func:`engine.workflow.lab_sync.sync_lab_model` installs and
activates the lab's active model there.

* :func:`publish` stores a model's files (weights, card, ONNX graphs) with their sha256, after
  checking them as a load would (card valid and bound to its weights, weights and graphs matching
  the card). Publishing is idempotent by the weights' sha256: a model already there is returned
  unchanged, and nothing is audited again.
* :func:`activate` appends one row to the lab's activation history (a rollback is activating an
  earlier model again); :func:`active` is the last row, :func:`history` all of them.
* :func:`fetch` writes a model's files into a new folder and checks every file's sha256 and size
  against the database's record, the card against the published one and the weights against the
  card, before it returns. Any difference raises :class:`LabModelIntegrityError` naming the model
  and what did not match, and nothing is left behind: a workstation never installs a model that
  is not byte for byte the one published.

Published models and the history are never changed or deleted (triggers, on both engines); the
hashes are what shows a change made behind ALLSight's back. Each publish and activation writes
its audit entry (``publish_lab_model``, ``activate_lab_model``) in the same transaction.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from engine.core.errors import ModelError, ModelIntegrityError
from engine.models.card import ModelCard
from engine.models.checkpoint import read_card
from engine.models.graphs import graph_files
from engine.models.installed import INSTALL_FILE
from engine.models.library import verify
from engine.store.database import POSTGRESQL, Conn, Database
from engine.store.errors import StoreError
from engine.store.rows import audit, now, required

#: A stored file's name: a plain file name, never a path (a hostile database cannot write elsewhere).
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class LabModelError(StoreError):
    """A lab model cannot be published, activated or fetched (not published, no reason given,
    not a model folder)."""


class LabModelIntegrityError(LabModelError, ModelIntegrityError):
    """A lab model's files in the database are not the ones published (changed or damaged there):
    nothing was installed."""


@dataclass(frozen=True)
class LabModelFile:
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class LabModel:
    """A model published in the lab database."""

    sha256: str
    model_id: str
    version: str
    published_at: str
    published_by: str
    files: tuple[LabModelFile, ...]

    @property
    def ref(self) -> str:
        return f"{self.model_id}@{self.version}"


@dataclass(frozen=True)
class Published:
    model: LabModel
    #: False: the model was already in the lab database (nothing was written).
    created: bool


@dataclass(frozen=True)
class LabActivation:
    """One row of the lab's activation history (the last one is the lab's active model)."""

    pk: int
    sha256: str
    model_id: str
    version: str
    activated_at: str
    activated_by: str
    reason: str
    previous_sha256: str

    @property
    def ref(self) -> str:
        return f"{self.model_id}@{self.version}"

    def describe(self) -> str:
        return (f"{self.ref} (sha256 {self.sha256[:12]}…), activated for the lab by {self.activated_by or '?'} "
                f"at {self.activated_at[:16].replace('T', ' ')}: {self.reason}")


# ------------------------------------------------------------------------------- publish
def _card_path(source: str | os.PathLike[str]) -> Path:
    """The model card ``source`` names: the card itself, its ``.safetensors``, or a model folder
    holding exactly one card."""
    path = Path(source)
    if not path.is_dir():
        return path
    cards = sorted(p for p in path.glob("*.json") if p.name != INSTALL_FILE)
    if len(cards) != 1:
        found = ", ".join(p.name for p in cards) or "none"
        raise LabModelError(f"{path}: not a model folder (one model card expected; found {found})")
    return cards[0]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _model_files(card: ModelCard) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of the card, the weights and each graph, read once and checked against
    the card again (a file replaced after :func:`verify` is not published)."""
    assert card.path is not None
    expected = {card.weights_path.name: card.weights_sha256}
    expected.update({str(entry["file"]): str(entry.get("sha256", "")) for entry in card.graphs.values()})
    out = []
    for path in (card.path, card.weights_path, *graph_files(card)):
        if not _SAFE_NAME.match(path.name):
            raise LabModelError(f"{path}: a file name the lab database does not take (letters, digits, . _ + -)")
        blob = _read(path)
        digest = hashlib.sha256(blob).hexdigest()
        if path.name in expected and digest != expected[path.name]:
            raise ModelIntegrityError(f"{path}: changed while it was being published (sha256 {digest[:12]}… does "
                                      f"not match the model card's {expected[path.name][:12]}…); not published")
        out.append((path.name, blob))
    return out


def publish(db: Database, source: str | os.PathLike[str], actor: str) -> Published:
    """Store the model at ``source`` (a card, its ``.safetensors`` or its folder) in the lab
    database, verified first; a model already published (same weights' sha256) is returned as it
    is. ``actor`` is whoever the store's gate allowed to change the lab's models."""
    card = verify(_card_path(source), network=False)
    files = _model_files(card)
    card_text = files[0][1].decode("utf-8")
    with db.write() as conn:
        row = conn.execute("INSERT INTO lab_models (sha256, model_id, version, card_json, published_at, published_by) "
                           "VALUES (?,?,?,?,?,?) ON CONFLICT (sha256) DO NOTHING RETURNING pk",
                           (card.weights_sha256, card.id, card.version, card_text, now(), actor or "")).fetchone()
        if row is None:
            return Published(_model(conn, card.weights_sha256), False)
        model_pk = int(row[0])
        conn.executemany("INSERT INTO lab_model_files (model_pk, name, sha256, size, content) VALUES (?,?,?,?,?)",
                         [(model_pk, name, hashlib.sha256(blob).hexdigest(), len(blob), blob) for name, blob in files])
        audit(conn, actor, "publish_lab_model", None, model=f"{card.id}@{card.version}", sha256=card.weights_sha256,
              files={name: hashlib.sha256(blob).hexdigest() for name, blob in files})
        return Published(_model(conn, card.weights_sha256), True)


# ------------------------------------------------------------------------------- activate
_ACTIVATION = ("SELECT a.pk, m.sha256, m.model_id, m.version, a.activated_at, a.activated_by, a.reason, "
               "a.previous_sha256 FROM lab_active_model a JOIN lab_models m ON m.pk = a.model_pk")


def _activation(row) -> LabActivation:
    return LabActivation(int(row[0]), *(str(v) for v in row[1:]))


def _model(conn: Conn, sha256: str) -> LabModel:
    row = conn.execute("SELECT pk, sha256, model_id, version, published_at, published_by FROM lab_models "
                       "WHERE sha256 = ?", (sha256,)).fetchone()
    if row is None:
        raise LabModelError(f"no model with sha256 {sha256[:12]}… has been published in this lab database; "
                            "publish it first (Share with the lab, or `main.py models publish`)")
    files = conn.execute("SELECT name, sha256, size FROM lab_model_files WHERE model_pk = ? ORDER BY name",
                         (row[0],)).fetchall()
    return LabModel(str(row[1]), str(row[2]), str(row[3]), str(row[4]), str(row[5]),
                    tuple(LabModelFile(str(f[0]), str(f[1]), int(f[2])) for f in files))


def _full_sha(conn: Conn, sha256: str) -> str:
    """The full sha256 of the published model a prefix (8 hex digits or more) names."""
    sha = sha256.strip().lower()
    if _SHA256.match(sha):
        return sha
    if not re.match(r"^[0-9a-f]{8,63}$", sha):
        raise LabModelError(f"{sha256!r} is not a model's sha256 (8 to 64 hex digits)")
    hits = [str(r[0]) for r in conn.execute("SELECT sha256 FROM lab_models WHERE sha256 LIKE ?", (sha + "%",))]
    if len(hits) > 1:
        raise LabModelError(f"{sha256!r} names {len(hits)} lab models: give more of the sha256")
    return hits[0] if hits else sha


def activate(db: Database, sha256: str, actor: str, reason: str) -> LabActivation:
    """Make the published model ``sha256`` the lab's active model (a promotion, or a rollback to
    an earlier one); ``reason`` is required. Activating the model that is already the lab's
    active one changes nothing and returns its activation."""
    reason = required(reason, "the reason for changing the lab's model (it is kept in the audit trail)")
    with db.write() as conn:
        if conn.dialect == POSTGRESQL:  # one activation at a time, so "previous" is never stale
            conn.execute("SELECT id FROM audit_head WHERE id = 1 FOR UPDATE")
        model = _model(conn, _full_sha(conn, sha256))
        current = _active(conn)
        if current is not None and current.sha256 == model.sha256:
            return current
        previous = current.sha256 if current is not None else ""
        model_pk = conn.execute("SELECT pk FROM lab_models WHERE sha256 = ?", (model.sha256,)).fetchone()[0]
        conn.execute("INSERT INTO lab_active_model (model_pk, activated_at, activated_by, reason, previous_sha256) "
                     "VALUES (?,?,?,?,?)", (model_pk, now(), actor or "", reason, previous))
        audit(conn, actor, "activate_lab_model", None, model=model.ref, sha256=model.sha256, reason=reason,
              previous_model=current.ref if current is not None else "", previous_sha256=previous)
        activation = _active(conn)
    assert activation is not None
    return activation


def _active(conn: Conn) -> LabActivation | None:
    row = conn.execute(f"{_ACTIVATION} ORDER BY a.pk DESC LIMIT 1").fetchone()
    return None if row is None else _activation(row)


def active(db: Database) -> LabActivation | None:
    """The lab's active model (its latest activation), or ``None`` when none was ever activated."""
    with db.read() as conn:
        return _active(conn)


def history(db: Database) -> list[LabActivation]:
    """Every activation for the lab, oldest first."""
    with db.read() as conn:
        return [_activation(r) for r in conn.execute(f"{_ACTIVATION} ORDER BY a.pk").fetchall()]


def published(db: Database) -> list[LabModel]:
    """Every model published in the lab database, oldest first."""
    with db.read() as conn:
        shas = [str(r[0]) for r in conn.execute("SELECT sha256 FROM lab_models ORDER BY pk").fetchall()]
        return [_model(conn, sha) for sha in shas]


# ------------------------------------------------------------------------------- fetch
def _refuse(db: Database, model: LabModel, what: str) -> LabModelIntegrityError:
    return LabModelIntegrityError(
        f"{db.name}: the lab's model {model.model_id} {model.version} (sha256 {model.sha256[:12]}…) is not the one "
        f"that was published: {what}. It was changed or damaged in the lab database; nothing was installed. "
        "Ask IT to restore the lab database from its backup, or activate another lab model.")


def fetch(db: Database, sha256: str, destination: str | os.PathLike[str]) -> Path:
    """Write the published model ``sha256`` into a new folder inside ``destination`` and return
    its card's path, once every file, the card and the weights are checked (see the module
    docstring). On any mismatch the folder is removed and :class:`LabModelIntegrityError` raised."""
    with db.read() as conn:
        model = _model(conn, _full_sha(conn, sha256))
        card_json = conn.execute("SELECT card_json FROM lab_models WHERE sha256 = ?", (model.sha256,)).fetchone()[0]
        rows = conn.execute("SELECT f.name, f.sha256, f.size, f.content FROM lab_model_files f "
                            "JOIN lab_models m ON m.pk = f.model_pk WHERE m.sha256 = ? ORDER BY f.name",
                            (model.sha256,)).fetchall()
    try:
        Path(destination).mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f".lab-{model.sha256[:12]}.", dir=destination))
    except OSError as exc:
        raise LabModelError(f"{destination}: cannot write the lab's model there ({exc.strerror or exc})") from None
    try:
        return _write_verified(db, model, str(card_json), rows, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _write_verified(db: Database, model: LabModel, card_json: str, rows, folder: Path) -> Path:
    card_path = None
    for name, sha, size, content in rows:
        name, blob = str(name), bytes(content)
        if not _SAFE_NAME.match(name):
            raise _refuse(db, model, f"it lists a file named {name!r}, which is not a plain file name")
        digest = hashlib.sha256(blob).hexdigest()
        if digest != sha or len(blob) != int(size):
            raise _refuse(db, model, f"its file {name} has sha256 {digest[:12]}… ({len(blob)} bytes) where "
                                     f"{str(sha)[:12]}… ({int(size)} bytes) was recorded")
        try:
            (folder / name).write_bytes(blob)
        except OSError as exc:
            raise LabModelError(f"{folder / name}: cannot write the lab's model here ({exc.strerror or exc})") from None
        if name.endswith(".json"):
            if card_path is not None:
                raise _refuse(db, model, "it holds more than one model card")
            card_path = folder / name
            if blob != card_json.encode("utf-8"):
                raise _refuse(db, model, f"its card {name} differs from the card recorded when it was published")
    if card_path is None:
        raise _refuse(db, model, "its model card is missing")
    try:
        card = read_card(card_path)
        if card.weights_sha256 != model.sha256:
            raise _refuse(db, model, f"its card names other weights (sha256 {card.weights_sha256[:12]}…)")
        missing = [p.name for p in (card.weights_path, *graph_files(card)) if not p.is_file()]
        if missing:
            raise _refuse(db, model, f"the file(s) {', '.join(missing)} its card lists are missing")
        verify(card, network=False)  # the weights against the card, the graphs, the binding
    except ModelIntegrityError as exc:
        if isinstance(exc, LabModelIntegrityError):
            raise
        raise _refuse(db, model, str(exc).replace(f"{card_path.parent}{os.sep}", "")) from None
    except ModelError as exc:
        raise LabModelError(f"{db.name}: the lab's model {model.ref} cannot be used: {exc}") from None
    return card_path


__all__ = ["LabActivation", "LabModel", "LabModelError", "LabModelFile", "LabModelIntegrityError", "Published",
           "activate", "active", "fetch", "history", "publish", "published"]
