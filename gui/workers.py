"""Background work for the GUI: a small pool that runs plain functions off the GUI thread and
delivers their results (or errors) back to the GUI thread.

Engine calls are plain blocking functions; :class:`WorkerPool` runs them on a private
``QThreadPool`` and calls ``on_result(value)`` / ``on_error(TaskError)`` in the GUI thread. An
error without an ``on_error`` goes to the one error path (:func:`gui.errors.show_error`).

Why not superqt's workers: importing ``superqt`` loads its widgets and ``qtpy`` (~0.4 s on the
2-core build machine, measured 2026-12-02), on the GUI thread at launch, against a launch target
of 2 s (measured 0.48 s) and a 50 ms stall budget; this pool needs only a ``QRunnable`` and one
signal. superqt is therefore not a dependency.

``shutdown()`` drops queued tasks, waits for running ones and ignores their late results; the
main window calls it when it closes (and tests call it in teardown) so no thread outlives the
widgets it reports to.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal, Slot

log = logging.getLogger("allsight.gui.workers")

#: Priorities for :meth:`WorkerPool.submit` (higher runs first among queued tasks).
PRIORITY_INTERACTIVE = 10  # what the user is looking at right now
PRIORITY_PREVIEW = 5
PRIORITY_BACKGROUND = 0  # thumbnails, scans


@dataclass(frozen=True)
class TaskError:
    exc: BaseException
    details: str


class Task(QRunnable):
    """One call of ``fn(*args, **kwargs)``; see :meth:`WorkerPool.submit`."""

    def __init__(self, pool: WorkerPool, fn: Callable[..., Any], args: tuple, kwargs: dict,
                 on_result: Callable[[Any], None] | None, on_error: Callable[[TaskError], None] | None,
                 name: str):
        super().__init__()
        self.setAutoDelete(False)  # the pool keeps the Python object alive until delivery
        self._pool = pool
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self.on_result, self.on_error = on_result, on_error
        self.name = name
        self.cancelled = False

    def cancel(self) -> None:
        """Do not deliver this task's result (and do not start it if still queued)."""
        self.cancelled = True

    def run(self) -> None:  # worker thread
        lower_this_threads_priority()
        if self.cancelled:
            self._pool._signals.done.emit(self, None, None)
            return
        try:
            value = self._fn(*self._args, **self._kwargs)
        except BaseException as exc:  # noqa: BLE001 - everything is reported to the GUI thread
            error = TaskError(exc, "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
            self._pool._signals.done.emit(self, None, error)
        else:
            self._pool._signals.done.emit(self, value, None)


#: Worker threads run at this Unix niceness (Linux applies it per thread), so thumbnail decoding
#: never takes the core the event loop needs (docs/performance.md, "The batch in a child process").
WORKER_NICENESS = 10
_niced = threading.local()


def lower_this_threads_priority() -> None:
    """Run the calling (background) thread at :data:`WORKER_NICENESS` from now on (Linux; once)."""
    if getattr(_niced, "done", False):
        return
    _niced.done = True
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICENESS)
        except OSError:  # not permitted here: the thread keeps its priority
            log.debug("could not lower a worker thread's priority", exc_info=True)


class _Signals(QObject):
    done = Signal(object, object, object)  # task, value, TaskError | None


class WorkerPool(QObject):
    """Runs functions in background threads; results come back in the GUI thread."""

    #: Number of tasks queued or running changed (for a busy indicator).
    busy_changed = Signal(int)

    def __init__(self, parent: QObject | None = None, max_threads: int | None = None):
        super().__init__(parent)
        self._pool = QThreadPool(self)
        if max_threads is None:
            # Leave a core for the GUI; two is plenty for thumbnails + one preview.
            max_threads = max(1, min(4, QThread.idealThreadCount() - 1))
        self._pool.setMaxThreadCount(max(1, max_threads))
        self._signals = _Signals()
        self._signals.done.connect(self._deliver)
        self._tasks: set[Task] = set()
        self._closed = False
        self.default_error_parent = None  # widget the default error dialog is shown over

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def submit(self, fn: Callable[..., Any], *args: Any,
               on_result: Callable[[Any], None] | None = None,
               on_error: Callable[[TaskError], None] | None = None,
               priority: int = PRIORITY_BACKGROUND, name: str = "", **kwargs: Any) -> Task:
        task = Task(self, fn, args, kwargs, on_result, on_error, name or getattr(fn, "__name__", "task"))
        if self._closed:
            task.cancel()
            return task
        self._tasks.add(task)
        self._pool.start(task, priority)
        self.busy_changed.emit(len(self._tasks))
        return task

    def cancel(self, task: Task) -> None:
        task.cancel()
        if self._pool.tryTake(task):  # never started: it will not emit, so forget it here
            self._tasks.discard(task)
            self.busy_changed.emit(len(self._tasks))

    @Slot(object, object, object)
    def _deliver(self, task: Task, value: Any, error: TaskError | None) -> None:  # GUI thread
        self._tasks.discard(task)
        self.busy_changed.emit(len(self._tasks))
        if self._closed or task.cancelled:
            return
        if error is None:
            if task.on_result is not None:
                task.on_result(value)
        elif task.on_error is not None:
            task.on_error(error)
        else:
            from gui.errors import error_message, show_error

            show_error(self.default_error_parent, error_message(error.exc), error.details)

    def wait(self, msecs: int = -1) -> bool:
        """Wait for queued and running tasks (results are delivered by the event loop later)."""
        return self._pool.waitForDone(msecs)

    def shutdown(self, msecs: int = 10_000) -> bool:
        """Drop queued tasks, wait for the running ones, ignore every result still to come."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        self._pool.clear()
        done = self._pool.waitForDone(msecs)
        if not done:
            log.warning("background tasks still running after %d ms at shutdown", msecs)
        self._tasks.clear()
        return done
