"""The model host's native-library preloading (run in fresh interpreters: the test process has
long imported both libraries)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_CHECK = r"""
import sys
from gui import model_host
name = sys.argv[1]
preload = {"onnxruntime": model_host.preload_onnxruntime_library,
           "torch": model_host.preload_torch_libraries}[name]
assert name not in sys.modules
ok = preload()
maps = open("/proc/self/maps").read()
mapped = {"onnxruntime": "onnxruntime_pybind11_state", "torch": "libtorch_global_deps"}[name] in maps
assert name not in sys.modules  # mapped, not imported
__import__(name)  # the real import still works on top of the preloaded library
print(ok, mapped, preload())  # a second call: already imported, nothing to do
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="preloading is a Linux-only measure")
@pytest.mark.parametrize("package", ["onnxruntime", "torch"])
def test_native_library_is_mapped_before_the_import(package):
    out = subprocess.run([sys.executable, "-c", _CHECK, package], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "False"]


def test_batch_classifier_runs_in_a_child_kept_until_the_spec_changes(tmp_path):
    import os

    from gui.model_host import ModelHost, ModelSpec
    from tests.conftest import save_tiny_model

    model = str(save_tiny_model(tmp_path / "models").weights_path)
    host = ModelHost(ModelSpec(model, "cpu"))
    try:
        assert host.loaded() is None  # nothing loads until asked
        first = host.batch_classifier()
        assert first.pid != os.getpid() and first.alive
        assert host.batch_classifier() is first and host.loaded() is first
        host.configure(ModelSpec(model, "cpu", review_threshold=0.9))
        assert host.loaded() is None
        second = host.batch_classifier()
        assert second is not first and second.card.review_threshold == 0.9
        assert not first.alive  # retired and idle: closed at the next request
    finally:
        host.release()
    assert not second.alive and host.loaded() is None


def test_a_dead_batch_process_is_replaced_on_the_next_request(tmp_path):
    from gui.model_host import ModelHost, ModelSpec
    from tests.conftest import save_tiny_model

    host = ModelHost(ModelSpec(str(save_tiny_model(tmp_path / "models").weights_path), "cpu"))
    try:
        first = host.batch_classifier()
        first._process.kill()
        first._process.join(5)
        assert host.loaded() is None
        assert host.batch_classifier() is not first
    finally:
        host.release()


def test_expected_weights_sha256_is_the_cards_without_loading_and_none_when_unreadable(tmp_path):
    from gui.model_host import ModelHost, ModelSpec
    from tests.conftest import save_tiny_model

    card = save_tiny_model(tmp_path / "models")
    host = ModelHost(ModelSpec(str(card.weights_path), "cpu"))
    assert len(card.weights_sha256) == 64 and host.expected_weights_sha256() == card.weights_sha256
    assert host.loaded() is None  # nothing was loaded to answer
    host.configure(ModelSpec(str(tmp_path / "missing.safetensors"), "cpu"))
    assert host.expected_weights_sha256() is None


def test_the_classifier_process_uses_every_core_unless_told_otherwise(monkeypatch):
    from gui.model_host import classifier_process_threads, default_thread_count

    monkeypatch.delenv("ALLSIGHT_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    # The app's own compute keeps a core for the event loop; the niced child need not.
    assert (classifier_process_threads(), default_thread_count()) == (2, 1)
    monkeypatch.setenv("ALLSIGHT_THREADS", "3")
    assert classifier_process_threads() == 3


def test_warm_up_starts_the_process_in_its_own_thread_and_release_stops_it(tmp_path):
    import time

    from gui.model_host import ModelHost, ModelSpec
    from tests.conftest import save_tiny_model

    host = ModelHost(ModelSpec(str(save_tiny_model(tmp_path / "models").weights_path), "cpu"))
    try:
        t0 = time.monotonic()
        host.warm_up()
        assert time.monotonic() - t0 < 0.5  # returns at once; the load goes on in its thread
        deadline = time.monotonic() + 60
        while host.loaded() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        process = host.loaded()
        assert process is not None and process.alive
        host.warm_up()  # already running for this spec: nothing new
        assert host.batch_classifier() is process
    finally:
        host.release()
    assert not process.alive


def test_release_during_a_warm_up_stops_the_load_and_leaves_no_thread(tmp_path):
    import threading

    from gui.model_host import ModelHost, ModelSpec
    from tests.conftest import save_tiny_model

    host = ModelHost(ModelSpec(str(save_tiny_model(tmp_path / "models").weights_path), "cpu"))
    host.warm_up()
    host.release()  # at once: the child is still importing
    assert not any(t.name == "allsight-model-warm-up" for t in threading.enumerate())
    assert host.loaded() is None


def test_a_failed_warm_up_is_only_logged_and_the_batch_request_reports_it(tmp_path, caplog):
    import logging
    import threading

    from engine.core.errors import ModelError
    from gui.model_host import ModelHost, ModelSpec

    host = ModelHost(ModelSpec(str(tmp_path / "missing.safetensors"), "cpu"))
    with caplog.at_level(logging.INFO, logger="allsight.gui.model_host"):
        host.warm_up()
        for t in threading.enumerate():
            if t.name == "allsight-model-warm-up":
                t.join(60)
    assert "model warm-up failed" in caplog.text
    with pytest.raises(ModelError):
        host.batch_classifier()
    host.release()
