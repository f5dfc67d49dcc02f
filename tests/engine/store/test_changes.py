"""Live shared state: a store's ChangeWatcher sees what other connections (other workstations)
commit — on SQLite by polling the audit log, on PostgreSQL by LISTEN/NOTIFY — and never what was
committed before it started or what rolled back."""

from __future__ import annotations

import threading
import time

import pytest

from engine.store.changes import ChangeWatcher
from engine.store.results import ResultStore
from tests.engine.store.conftest import raw
from tests.pg_server import fresh_database_url

#: What "within a few seconds" (issue 16) means in these tests: SQLite polls every second, and a
#: PostgreSQL notification is read at once.
SEEN_WITHIN_S = 5.0


def first_change(watcher: ChangeWatcher, within: float = SEEN_WITHIN_S):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        change = watcher.wait(deadline - time.monotonic())
        if change is not None:
            return change
    return None


@pytest.fixture
def two_workstations(store_target):
    """Two stores on the same database, as two workstations have."""
    here, there = ResultStore.open(store_target), ResultStore.open(store_target)
    yield here, there
    here.close()
    there.close()


def test_another_workstations_new_sample_is_seen_within_seconds(two_workstations, tmp_path):
    here, there = two_workstations
    with here.watch_changes() as watcher:
        started = time.monotonic()
        there.register_sample("S-1", str(tmp_path / "S-1"), operator="ana")
        change = first_change(watcher)
        assert change is not None, "the other workstation's sample was not seen"
        assert time.monotonic() - started < SEEN_WITHIN_S
        assert change.touches("S-1") and not change.touches("S-2")
        assert change.sample_ids == frozenset({"S-1"})
        assert change.n_entries >= 1 and change.last_pk >= change.first_pk


def test_what_was_committed_before_the_watcher_started_does_not_count(two_workstations, tmp_path):
    here, there = two_workstations
    there.register_sample("OLD", str(tmp_path / "OLD"), operator="ana")
    with here.watch_changes(poll_s=0.2) as watcher:
        assert watcher.wait(0.6) is None
        there.register_sample("NEW", str(tmp_path / "NEW"), operator="ana")
        change = first_change(watcher)
        assert change is not None and change.sample_ids == frozenset({"NEW"})
        assert watcher.wait(0.6) is None  # each entry is reported once


def test_a_rename_is_reported_with_the_old_and_the_new_id(two_workstations, tmp_path):
    here, there = two_workstations
    there.register_sample("S-9", str(tmp_path / "S-9"), operator="ana")
    with here.watch_changes() as watcher:
        there.update_sample("S-9", new_sample_id="S-10", actor="ana")
        change = first_change(watcher)
        assert change is not None
        assert change.renamed == (("S-9", "S-10"),)
        assert change.touches("S-9") and change.touches("S-10")
        assert change.current_id("S-9") == "S-10"
        assert "update_sample" in change.actions


def test_a_rolled_back_transaction_is_never_reported(two_workstations, tmp_path):
    from engine.store.rows import audit

    here, there = two_workstations
    with here.watch_changes(poll_s=0.2) as watcher:
        with pytest.raises(RuntimeError), raw(there, write=True) as conn:
            audit(conn, "ana", "create_sample", None, label="never committed")
            raise RuntimeError("the workstation failed mid-transaction")
        assert watcher.wait(1.5) is None
        there.register_sample("S-2", str(tmp_path / "S-2"), operator="ana")
        change = first_change(watcher)
        assert change is not None and change.sample_ids == frozenset({"S-2"})
        assert change.n_entries == 1


def test_close_from_another_thread_ends_a_waiting_call_at_once(store_target):
    store = ResultStore.open(store_target)
    try:
        watcher = store.watch_changes()
        threading.Timer(0.3, watcher.close).start()
        started = time.monotonic()
        assert watcher.wait(30) is None
        assert time.monotonic() - started < 2.0
        assert watcher.closed
        assert list(watcher.changes()) == []  # a closed watcher yields nothing and ends
        watcher.close()  # idempotent
    finally:
        store.close()


def test_postgresql_notifications_arrive_long_before_the_next_poll(pg_url, tmp_path):
    """With polling set to a minute, only the NOTIFY can make the change seen within seconds."""
    here, there = ResultStore.open(pg_url), ResultStore.open(pg_url)
    try:
        with here.watch_changes(poll_s=60) as watcher:
            assert watcher.listening and watcher.problem is None
            watcher.wait(0.3)  # the read at connection time
            there.register_sample("S-3", str(tmp_path / "S-3"), operator="ana")
            started = time.monotonic()
            change = first_change(watcher, within=5.0)
            assert change is not None and change.touches("S-3")
            assert time.monotonic() - started < 3.0
    finally:
        here.close()
        there.close()


def test_a_stopped_server_is_reported_and_what_happened_meanwhile_is_caught_up(own_pg_server, tmp_path):
    url = fresh_database_url(own_pg_server)
    here = ResultStore.open(url)
    try:
        with here.watch_changes(poll_s=60) as watcher:
            watcher.wait(0.3)
            own_pg_server.halt()
            assert watcher.wait(1.5) is None
            assert watcher.problem is not None and "not listening" in watcher.problem
            own_pg_server.resume()
            there = ResultStore.open(url)
            try:
                # Committed before the watcher has reconnected: no one heard the notification.
                there.register_sample("S-4", str(tmp_path / "S-4"), operator="ana")
            finally:
                there.close()
            # Caught by the short poll while not listening, or at once on reconnecting.
            change = first_change(watcher, within=10.0)
            assert change is not None and change.touches("S-4")
            deadline = time.monotonic() + 40.0  # the listener comes back after its back-off (1, 2, 4 s...)
            while watcher.problem is not None and time.monotonic() < deadline:
                watcher.wait(0.5)
            assert watcher.problem is None and watcher.listening
    finally:
        here.close()
