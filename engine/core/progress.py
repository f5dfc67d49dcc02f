"""Progress records and cancellation shared by every long engine operation.

Long operations are generators yielding :class:`Progress`; between yields they call
``cancel.raise_if_cancelled()`` so the GUI (or Ctrl-C in the CLI) can stop them cleanly.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from engine.core.errors import Cancelled


@dataclass(frozen=True)
class Progress:
    """One progress update. ``metrics`` is read-only so records can cross threads safely."""

    step: int
    total: int
    phase: str
    metrics: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    message: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.metrics, MappingProxyType):
            object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.step / self.total)


class CancelToken:
    """Thread-safe cancellation flag passed into engine generators."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking at once when cancelled; whether it was."""
        return self._event.wait(seconds)

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()
