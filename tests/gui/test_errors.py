"""The single error path: one dialog (with details), logged; uncaught exceptions reach it."""

from __future__ import annotations

import logging
import sys
import threading

import pytest

from engine.core.errors import ModelError
from gui import errors
from gui.workers import WorkerPool


def test_show_error_logs_and_shows_one_dialog(qtbot, dialogs, caplog):
    with caplog.at_level(logging.ERROR):
        errors.show_error(None, "Something failed", "Traceback: line 1")
    assert len(dialogs) == 1
    assert dialogs[0]["text"] == "Something failed"
    assert dialogs[0]["details"] == "Traceback: line 1"
    assert "Something failed" in caplog.text


def test_errors_while_a_dialog_is_open_join_it(qtbot, dialogs, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    def exec_with_second_error(box):
        errors.show_error(None, "second", "details 2")  # arrives while the first is open
        dialogs.append({"text": box.text(), "details": box.detailedText(), "info": box.informativeText()})
        return 0

    monkeypatch.setattr(QMessageBox, "exec", exec_with_second_error)
    errors.show_error(None, "first", "details 1")
    assert len(dialogs) == 1
    assert "second" in dialogs[0]["details"] and "details 1" in dialogs[0]["details"]
    assert "1 more error" in dialogs[0]["info"]


def test_error_message_wording():
    assert errors.error_message(ModelError("no model 'x'")) == "no model 'x'"
    assert errors.error_message(ValueError("boom")).startswith("An unexpected error occurred: ValueError")


@pytest.fixture
def hooks():
    errors.install_exception_hooks()
    yield
    errors.uninstall_exception_hooks()


def test_excepthook_shows_dialog(qtbot, dialogs, hooks):
    try:
        raise RuntimeError("slot exploded")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    assert len(dialogs) == 1
    assert "slot exploded" in dialogs[0]["text"]
    assert "Traceback" in dialogs[0]["details"]


def test_thread_exception_reaches_the_gui_thread(qtbot, dialogs, hooks):
    def boom():
        raise ValueError("worker thread exploded")

    thread = threading.Thread(target=boom, name="test-boom")
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: len(dialogs) == 1, timeout=5000)
    assert "worker thread exploded" in dialogs[0]["text"]
    assert "test-boom" in dialogs[0]["details"]


def test_worker_error_without_handler_goes_to_dialog(qtbot, dialogs):
    pool = WorkerPool(max_threads=1)
    try:
        pool.submit(lambda: 1 / 0)
        qtbot.waitUntil(lambda: len(dialogs) == 1, timeout=5000)
    finally:
        pool.shutdown()
    assert "ZeroDivisionError" in dialogs[0]["text"]
    assert "Traceback" in dialogs[0]["details"]


def test_worker_results_come_back_in_order_of_completion_on_gui_thread(qtbot):
    from PySide6.QtCore import QThread
    from PySide6.QtWidgets import QApplication

    pool = WorkerPool(max_threads=2)
    seen = []
    try:
        for i in range(5):
            pool.submit(lambda i=i: i * i, on_result=lambda v: seen.append(
                (v, QThread.currentThread() is QApplication.instance().thread())))
        qtbot.waitUntil(lambda: len(seen) == 5, timeout=5000)
    finally:
        pool.shutdown()
    assert sorted(v for v, _ in seen) == [0, 1, 4, 9, 16]
    assert all(on_gui for _, on_gui in seen)


def test_shutdown_drops_late_results(qtbot):
    import time

    pool = WorkerPool(max_threads=1)
    seen = []
    pool.submit(time.sleep, 0.2, on_result=seen.append)
    pool.submit(time.sleep, 0.2, on_result=seen.append)  # still queued: never runs
    assert pool.shutdown()
    qtbot.wait(50)
    assert seen == []
