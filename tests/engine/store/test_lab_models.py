"""The lab's shared models (schema 7, engine/store/lab_models.py, engine/workflow/lab_sync.py), on
both engines: publishing is idempotent, a model activated for the lab on one workstation becomes
active on another (and a rollback follows), a model changed in the database is refused before
anything is installed, the history is append-only, every change is audited in the one chain,
an SQLite file of schema 6 migrates, and ``store migrate`` carries the lab's models along."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from engine.core.errors import ModelIntegrityError
from engine.core.identity import PermissionDenied, Role
from engine.models.library import ModelLibrary
from engine.store.copy import copy_store
from engine.store.errors import StoreError
from engine.store.lab_models import LabModelError, LabModelIntegrityError
from engine.store.results import ResultStore
from engine.store.schema import SCHEMA_VERSION, migrate
from engine.workflow.lab_sync import SyncOutcome, sync_lab_model
from tests.conftest import save_tiny_model
from tests.engine.store.conftest import raw

LAB_TABLES = ("lab_models", "lab_model_files", "lab_active_model")


@pytest.fixture
def two_models(tmp_path):
    """Two tiny models with different weights (their OOD thresholds differ, and are sealed)."""
    first = save_tiny_model(tmp_path / "trained-1", model_id="tiny-lab")
    second = save_tiny_model(tmp_path / "trained-2", model_id="tiny-lab-2", ood_threshold=1e8)
    assert first.weights_sha256 != second.weights_sha256
    return first, second


@pytest.fixture
def stations(store_target, tmp_path):
    """Two workstations sharing one database: each its own store connection and model library."""
    a, b = ResultStore.open(store_target), ResultStore.open(store_target)
    libraries = ModelLibrary(tmp_path / "desk-a", verify_network=False), ModelLibrary(tmp_path / "desk-b",
                                                                                       verify_network=False)
    try:
        yield (a, libraries[0]), (b, libraries[1])
    finally:
        a.close()
        b.close()


def _count(store: ResultStore, table: str) -> int:
    with raw(store) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _drop_trigger(store: ResultStore, table: str, name: str) -> None:
    """What someone with the database's owner account (or an SQLite tool) could do."""
    with raw(store, write=True) as conn:
        conn.execute(f"DROP TRIGGER {name}" + (f" ON {table}" if store.dialect == "postgresql" else ""))


def test_publishing_is_idempotent_by_sha256(store_target, two_models):
    first, _ = two_models
    with ResultStore.open(store_target) as store:
        published = store.publish_lab_model(first.path, actor="ada")
        assert published.created and published.model.sha256 == first.weights_sha256
        assert published.model.ref == "tiny-lab@0.0.1" and published.model.published_by == "ada"
        assert {f.name for f in published.model.files} == {"tiny-lab.json", "tiny-lab.safetensors"}
        weights = next(f for f in published.model.files if f.name.endswith(".safetensors"))
        assert weights.sha256 == first.weights_sha256 and weights.size == first.weights_path.stat().st_size
        for source in (first.path, first.weights_path, first.path.parent):  # the card, the weights, the folder
            again = store.publish_lab_model(source, actor="bob")
            assert not again.created and again.model == published.model  # still ada's
        assert _count(store, "lab_models") == 1 and _count(store, "lab_model_files") == 2
        entries = store.audit(action="publish_lab_model")
        assert len(entries) == 1 and entries[0].actor == "ada"
        assert entries[0].details["files"]["tiny-lab.safetensors"] == first.weights_sha256
        assert store.lab_active_model() is None and store.lab_model_history() == []  # published is not active


def test_a_tampered_model_file_is_not_published(store_target, two_models):
    first, _ = two_models
    blob = bytearray(first.weights_path.read_bytes())
    blob[-1] ^= 0xFF
    first.weights_path.write_bytes(bytes(blob))
    with ResultStore.open(store_target) as store:
        with pytest.raises(ModelIntegrityError, match="tampered"):
            store.publish_lab_model(first.path, actor="ada")
        assert _count(store, "lab_models") == 0 and store.audit(action="publish_lab_model") == []


def test_b_follows_the_model_a_activated_for_the_lab_and_its_rollback(stations, two_models):
    (a, lib_a), (b, lib_b) = stations
    first, second = two_models
    shipped = lib_b.active()
    # Workstation A trained both and shares them; the lab's model becomes the first.
    for card in (first, second):
        installed = lib_a.install(card.weights_path, by="ada", origin="trained here")
        a.publish_lab_model(installed.folder, actor="ada")
    activation = a.activate_lab_model(first.weights_sha256, "validated on our stain", actor="ada")
    assert activation.previous_sha256 == "" and activation.activated_by == "ada"
    here = sync_lab_model(a, lib_a, by="ada")
    assert here.outcome is SyncOutcome.ACTIVATED and not here.installed  # A had it already

    synced = sync_lab_model(b, lib_b, by="tom")
    assert synced.outcome is SyncOutcome.ACTIVATED and synced.installed, synced.message
    assert f"was {shipped.ref}" in synced.message
    assert lib_b.active().sha256 == first.weights_sha256 == lib_a.active().sha256
    last = lib_b.history()[-1]
    assert last.by == "tom" and last.reason.startswith("lab's active model: validated on our stain (ada, ")
    assert lib_b.find(first.weights_sha256).origin.startswith("the lab database ")
    assert sync_lab_model(b, lib_b, by="tom").outcome is SyncOutcome.UNCHANGED  # nothing to do

    # Promote the second, then roll back to the first: B follows each time.
    a.activate_lab_model(second.weights_sha256[:12], "more training images", actor="ada")
    assert sync_lab_model(b, lib_b, by="tom").outcome is SyncOutcome.ACTIVATED
    assert lib_b.active().sha256 == second.weights_sha256
    back = a.activate_lab_model(first.weights_sha256, "too many flags", actor="ada")
    assert back.previous_sha256 == second.weights_sha256
    rolled = sync_lab_model(b, lib_b, by="tom")
    assert rolled.outcome is SyncOutcome.ACTIVATED and not rolled.installed  # B still had it
    assert lib_b.active().sha256 == first.weights_sha256
    assert [(h.sha256, h.reason) for h in b.lab_model_history()] == [
        (first.weights_sha256, "validated on our stain"), (second.weights_sha256, "more training images"),
        (first.weights_sha256, "too many flags")]
    assert b.lab_active_model() == back
    # Activating the lab's active model again changes nothing.
    assert a.activate_lab_model(first.weights_sha256, "again", actor="ada") == back
    assert len(a.lab_model_history()) == 3


def test_every_change_is_audited_in_the_one_chain(stations, two_models):
    (a, _), (b, _) = stations
    first, second = two_models
    a.publish_lab_model(first.path, actor="ada")
    b.publish_lab_model(second.path, actor="bob")
    a.activate_lab_model(first.weights_sha256, "validated", actor="ada")
    b.activate_lab_model(second.weights_sha256, "better", actor="bob")
    entries = [(e.action, e.actor, e.details.get("model"), e.details.get("previous_sha256"))
               for e in a.audit() if e.action.endswith("_lab_model")]
    assert entries == [("publish_lab_model", "ada", "tiny-lab@0.0.1", None),
                       ("publish_lab_model", "bob", "tiny-lab-2@0.0.1", None),
                       ("activate_lab_model", "ada", "tiny-lab@0.0.1", ""),
                       ("activate_lab_model", "bob", "tiny-lab-2@0.0.1", first.weights_sha256)]
    assert a.audit(action="activate_lab_model")[1].details["reason"] == "better"
    check = b.verify_audit()
    assert check.ok and check.n_entries == 4


@pytest.mark.parametrize("how", ["content", "content and its recorded hash"])
def test_a_model_changed_in_the_database_is_refused_and_nothing_is_installed(stations, two_models, tmp_path, how):
    (a, _), (b, lib_b) = stations
    first, _ = two_models
    a.publish_lab_model(first.path, actor="ada")
    a.activate_lab_model(first.weights_sha256, "validated", actor="ada")
    before = lib_b.active()
    # The rows are protected by triggers...
    with pytest.raises(StoreError, match="cannot be changed"), raw(a, write=True) as conn:
        conn.execute("UPDATE lab_model_files SET content = ? WHERE name = 'tiny-lab.safetensors'", (b"x",))
    # ...which the database's owner could drop: then the hashes show the change.
    _drop_trigger(a, "lab_model_files", "lab_model_files_no_update")
    blob = bytearray(first.weights_path.read_bytes())
    blob[-1] ^= 0xFF
    with raw(a, write=True) as conn:
        if how == "content":
            conn.execute("UPDATE lab_model_files SET content = ? WHERE name = 'tiny-lab.safetensors'", (bytes(blob),))
        else:
            conn.execute("UPDATE lab_model_files SET content = ?, sha256 = ? WHERE name = 'tiny-lab.safetensors'",
                         (bytes(blob), hashlib.sha256(blob).hexdigest()))

    refused = sync_lab_model(b, lib_b, by="tom")
    assert refused.outcome is SyncOutcome.REFUSED
    assert "tiny-lab 0.0.1" in refused.message and "is not the one that was published" in refused.message
    assert "nothing was installed" in refused.message and f"keeps {before.ref}" in refused.message
    assert ("tiny-lab.safetensors has sha256" if how == "content" else "corrupt or has been tampered") \
        in refused.message
    assert lib_b.active().sha256 == before.sha256 and lib_b.history() == []
    assert [m for m in lib_b.models() if m.card.id == "tiny-lab"] == []
    dest = tmp_path / "fetched"
    with pytest.raises(LabModelIntegrityError):
        b.fetch_lab_model(first.weights_sha256, dest)
    assert list(dest.iterdir()) == []  # nothing left behind


def test_fetch_writes_the_verified_files(store_target, two_models, tmp_path):
    first, _ = two_models
    with ResultStore.open(store_target) as store:
        store.publish_lab_model(first.path, actor="ada")
        card_path = store.fetch_lab_model(first.weights_sha256[:16], tmp_path / "fetched")
        assert card_path.parent.parent == tmp_path / "fetched"
        assert card_path.read_bytes() == first.path.read_bytes()
        assert card_path.with_suffix(".safetensors").read_bytes() == first.weights_path.read_bytes()
        with pytest.raises(LabModelError, match="has been published"):
            store.fetch_lab_model("0" * 64, tmp_path / "fetched")


def test_the_lab_history_and_published_models_are_append_only(store_target, two_models):
    first, _ = two_models
    with ResultStore.open(store_target) as store:
        store.publish_lab_model(first.path, actor="ada")
        store.activate_lab_model(first.weights_sha256, "validated", actor="ada")
        for sql, refusal in (("UPDATE lab_active_model SET reason = 'other'", "append-only"),
                             ("DELETE FROM lab_active_model", "append-only"),
                             ("UPDATE lab_models SET model_id = 'other'", "cannot be changed"),
                             ("DELETE FROM lab_model_files", "cannot be changed or deleted")):
            with pytest.raises(StoreError, match=refusal), raw(store, write=True) as conn:
                conn.execute(sql)
        assert store.lab_active_model().reason == "validated"


def test_activating_needs_a_published_model_a_reason_and_the_models_permission(store_target, two_models, tmp_path):
    first, _ = two_models
    with ResultStore.open(store_target) as store:
        with pytest.raises(LabModelError, match="publish it first"):
            store.activate_lab_model(first.weights_sha256, "validated", actor="ada")
        store.publish_lab_model(first.path, actor="ada")
        with pytest.raises(StoreError, match="reason"):
            store.activate_lab_model(first.weights_sha256, "  ", actor="ada")
        store.accounts.create("ada", "admin-pass-1", Role.ADMINISTRATOR, actor="it")
        store.accounts.create("tom", "tech-pass-22", Role.TECHNICIAN, actor="it")
        store.accounts.set_policy(accounts_required=True, actor="it")
        store.sign_in("tom", "tech-pass-22")
        with pytest.raises(PermissionDenied, match="change the lab's model"):
            store.activate_lab_model(first.weights_sha256, "validated")
        with pytest.raises(PermissionDenied, match="share a model with the lab"):
            store.publish_lab_model(first.path)
        assert store.lab_active_model() is None
        store.sign_in("ada", "admin-pass-1")
        assert store.activate_lab_model(first.weights_sha256, "validated").activated_by == "ada"
        # A technician's workstation still follows the lab (it changes nothing in the database).
        store.sign_in("tom", "tech-pass-22")
        library = ModelLibrary(tmp_path / "tom-desk", verify_network=False)
        assert sync_lab_model(store, library, by="tom").outcome is SyncOutcome.ACTIVATED
        assert library.active().sha256 == first.weights_sha256


def test_a_workstation_with_a_full_library_check_installs_the_lab_model(store_target, two_models, tmp_path):
    """The CLI's library builds the network as it installs (torch, or the ONNX graph)."""
    first, _ = two_models
    with ResultStore.open(store_target) as store:
        store.publish_lab_model(first.path, actor="ada")
        store.activate_lab_model(first.weights_sha256, "validated", actor="ada")
        library = ModelLibrary(tmp_path / "desk", verify_network=True)
        assert sync_lab_model(store, library, by="tom").outcome is SyncOutcome.ACTIVATED
        assert library.active().sha256 == first.weights_sha256


def test_store_migrate_copies_the_lab_models(store_target, two_models, tmp_path):
    first, second = two_models
    with ResultStore.open(tmp_path / "desk.sqlite3") as desk, ResultStore.open(store_target) as lab:
        desk.publish_lab_model(first.path, actor="ada")
        desk.publish_lab_model(second.path, actor="ada")
        desk.activate_lab_model(first.weights_sha256, "validated", actor="ada")
        report = copy_store(desk, lab)
        assert (report.counts["lab_models"], report.counts["lab_model_files"], report.counts["lab_active_model"]) \
            == (2, 4, 1)
        assert "2 lab_models" in report.describe()
        assert lab.lab_active_model() == desk.lab_active_model()
        # the lab database goes on from there: new rows after the copied keys, the chain intact
        assert lab.activate_lab_model(second.weights_sha256, "better", actor="ada").pk == 2
        assert lab.verify_audit().ok
        library = ModelLibrary(tmp_path / "desk-b", verify_network=False)
        assert sync_lab_model(lab, library, by="tom").outcome is SyncOutcome.ACTIVATED
        assert library.active().sha256 == second.weights_sha256


def test_a_schema_6_database_migrates_to_7(tmp_path, two_models):
    path = tmp_path / "v6.sqlite3"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        assert migrate(conn, target=6) == 0
        assert not {r[0] for r in conn.execute("SELECT name FROM sqlite_master")} & set(LAB_TABLES)
    with ResultStore.open(path) as store:
        store.create_or_get_sample("S", tmp_path)
        store.publish_lab_model(two_models[0].path, actor="ada")
        assert store.verify_audit().ok
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert set(LAB_TABLES) <= names
        assert {f"{t}_no_{e}" for t in LAB_TABLES for e in ("update", "delete")} <= names
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def _lab_columns(store: ResultStore) -> dict[str, set[tuple[str, bool]]]:
    from tests.engine.store.test_engines import _columns

    return _columns(store, LAB_TABLES)


def test_both_engines_have_the_same_lab_model_tables(tmp_path, pg_url):
    with ResultStore.open(tmp_path / "w.sqlite3") as sqlite, ResultStore.open(pg_url) as lab:
        assert _lab_columns(lab) == _lab_columns(sqlite)
        assert all(_lab_columns(lab).values())


def test_a_folder_that_is_not_one_model_is_refused(store_target, tmp_path):
    (tmp_path / "empty").mkdir()
    with ResultStore.open(store_target) as store, pytest.raises(LabModelError, match="not a model folder"):
        store.publish_lab_model(Path(tmp_path / "empty"), actor="ada")
