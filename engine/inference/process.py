"""A :class:`~engine.inference.classifier.Classifier` in a child process, with the same ``classify_paths``.

Why: decoding, the white-cell check, white balance and the out-of-distribution statistics run
as many short NumPy calls, each of which takes the GIL. In the desktop app those calls shared
the GIL with Qt's event loop, which stalled it by 60–170 ms with the v1.2 model
(docs/performance.md). In a child process they cannot touch the app's GIL: the app's batch
thread only waits on a pipe (which releases the GIL), unpickles small records and commits them.

The child is started with ``spawn`` (no fork of a process that runs Qt threads), loads the
model once and serves one job at a time until :meth:`ClassifierProcess.close`. Between two
results it looks for a ``cancel`` message; a caller that stops reading (pause) simply leaves
the child blocked on a full pipe. Errors cross the pipe as the engine's own exception types,
with the child's traceback attached as a note; a child that dies is reported as a
:class:`~engine.core.errors.ModelError` naming its exit code, never as a hang.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import traceback
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from engine.core import errors
from engine.core.errors import AllSightError, Cancelled, ModelError
from engine.core.progress import CancelToken

if TYPE_CHECKING:  # the parent needs no NumPy or ONNX Runtime import
    from engine.core.records import ImageResult

log = logging.getLogger("allsight.classify_process")

#: Seconds to wait for the child to load the model (an ONNX export on a slow machine included).
START_TIMEOUT_S = 600.0
#: Seconds to wait for the child to acknowledge a cancel or a quit before it is killed.
STOP_TIMEOUT_S = 30.0
_POLL_S = 0.1


# ---------------------------------------------------------------------------- the child
def _portable(exc: BaseException) -> tuple[str, str, str]:
    return type(exc).__name__, str(exc), "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _serve(conn: Any, model: str, device: str, review_threshold: float | None, threads: int,
           nice: int = 0, precision: str = "auto") -> None:
    """The child's main loop: load the model, then answer ``classify`` requests until ``quit``."""
    if nice and hasattr(os, "nice"):
        os.nice(nice)  # before the heavy imports: the app's event loop comes first when cores are scarce
    try:
        from engine.inference.classifier import Classifier
        from engine.inference.runtime import configure_threads

        configure_threads(threads)
        classifier = Classifier(model, device, precision=precision)
        if review_threshold is not None:
            classifier.card = dataclasses.replace(classifier.card, review_threshold=float(review_threshold))
        conn.send(("ready", classifier.card, classifier.runtime))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", *_portable(exc)))
        return
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent went away
            return
        if message[0] == "quit":
            return
        if message[0] == "classify" and not _run_job(conn, classifier, *message[1:]):
            return
        # a "cancel" that arrives after its job ended needs no answer


def _run_job(conn: Any, classifier: Any, paths: list[str], batch_size: int, workers: int) -> bool:
    """Stream one job's results; False when the parent asked to quit meanwhile."""
    token = CancelToken()
    keep_serving = True
    results = classifier.classify_paths(paths, batch_size=batch_size, workers=workers, cancel=token)
    try:
        for result in results:
            conn.send(("result", result))
            while conn.poll():
                kind = conn.recv()[0]
                if kind in ("cancel", "quit"):
                    token.cancel()
                    keep_serving = kind != "quit"
            if token.cancelled:
                raise Cancelled()
        conn.send(("end", "done"))
    except Cancelled:
        conn.send(("end", "cancelled"))
    except (EOFError, OSError, BrokenPipeError):
        return False
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", *_portable(exc)))
    finally:
        results.close()
    return keep_serving


# ---------------------------------------------------------------------------- the parent
def _rebuild(name: str, message: str, child_traceback: str) -> AllSightError:
    """The engine exception the child raised, or a ModelError that names it."""
    cls = getattr(errors, name, None)
    exc: AllSightError
    try:
        if not (isinstance(cls, type) and issubclass(cls, AllSightError)):
            raise TypeError
        exc = cls(message)
    except TypeError:  # not an engine error, or one whose constructor takes more than a message
        exc = ModelError(f"the classifier process failed: {name}: {message}")
    exc.add_note("In the classifier process:\n" + child_traceback)
    return exc


class ClassifierProcess:
    """A classifier served by a child process (blocking: create it in a worker thread).

    ``card`` and ``runtime`` are the child's (the review-threshold override applied).
    :meth:`classify_paths` takes the same arguments as the in-process one and yields the same
    :class:`~engine.core.records.ImageResult` records, in order; one job runs at a time.
    """

    def __init__(self, model: str | Path, device: str = "auto", *, review_threshold: float | None = None,
                 threads: int = 1, nice: int = 0, start_timeout_s: float = START_TIMEOUT_S,
                 cancel: CancelToken | None = None, precision: str = "auto") -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe(duplex=True)
        self._process = ctx.Process(target=_serve, name="allsight-classifier", daemon=True,
                                    args=(child_conn, str(model), str(device), review_threshold, int(threads), int(nice),
                                          str(precision)))
        self._process.start()
        child_conn.close()
        self._job_lock = threading.Lock()
        self._closed = False
        try:
            message = self._receive(start_timeout_s, what="load the model", cancel=cancel)
        except Cancelled:
            self.close(timeout_s=0.5)  # it is loading, not listening: do not wait for it
            raise
        except BaseException:
            self.close()
            raise
        if message[0] != "ready":
            self.close()
            raise _rebuild(*message[1:]) if message[0] == "error" else ModelError(
                f"the classifier process answered {message[0]!r} instead of loading the model")
        _, self.card, self.runtime = message
        log.info("classifier process %s serves %s %s on %s", self._process.pid, self.card.id,
                 self.card.version, self.runtime)

    @property
    def alive(self) -> bool:
        return not self._closed and self._process.is_alive()

    @property
    def busy(self) -> bool:
        """A job is running (its generator has not ended)."""
        return self._job_lock.locked()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def _died(self, what: str) -> ModelError:
        self._process.join(1.0)
        self._closed = True
        return ModelError(f"the classifier process stopped unexpectedly while trying to {what} "
                          f"(exit code {self._process.exitcode}); classifying again starts a new one")

    def _receive(self, timeout_s: float | None, what: str = "classify", cancel: CancelToken | None = None) -> tuple:
        """The next message, waiting at most ``timeout_s`` (None: as long as the child lives);
        ``cancel`` raises :class:`~engine.core.errors.Cancelled` while waiting."""
        waited = 0.0
        while True:
            if cancel is not None and cancel.cancelled:
                raise Cancelled()
            try:
                if self._conn.poll(_POLL_S):
                    return self._conn.recv()
            except (EOFError, OSError):
                raise self._died(what) from None
            if not self._process.is_alive():
                raise self._died(what)
            waited += _POLL_S
            if timeout_s is not None and waited >= timeout_s:
                self.close()
                raise ModelError(f"the classifier process did not {what} within {timeout_s:.0f} s")

    def _send(self, *message: Any) -> None:
        try:
            self._conn.send(message)
        except (EOFError, OSError):
            raise self._died("classify") from None

    def classify_paths(self, paths: Iterable[str | Path], *, batch_size: int = 64, workers: int = 2,
                       cancel: CancelToken | None = None) -> Iterator[ImageResult]:
        """Yield one result per path, in order. ``cancel`` is honoured within one result (the
        child finishes the batch it is on; results it made after the cancel are dropped)."""
        if self._closed:
            raise ModelError("the classifier process has been closed")
        if cancel is not None:
            cancel.raise_if_cancelled()
        if not self._job_lock.acquire(blocking=False):
            raise ModelError("the classifier process is already running a job")
        try:
            self._send("classify", [str(p) for p in paths], int(batch_size), int(workers))
            ended = False
            try:
                while True:
                    if cancel is not None and cancel.cancelled:
                        break
                    message = self._receive(None)
                    kind = message[0]
                    if kind == "result":
                        yield message[1]
                    elif kind == "end":
                        ended = True
                        if message[1] == "cancelled":
                            raise Cancelled()
                        return
                    elif kind == "error":
                        ended = True
                        raise _rebuild(*message[1:])
            finally:
                if not ended:
                    self._stop_job()
            raise Cancelled()
        finally:
            self._job_lock.release()

    def _stop_job(self) -> None:
        """Ask the child to stop the job and read up to its end (the pipe stays in step)."""
        if not self.alive:
            return
        try:
            self._conn.send(("cancel",))
            while True:
                kind = self._receive(STOP_TIMEOUT_S, what="stop")[0]
                if kind in ("end", "error"):
                    return
        except ModelError as exc:
            log.warning("%s", exc)
            self.close()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the child (idempotent). A job in progress is abandoned."""
        if self._closed and not self._process.is_alive():
            return
        self._closed = True
        with contextlib.suppress(EOFError, OSError):
            self._conn.send(("quit",))
        self._process.join(timeout_s)
        if self._process.is_alive():
            log.warning("the classifier process did not stop within %.0f s; killing it", timeout_s)
            self._process.kill()
            self._process.join(timeout_s)
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

