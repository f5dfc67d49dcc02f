"""Guards against Qt-binding bugs that would crash the app in a long session."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    changed = Signal(int)


def test_emitting_a_signal_does_not_leak_or_steal_references_to_bools(qapp):
    # PySide6 6.12.0's Signal.emit() returned its bool without a new reference: every emit
    # lowered True's refcount, and after enough emits the interpreter aborted with
    # "deallocating True or False". pyproject.toml excludes that release.
    emitter = _Emitter()
    received: list[int] = []
    emitter.changed.connect(received.append)
    before = sys.getrefcount(True), sys.getrefcount(False)
    for i in range(50):
        emitter.changed.emit(i)
    after = sys.getrefcount(True), sys.getrefcount(False)
    assert received == list(range(50))
    assert after[0] >= before[0] and after[1] >= before[1], (before, after)
