"""gui.queue_panel: one row per job of a real BatchQueue (fake classifier, real result store),
and which buttons are enabled when the queue is empty, waiting, running, paused, done or failed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from engine.core.errors import ModelError
from gui.batch import BatchQueue
from gui.queue_panel import QueuePanel
from tests.gui.fakes import FakeClassifier, FakeHost

CONTROLS = ("start", "pause", "resume", "cancel", "remove", "up", "down")


@pytest.fixture
def make_panel(qtbot, store):
    queues: list[BatchQueue] = []

    def make(host: FakeHost | None = None) -> QueuePanel:
        queue = BatchQueue(store, host or FakeHost(FakeClassifier(gated=True)), batch_size=1, decode_workers=1)
        queues.append(queue)
        panel = QueuePanel(queue)
        qtbot.addWidget(panel)
        return panel

    yield make
    for q in queues:
        q.shutdown(10)


def add(panel: QueuePanel, store, tmp_path, name: str, n: int):
    store.create_or_get_sample(name, tmp_path)
    return panel.queue.add(SimpleNamespace(sample_id=name, folder=tmp_path / name), name,
                           [str(tmp_path / name / f"{i}.png") for i in range(n)])


def enabled(panel: QueuePanel) -> set[str]:
    return {name for name in CONTROLS if getattr(panel, f"{name}_button").isEnabled()}


def cells(panel: QueuePanel, col: int) -> list[str]:
    return [panel.table.item(row, col).text() for row in range(panel.table.rowCount())]


def test_an_empty_queue_has_no_rows_and_only_add_enabled(make_panel):
    panel = make_panel()
    assert panel.table.rowCount() == 0 and panel.overall_label.text().startswith("Queue empty")
    assert enabled(panel) == set() and panel.add_button.isEnabled()
    panel.can_add = lambda: False
    panel.refresh()
    assert not panel.add_button.isEnabled()


def test_each_job_is_a_row_in_queue_order_and_waiting_jobs_can_be_started(make_panel, store, tmp_path):
    panel = make_panel()
    a, b = add(panel, store, tmp_path, "A", 3), add(panel, store, tmp_path, "B", 2)
    assert cells(panel, 0) == ["A", "B"] and cells(panel, 1) == ["Queued", "Queued"]
    assert cells(panel, 2) == ["0/3", "0/2"]
    assert panel.table.item(0, 0).toolTip() == str(tmp_path / "A")
    assert panel.overall_label.text() == "0/5 images done · 2 sample(s) waiting"
    assert enabled(panel) == {"start"}
    panel.queue.move(b, -1)
    assert cells(panel, 0) == ["B", "A"]
    panel.queue.remove(a)
    assert cells(panel, 0) == ["B"]


def test_the_selected_job_can_be_removed_and_moved_only_where_it_can_go(make_panel, store, tmp_path):
    panel = make_panel()
    a, b, c = (add(panel, store, tmp_path, name, 1) for name in "ABC")
    panel.select_job(a)
    assert panel.selected_job() is a and enabled(panel) == {"start", "remove", "down"}
    panel.select_job(b)
    assert enabled(panel) == {"start", "remove", "up", "down"}
    panel.down_button.click()
    assert panel.queue.jobs == [a, c, b] and panel.selected_job() is b  # the moved job stays selected
    assert enabled(panel) == {"start", "remove", "up"}
    panel.remove_button.click()
    assert panel.queue.jobs == [a, c] and cells(panel, 0) == ["A", "C"]


def test_while_running_pause_and_cancel_are_enabled_and_paused_offers_resume(qtbot, make_panel, store, tmp_path):
    panel = make_panel()
    classifier = panel.queue.model_host.classifier
    add(panel, store, tmp_path, "A", 3)
    panel.start_button.click()
    qtbot.waitUntil(lambda: enabled(panel) == {"pause", "cancel"}, timeout=10000)
    classifier.allow(1)
    qtbot.waitUntil(lambda: cells(panel, 2) == ["1/3"] and cells(panel, 1) == ["Running"], timeout=10000)
    panel.pause_button.click()
    assert enabled(panel) == {"resume", "cancel"} and cells(panel, 1) == ["Paused"]
    assert panel.overall_label.text().startswith("Paused · 1/3")
    panel.resume_button.click()
    assert enabled(panel) == {"pause", "cancel"} and cells(panel, 1) == ["Running"]
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: not panel.queue.running, timeout=10000)
    assert cells(panel, 1) == ["Cancelled — Cancelled"] and cells(panel, 2) == ["1/3"]
    assert enabled(panel) == {"start"}  # Start carries on with what is left


def test_a_finished_queue_shows_done_and_cannot_be_started_again(qtbot, make_panel, store, tmp_path):
    panel = make_panel(FakeHost(FakeClassifier()))
    add(panel, store, tmp_path, "A", 2)
    panel.start_button.click()
    qtbot.waitUntil(lambda: not panel.queue.running, timeout=10000)
    assert cells(panel, 1) == ["Done — 2 classified"] and cells(panel, 2) == ["2/2"]
    assert panel.overall_bar.format() == "2/2" and panel.overall_bar.value() == 1000
    assert panel.overall_label.text() == "2/2 images done"
    assert enabled(panel) == set()


def test_a_failed_job_shows_why_and_can_be_started_again(qtbot, make_panel, store, tmp_path):
    panel = make_panel(FakeHost(error=ModelError("model file missing")))
    add(panel, store, tmp_path, "A", 2)
    add(panel, store, tmp_path, "B", 1)
    panel.start_button.click()
    qtbot.waitUntil(lambda: not panel.queue.running, timeout=10000)
    assert cells(panel, 1) == ["Failed — model file missing", "Queued"]
    assert panel.table.item(0, 1).toolTip() == "model file missing"
    assert enabled(panel) == {"start"}


def test_a_job_waits_for_the_lab_database_and_then_goes_on(qtbot, make_panel, store, tmp_path, monkeypatch):
    from engine.store.errors import StoreUnavailableError

    panel = make_panel(FakeHost(FakeClassifier()))
    add(panel, store, tmp_path, "A", 3)
    real, outage = store.record_predictions, {"left": 2}

    def down_then_back(*args, **kwargs):  # the server is down for the first two tries
        if outage["left"]:
            outage["left"] -= 1
            raise StoreUnavailableError("lab: the lab database server cannot be reached; nothing was written")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "record_predictions", down_then_back)
    panel.start_button.click()
    qtbot.waitUntil(lambda: cells(panel, 1) == ["Waiting for the lab database"], timeout=10000)
    assert "nothing is lost" in panel.table.item(0, 1).toolTip()
    qtbot.waitUntil(lambda: not panel.queue.running, timeout=15000)
    assert cells(panel, 1) == ["Done — 3 classified"] and cells(panel, 2) == ["3/3"]
    assert len(store.predictions("A")) == 3
