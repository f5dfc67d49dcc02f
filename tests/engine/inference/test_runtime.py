"""Inference runtimes: ONNX Runtime and torch agree; the ONNX cache is verified, rebuilt and
isolated; the CPU path starts without torch; device and backend choice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.core.errors import ConfigError, ModelError, ModelIntegrityError
from engine.core.flags import FlagReason
from engine.inference import onnx_export, runtime
from engine.inference.classifier import Classifier, image_level_flags, image_level_ood
from engine.models.checkpoint import read_card
from tests.conftest import save_tiny_model, synthetic_smear, write_image

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ALLSIGHT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


def _images(n: int, size: int) -> np.ndarray:
    return np.stack([synthetic_smear(i % 4, size, i) for i in range(n)])


@pytest.mark.parametrize("arch", ["baseline", "resnet18"])
def test_onnx_runtime_and_torch_return_the_same_logits_and_features(tmp_path, fresh_cache, arch):
    card = save_tiny_model(tmp_path / "m", arch=arch, image_size=32)
    onnx_clf = Classifier(card.weights_path, device="cpu", backend="onnx")
    torch_clf = Classifier(card.weights_path, device="cpu", backend="torch")
    assert onnx_clf.backend.name == "onnxruntime" and torch_clf.backend.name == "torch"
    pixels = _images(5, 32)
    logits_o, feats_o = onnx_clf.backend.run(pixels)
    logits_t, feats_t = torch_clf.backend.run(pixels)
    assert logits_o.shape == (5, 4) and feats_o.shape == feats_t.shape
    np.testing.assert_allclose(logits_o, logits_t, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(feats_o, feats_t, rtol=1e-4, atol=1e-4)


def test_both_backends_classify_files_identically(tmp_path, fresh_cache):
    card = save_tiny_model(tmp_path / "m")
    paths = [write_image(tmp_path / "in" / f"{i}.png", synthetic_smear(i % 4, 48, i)) for i in range(6)]
    a = list(Classifier(card.weights_path, device="cpu", backend="onnx").classify_paths(paths))
    b = list(Classifier(card.weights_path, device="cpu", backend="torch").classify_paths(paths))
    for x, y in zip(a, b, strict=False):
        assert x.predicted_class == y.predicted_class and x.needs_review == y.needs_review
        for c in x.probabilities:
            assert x.probabilities[c] == pytest.approx(y.probabilities[c], abs=1e-5)
        assert x.ood_score == pytest.approx(y.ood_score, rel=1e-4)


def test_the_graph_is_exported_once_then_loaded_from_the_cache(tmp_path, fresh_cache, monkeypatch):
    card = save_tiny_model(tmp_path / "m")
    Classifier(card.weights_path, device="cpu", backend="onnx")
    cached = onnx_export.cache_path(read_card(card.path))
    assert cached.is_file() and cached.parent == fresh_cache
    meta = json.loads(cached.with_suffix(".json").read_text())
    assert meta["weights_sha256"] == card.weights_sha256

    def no_export(_loaded):
        raise AssertionError("exported again although the cache is valid")

    monkeypatch.setattr(onnx_export, "export_bytes", no_export)
    assert Classifier(card.weights_path, device="cpu", backend="onnx").backend.name == "onnxruntime"


def test_a_corrupted_cache_entry_is_rebuilt_not_used(tmp_path, fresh_cache):
    card = save_tiny_model(tmp_path / "m")
    Classifier(card.weights_path, device="cpu", backend="onnx")
    cached = onnx_export.cache_path(read_card(card.path))
    good = cached.read_bytes()
    cached.write_bytes(good[: len(good) // 2])  # a half-copied cache file
    assert onnx_export.read_cached(read_card(card.path)) is None
    clf = Classifier(card.weights_path, device="cpu", backend="onnx")
    assert cached.read_bytes() == good  # re-exported: the export is deterministic
    assert clf.classify_arrays([synthetic_smear(0, 32)])[0].ok


def test_tampered_weights_are_refused_even_with_a_cached_graph(tmp_path, fresh_cache):
    card = save_tiny_model(tmp_path / "m")
    Classifier(card.weights_path, device="cpu", backend="onnx")  # caches the graph
    data = bytearray(card.weights_path.read_bytes())
    data[-1] ^= 0xFF
    card.weights_path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="corrupt or has been tampered"):
        Classifier(card.weights_path, device="cpu", backend="auto")


def test_an_unwritable_cache_costs_only_speed(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("ALLSIGHT_CACHE_DIR", str(blocker))
    card = save_tiny_model(tmp_path / "m")
    clf = Classifier(card.weights_path, device="cpu", backend="onnx")
    assert clf.backend.name == "onnxruntime"
    assert clf.classify_arrays([synthetic_smear(1, 32)])[0].ok


def test_auto_falls_back_to_torch_when_the_export_fails(tmp_path, fresh_cache, monkeypatch, caplog):
    card = save_tiny_model(tmp_path / "m")

    def broken_export(_loaded):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(onnx_export, "export_bytes", broken_export)
    with caplog.at_level("WARNING"):
        clf = Classifier(card.weights_path, device="cpu", backend="auto")
    assert clf.backend.name == "torch"
    assert "exporter exploded" in caplog.text and "using torch instead" in caplog.text
    assert clf.classify_arrays([synthetic_smear(2, 32)])[0].ok
    with pytest.raises(ModelError, match="ONNX export failed.*exporter exploded"):
        Classifier(card.weights_path, device="cpu", backend="onnx")


def test_export_in_a_child_process_fills_the_cache(tmp_path, fresh_cache):
    card = read_card(save_tiny_model(tmp_path / "m").path)
    blob = onnx_export.ensure_cached_isolated(card)
    assert blob == onnx_export.read_cached(card)
    clf = Classifier(card.weights_path, device="cpu", backend="onnx", isolate_export=True)
    assert clf.classify_arrays([synthetic_smear(3, 32)])[0].ok


def test_heatmap_works_beside_the_onnx_runtime_session(tmp_path, fresh_cache):
    card = save_tiny_model(tmp_path / "m")
    clf = Classifier(card.weights_path, device="cpu", backend="onnx")
    original, heat, over = clf.heatmap(synthetic_smear(0, 48))
    assert original.shape == (32, 32, 3) and heat.shape == (32, 32) and over.shape == (32, 32, 3)
    assert float(heat.min()) >= 0.0 and float(heat.max()) <= 1.0


def test_a_cached_model_classifies_without_importing_torch(tmp_path, fresh_cache):
    card = save_tiny_model(tmp_path / "m")
    Classifier(card.weights_path, device="cpu", backend="onnx")  # warm the cache in this process
    image = write_image(tmp_path / "x.png", synthetic_smear(0, 48))
    code = (
        "import sys\n"
        "from engine.inference.classifier import Classifier\n"
        f"c = Classifier({str(card.weights_path)!r}, device='auto')\n"
        f"r = list(c.classify_paths([{str(image)!r}]))\n"
        "assert r[0].ok, r\n"
        "print(c.backend.name, 'torch' in sys.modules)\n"
    )
    env = {**__import__("os").environ, "ALLSIGHT_CACHE_DIR": str(fresh_cache.parent), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    if runtime.gpu_may_be_present():
        pytest.skip("this machine may have a GPU: auto may rightly load torch to look for it")
    assert out.stdout.split() == ["onnxruntime", "False"]


# ------------------------------------------------------------------------ device and backend
def test_auto_device_is_the_cpu_without_importing_torch_when_no_gpu_can_exist(monkeypatch):
    monkeypatch.setattr(runtime, "gpu_may_be_present", lambda: False)
    monkeypatch.setattr(runtime, "select_device", lambda pref: pytest.fail("torch consulted"))
    assert runtime.resolve_device("auto") == "cpu"
    assert runtime.resolve_device("CPU") == "cpu"


def test_unknown_device_and_backend_are_clear_errors(monkeypatch):
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        runtime.resolve_device("tpu")
    with pytest.raises(ConfigError, match="unknown backend 'tensorrt'"):
        runtime.resolve_backend("tensorrt", "cpu")
    with pytest.raises(ConfigError, match="CPU only"):
        runtime.resolve_backend("onnx", "cuda")


def test_backend_choice_follows_device_and_environment(monkeypatch):
    monkeypatch.delenv("ALLSIGHT_BACKEND", raising=False)
    assert runtime.resolve_backend("auto", "cpu") == "onnx"
    assert runtime.resolve_backend("auto", "cuda") == "torch"
    monkeypatch.setenv("ALLSIGHT_BACKEND", "torch")
    assert runtime.resolve_backend("auto", "cpu") == "torch"
    assert runtime.resolve_backend("onnx", "cpu") == "onnx"  # an explicit argument wins
    monkeypatch.setattr(runtime, "onnxruntime_available", lambda: False)
    monkeypatch.setenv("ALLSIGHT_BACKEND", "auto")
    assert runtime.resolve_backend("auto", "cpu") == "torch"


# ------------------------------------------------------------------ image-level OOD checks
def _reference_image_level_ood(original: np.ndarray) -> list[FlagReason]:
    """The first, plain-NumPy version of the blank and grayscale checks; the fast one must agree."""
    reasons = []
    pixels = original.reshape(-1, 3)
    if float(pixels.std(axis=0).max()) < 4.0:
        reasons.append(FlagReason.BLANK)
    chroma = pixels.max(axis=1).astype(np.int16) - pixels.min(axis=1).astype(np.int16)
    if float(np.percentile(chroma, 99)) < 12.0:
        reasons.append(FlagReason.GRAYSCALE)
    return reasons


def test_fast_image_checks_agree_with_the_plain_numpy_version():
    rng = np.random.default_rng(0)
    cases = [synthetic_smear(i % 4, 64, i) for i in range(8)]
    gray = rng.integers(0, 256, (64, 64, 1), dtype=np.uint8)
    cases += [np.repeat(gray, 3, axis=2), np.full((64, 64, 3), 200, np.uint8)]
    # near the grayscale limit: chroma mostly 0-15
    tint = np.repeat(gray, 3, axis=2).astype(np.int16)
    tint[..., 0] += rng.integers(0, 16, (64, 64))
    cases.append(np.clip(tint, 0, 255).astype(np.uint8))
    cases += [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(5)]
    colour_checks = (FlagReason.BLANK, FlagReason.GRAYSCALE)
    for img in cases:
        assert [r for r in image_level_flags(img) if r in colour_checks] == _reference_image_level_ood(img)
    assert image_level_flags(np.full((16, 16, 3), 128, np.uint8)) == [FlagReason.BLANK, FlagReason.GRAYSCALE]
    # the sentence form, for callers that show it
    assert image_level_ood(np.full((16, 16, 3), 128, np.uint8)) == [FlagReason.BLANK.sentence,
                                                                    FlagReason.GRAYSCALE.sentence]


def test_percentile_matches_numpy_exactly():
    from engine.imaging.pixelstats import percentile_uint8

    rng = np.random.default_rng(1)
    for n in (1, 2, 7, 100, 1001):
        values = rng.integers(0, 256, n, dtype=np.uint8)
        for q in (0, 1, 50, 99, 100):
            assert percentile_uint8(values, q) == pytest.approx(float(np.percentile(values, q)), abs=1e-9)


def test_onnx_classifier_runs_numpy_blas_on_one_thread(tiny_model):
    # classify's workers already use every core; BLAS threads of their own only compete.
    from threadpoolctl import threadpool_info, threadpool_limits

    from engine.inference.classifier import Classifier
    from engine.inference.runtime import configure_threads

    if configure_threads() < 2:
        pytest.skip("one core: the workers do not run in parallel, BLAS is left alone")
    with threadpool_limits(limits=2, user_api="blas"):  # restored when the test ends
        assert any(i["num_threads"] == 2 for i in threadpool_info() if i["user_api"] == "blas")
        Classifier(tiny_model, device="cpu", backend="onnx")
        blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
        assert blas and all(i["num_threads"] == 1 for i in blas)


def test_defocused_fields_are_out_of_distribution_and_sharp_ones_are_not():
    import cv2

    from engine.inference.classifier import FOCUS_ANALYSIS_SIZE, FOCUS_MIN_SHARPNESS, sharpness

    sharp = [synthetic_smear(i % 4, 224, i) for i in range(4)]
    for img in sharp:
        assert sharpness(img) > 2 * FOCUS_MIN_SHARPNESS
        assert image_level_flags(img) == []
        blurred = cv2.GaussianBlur(img, (0, 0), 4.0)
        assert sharpness(blurred) < FOCUS_MIN_SHARPNESS
        assert FlagReason.OUT_OF_FOCUS in image_level_flags(blurred)
    # exactly at the analysis size, no resize is needed and the result is the same kind
    assert sharpness(cv2.resize(sharp[0], (FOCUS_ANALYSIS_SIZE,) * 2, interpolation=cv2.INTER_AREA)) > FOCUS_MIN_SHARPNESS
    # too small to judge: no focus verdict, whatever the blur
    assert sharpness(cv2.GaussianBlur(synthetic_smear(0, 64, 0), (0, 0), 4.0)) is None
    # a blank frame is called blank, not also out of focus
    assert image_level_flags(np.full((224, 224, 3), (230, 200, 210), np.uint8)) == [FlagReason.BLANK]


def test_runtime_labels_for_people(tiny_model):
    assert runtime.describe_runtime("cpu", "onnxruntime") == "CPU (ONNX Runtime)"
    assert runtime.describe_runtime("cpu", "torch") == "CPU (torch)"
    assert runtime.describe_runtime("mps", "torch") == "MPS (Apple GPU)"
    assert runtime.describe_runtime("cuda:0", "torch").startswith("CUDA")
    assert Classifier(tiny_model, device="cpu", backend="onnx").runtime == "CPU (ONNX Runtime)"
    assert Classifier(tiny_model, device="cpu", backend="torch").runtime == "CPU (torch)"
