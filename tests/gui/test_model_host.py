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
