"""The worker pool's threads run below the event loop's priority."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from gui.workers import WORKER_NICENESS, lower_this_threads_priority


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_a_background_thread_lowers_only_its_own_priority():
    seen = {}

    def work():
        lower_this_threads_priority()
        lower_this_threads_priority()  # once per thread: not lowered twice
        seen["thread"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen["thread"] == min(19, before + WORKER_NICENESS)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before  # the caller's is unchanged
