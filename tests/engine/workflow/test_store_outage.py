"""The lab database stops mid-batch: the run pauses with one clear message per try, goes on where
it was when the server is back, and nothing is lost or recorded twice (a real PostgreSQL server,
stopped as a crash would stop it and started again)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from engine.core.errors import Cancelled
from engine.core.progress import CancelToken
from engine.core.records import ImageResult, ImageStatus
from engine.store.errors import StoreError, StoreUnavailableError
from engine.store.results import ResultStore
from engine.workflow.classification import StoreWait, classify_samples, prepare_sample, when_available
from tests.engine.workflow.test_classification import CARD, make_images
from tests.pg_server import PostgresServer, fresh_database_url


class OutageClassifier:
    """Calls every image "Pre"; just before the ``down_at``-th result the server goes down."""

    def __init__(self, server: PostgresServer, down_at: int):
        self.card = CARD
        self.server, self.down_at = server, down_at

    def classify_paths(self, paths, *, batch_size=64, workers=2, cancel=None):
        for i, path in enumerate(paths):
            if i == self.down_at:
                self.server.halt()
            yield ImageResult(str(path), ImageStatus.OK, "Pre", 0.97, {"Pre": 0.97})


def test_a_batch_pauses_while_the_server_is_down_and_loses_nothing(own_pg_server, tmp_path):
    url = fresh_database_url(own_pg_server)
    store = ResultStore.open(url)
    try:
        paths = make_images(tmp_path / "S-1", 6)
        sample, _ = store.register_sample("S-1", str(tmp_path / "S-1"), operator="ana")
        plan = prepare_sample(store, sample.sample_id, paths, CARD.weights_sha256)
        waits: list[StoreWait] = []
        restarted = threading.Event()

        def waiting(wait: StoreWait) -> None:
            waits.append(wait)
            if len(waits) == 2:  # down for a couple of tries, then back
                own_pg_server.resume()
                restarted.set()

        events = list(classify_samples(store, OutageClassifier(own_pg_server, down_at=3), [plan], waiting=waiting))
        assert restarted.is_set()
        assert len(waits) >= 2
        assert "lab database" in waits[0].describe() and "nothing is lost" in waits[0].describe()
        assert waits[1].retry_in_s > waits[0].retry_in_s  # backs off
        assert [e.recorded for e in events] == [True] * 6
        assert [e.done for e in events] == [1, 2, 3, 4, 5, 6]
        stored = store.predictions(sample.sample_id, CARD.weights_sha256)
        assert sorted(Path(r.path).name for r in stored) == sorted(p.name for p in paths)
        with store._db.read() as conn:
            rows = conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
        assert rows == 6  # none lost, none twice
        assert store.verify_audit().ok
    finally:
        store.close()


def test_a_down_pg_server_gives_a_retryable_error_and_a_clear_message(own_pg_server):
    store = ResultStore.open(fresh_database_url(own_pg_server))
    try:
        own_pg_server.halt()
        with pytest.raises(StoreUnavailableError, match="cannot be reached; nothing was written"):
            store.register_sample("S-2", "/nowhere", operator="ana")
        own_pg_server.resume()
        sample, _ = when_available(lambda: store.register_sample("S-2", "/nowhere", operator="ana"))
        assert sample.sample_id == "S-2"
    finally:
        store.close()


def test_cancel_ends_the_wait_at_once():
    cancel = CancelToken()
    calls = []

    def down() -> None:
        calls.append(time.monotonic())
        raise StoreUnavailableError("lab: the lab database server cannot be reached")

    threading.Timer(0.3, cancel.cancel).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        when_available(down, cancel=cancel)
    assert time.monotonic() - started < 0.9  # the first wait is 1 s: cancel cut it short
    assert len(calls) == 1


def test_other_store_errors_are_not_retried():
    calls = []

    def refused() -> None:
        calls.append(1)
        raise StoreError("no sample 'X'")

    with pytest.raises(StoreError, match="no sample"):
        when_available(refused)
    assert calls == [1]


def test_sqlite_errors_are_never_taken_for_a_lost_server(tmp_path):
    store = ResultStore.open(tmp_path / "r.db")
    try:
        with pytest.raises(StoreError) as raised, store._db.read() as conn:
            conn.execute("SELECT * FROM no_such_table")
        assert not isinstance(raised.value, StoreUnavailableError)
    finally:
        store.close()
