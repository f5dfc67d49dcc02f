"""Stand-ins for the classifier process, for the batch-queue and queue-panel tests: no model, no
child process."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from engine import CLASS_IDS
from engine.core.errors import ModelError
from engine.core.records import ImageResult

SHA = "ab" * 32


class FakeClassifier:
    """Yields an "ok" Benign result per path. ``gated``: each image waits for a permit
    (:meth:`allow`) so a test decides how many results exist when it pauses or cancels."""

    def __init__(self, *, gated: bool = False, fail_at: int | None = None, error: BaseException | None = None):
        self.card = SimpleNamespace(id="fake", version="1.0", weights_sha256=SHA, review_threshold=0.5)
        self.runtime = "cpu (fake)"
        self.calls: list[list[str]] = []
        self._permits = threading.Semaphore(0) if gated else None
        self.fail_at, self.error = fail_at, error or ModelError("the model broke")

    def allow(self, n: int) -> None:
        for _ in range(n):
            self._permits.release()

    def classify_paths(self, paths, *, batch_size, workers, cancel):
        paths = list(paths)
        self.calls.append(paths)
        for i, path in enumerate(paths):
            if self._permits is not None:
                while not self._permits.acquire(timeout=0.02):
                    cancel.raise_if_cancelled()
            cancel.raise_if_cancelled()
            if i == self.fail_at:
                raise self.error
            yield ImageResult(path, "ok", "Benign", 0.9, {c: 0.9 if c == "Benign" else 0.0 for c in CLASS_IDS})


class FakeHost:
    """``expected``: the weights' sha256 the card states (what the batch thread plans with while
    the classifier "starts"); ``while_loading``: called in :meth:`batch_classifier` before it
    returns, as a slow start would let other work happen meanwhile."""

    def __init__(self, classifier: FakeClassifier | None = None, error: BaseException | None = None, *,
                 expected: str | None = SHA, while_loading=None):
        self.classifier, self.error = classifier or FakeClassifier(), error
        self.expected, self.while_loading = expected, while_loading

    def expected_weights_sha256(self):
        return self.expected

    def batch_classifier(self, cancel=None):
        if self.while_loading is not None:
            self.while_loading()
        if self.error is not None:
            raise self.error
        return self.classifier


def slowed(classify_paths, seconds: float):
    """``ClassifierProcess.classify_paths`` made slow where the app receives results: a sleep of
    ``seconds`` before each batch (a monkeypatch does not reach the child process)."""

    def slow(self, paths, **kwargs):
        batch_size = max(1, int(kwargs.get("batch_size", 1)))
        for i, result in enumerate(classify_paths(self, paths, **kwargs)):
            if i % batch_size == 0:
                time.sleep(seconds)
            yield result

    return slow
