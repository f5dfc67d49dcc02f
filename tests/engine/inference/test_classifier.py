"""Batch inference: ordering, per-file errors, calibration, OOD flags, laziness, cancellation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.core.errors import AllSightError, Cancelled, ModelError
from engine.core.flags import FlagReason, parse_codes
from engine.core.progress import CancelToken
from engine.core.records import CSV_COLUMNS, ImageResult
from engine.inference.classifier import (
    Classifier,
    configure_threads,
    select_device,
)
from engine.models.resolve import load_model
from tests.conftest import synthetic_smear, write_image


@pytest.fixture
def classifier(tiny_model) -> Classifier:
    return Classifier(tiny_model, device="cpu")


def _smears(folder: Path, n: int, size: int = 48, ext: str = "png") -> list[Path]:
    return [write_image(folder / f"img{i}.{ext}", synthetic_smear(i % 4, size, i)) for i in range(n)]


def _truncated_jpeg(path: Path) -> Path:
    write_image(path, synthetic_smear(1, 64, 3), quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _check_ok(r: ImageResult, classes) -> None:
    assert r.status == "ok" and r.error is None
    probs = np.array([r.probabilities[c] for c in classes])
    assert probs.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.all((probs >= 0) & (probs <= 1))
    assert r.predicted_class == classes[int(probs.argmax())]
    assert r.confidence == pytest.approx(probs.max())


def test_results_come_in_input_order(classifier, tmp_path):
    paths = _smears(tmp_path, 7)
    order = [paths[i] for i in (3, 0, 6, 1, 5, 2, 4)]
    results = list(classifier.classify_paths(order, batch_size=3, workers=2))
    assert [r.path for r in results] == [str(p) for p in order]
    for r in results:
        _check_ok(r, classifier.classes)
        assert r.ood_score is not None and np.isfinite(r.ood_score)
        # tiny model: review threshold 0.5, four near-uniform classes -> every image needs review
        assert r.needs_review is (r.confidence < 0.5 or r.out_of_distribution)


def test_broken_files_become_error_results_and_the_batch_carries_on(classifier, tmp_path):
    good = _smears(tmp_path, 3)
    zero = tmp_path / "zero.jpg"
    zero.write_bytes(b"")
    text = tmp_path / "text.jpg"
    text.write_text("this is not a JPEG\n")
    trunc = _truncated_jpeg(tmp_path / "trunc.jpg")
    missing = tmp_path / "missing.png"
    paths = [good[0], zero, good[1], text, trunc, missing, good[2]]
    results = list(classifier.classify_paths(paths, batch_size=4))
    assert [r.path for r in results] == [str(p) for p in paths]
    by_path = {Path(r.path): r for r in results}
    for p in good:
        _check_ok(by_path[p], classifier.classes)
    for p, words in ((zero, "empty"), (text, "not an image"), (trunc, "truncated"), (missing, "not found")):
        r = by_path[p]
        assert r.status == "error", p
        assert words in r.error, r.error
        assert r.predicted_class is None and r.confidence is None and r.probabilities is None
        assert not r.needs_review and not r.out_of_distribution


def test_confidence_is_temperature_calibrated(tiny_model):
    loaded = load_model(tiny_model)
    rgb = synthetic_smear(2, 48, 1)
    plain = Classifier(loaded, device="cpu").classify_arrays([rgb])[0]
    hot = dataclasses.replace(loaded.card, temperature=1000.0)
    flat = Classifier(dataclasses.replace(loaded, card=hot), device="cpu").classify_arrays([rgb])[0]
    assert flat.confidence < plain.confidence
    assert flat.confidence == pytest.approx(0.25, abs=1e-3)
    assert flat.predicted_class == plain.predicted_class


def test_mahalanobis_threshold_flags_ood(tiny_model):
    loaded = load_model(tiny_model)
    card = dataclasses.replace(loaded.card, ood={**loaded.card.ood, "threshold": -1.0})
    clf = Classifier(dataclasses.replace(loaded, card=card), device="cpu")
    r = clf.classify_arrays([synthetic_smear(0, 48, 0)])[0]
    assert r.out_of_distribution and r.needs_review
    assert FlagReason.UNLIKE_TRAINING in r.flags
    assert r.ood_reason and "distance" not in r.ood_reason  # a sentence for people, no numbers
    assert "unlike_training" in r.csv_row()["flags"].split(";")
    assert r.to_dict()["flags"] == [str(f) for f in r.flags] and r.to_dict()["ood_score"] == r.ood_score


def test_blank_and_grayscale_images_are_out_of_distribution(classifier, tmp_path):
    rng = np.random.default_rng(0)
    blank = np.clip(200 + rng.normal(0, 1, (60, 60, 3)), 0, 255).astype(np.uint8)
    gray = synthetic_smear(1, 60, 0).mean(axis=2).astype(np.uint8)
    gray_rgb = np.stack([gray] * 3, axis=-1)
    smear = synthetic_smear(1, 60, 0)
    r_blank, r_gray, r_smear = classifier.classify_arrays([blank, gray_rgb, smear], ["blank", "gray", "smear"])
    assert r_blank.out_of_distribution and r_blank.needs_review and FlagReason.BLANK in r_blank.flags
    assert r_gray.out_of_distribution and r_gray.needs_review and FlagReason.GRAYSCALE in r_gray.flags
    assert not r_smear.out_of_distribution and r_smear.ood_reason == ""
    assert not any(f is not FlagReason.LOW_CONFIDENCE for f in r_smear.flags)
    # the same checks on files (a grayscale JPEG decodes to RGB with tiny chroma noise)
    p_gray = write_image(tmp_path / "gray.jpg", gray, quality=90)
    p_blank = write_image(tmp_path / "blank.png", blank)
    results = list(classifier.classify_paths([p_gray, p_blank]))
    assert all(r.status == "ok" and r.out_of_distribution for r in results)


def test_cancel_between_batches(classifier, tmp_path):
    paths = _smears(tmp_path, 8, size=32)
    token = CancelToken()
    gen = classifier.classify_paths(paths, batch_size=2, cancel=token)
    got = [next(gen)]
    token.cancel()
    with pytest.raises(Cancelled):
        got.extend(gen)  # the rest of the current batch still arrives, then it stops
    assert len(got) == 2
    with pytest.raises(StopIteration):
        next(gen)


def test_cancel_before_start(classifier, tmp_path):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        next(classifier.classify_paths(_smears(tmp_path, 2, size=32), cancel=token))


def test_paths_are_pulled_lazily_a_few_batches_ahead(classifier, tmp_path):
    files = _smears(tmp_path, 4, size=32)
    total, batch = 60, 4
    pulled = 0

    def source():
        nonlocal pulled
        for i in range(total):
            pulled += 1
            yield files[i % len(files)]

    yielded = 0
    max_ahead = 0
    for r in classifier.classify_paths(source(), batch_size=batch, workers=2):
        yielded += 1
        assert r.status == "ok"
        max_ahead = max(max_ahead, pulled - yielded)
        if yielded == batch:
            assert pulled < total / 2  # not materialised up front
    assert yielded == total
    assert max_ahead <= 3 * batch  # current batch + at most two queued


def test_closing_the_generator_early_stops_the_workers(classifier, tmp_path):
    # the autouse no_leaked_threads fixture fails this test if the decode pool survives
    gen = classifier.classify_paths(_smears(tmp_path, 10, size=32), batch_size=2, workers=2)
    assert next(gen).status == "ok"
    gen.close()


def test_classify_arrays_matches_classify_paths(classifier, tmp_path):
    paths = _smears(tmp_path, 3)  # PNG: lossless
    from_files = list(classifier.classify_paths(paths))
    from_arrays = classifier.classify_arrays([synthetic_smear(i % 4, 48, i) for i in range(3)])
    for a, b in zip(from_files, from_arrays, strict=False):
        assert a.predicted_class == b.predicted_class
        for c in classifier.classes:
            assert a.probabilities[c] == pytest.approx(b.probabilities[c], abs=1e-6)


def test_classify_arrays_reports_bad_arrays(classifier):
    results = classifier.classify_arrays([np.zeros((10, 10), np.uint8), synthetic_smear(0, 32)], ["bad", "good"])
    assert results[0].status == "error" and results[0].error
    assert results[1].status == "ok"


def test_csv_row_columns_and_formats():
    ok = ImageResult("a.png", "ok", "Pre", 0.5, {"Benign": 0.1, "Early": 0.2, "Pre": 0.5, "Pro": 0.2},
                     needs_review=True, out_of_distribution=False, ood_score=3.0)
    row = ok.csv_row()
    assert tuple(row) == CSV_COLUMNS
    assert CSV_COLUMNS == ("path", "status", "predicted_class", "confidence", "needs_review",
                           "out_of_distribution", "prob_Benign", "prob_Early", "prob_Pre", "prob_Pro", "error",
                           "flags")
    assert row["needs_review"] == "true" and row["out_of_distribution"] == "false"
    assert float(row["prob_Pre"]) == 0.5 and row["error"] == "" and row["flags"] == ""
    coded = ImageResult("c.png", "ok", "Pro", 0.4, needs_review=True, out_of_distribution=True,
                        flags=("low_confidence", "no_white_cell", "unlike_training")).csv_row()
    assert coded["flags"] == "no_white_cell;unlike_training;low_confidence"
    assert parse_codes(coded["flags"]) == (FlagReason.NO_WHITE_CELL, FlagReason.UNLIKE_TRAINING,
                                           FlagReason.LOW_CONFIDENCE)  # and back
    bad = ImageResult("b.jpg", "error", error="empty file (0 bytes)").csv_row()
    assert tuple(bad) == CSV_COLUMNS
    assert bad["confidence"] == "" and bad["prob_Benign"] == "" and bad["predicted_class"] == ""
    assert bad["needs_review"] == "false" and bad["error"] == "empty file (0 bytes)"


def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(AllSightError):
        select_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_select_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ModelError, match="cuda"):
        select_device("cuda")


def test_select_mps_without_mps_is_a_clear_error():
    if torch.backends.mps.is_available():
        pytest.skip("MPS is available here")
    with pytest.raises(ModelError, match="mps"):
        select_device("mps")


def test_configure_threads_is_idempotent():
    n = configure_threads()
    assert n >= 1
    assert configure_threads(n + 5) == n
    assert torch.get_num_threads() == n


def test_missing_model_is_a_model_error(tmp_path):
    with pytest.raises(ModelError):
        Classifier(tmp_path / "nope.safetensors", device="cpu")


# ------------------------------------------------------------ background load and the pipeline
def test_background_load_decodes_while_the_model_loads(tiny_model, tmp_path, monkeypatch):
    import threading
    import time

    paths = _smears(tmp_path, 12, size=32)
    gate = threading.Event()
    real_load = Classifier._load_backend

    def slow_load(self, kind):
        gate.wait(30)  # the model "loads" until the test says so
        real_load(self, kind)

    decoded: list[str] = []
    real_prepare = Classifier._prepare_path

    def counting_prepare(self, path):
        decoded.append(str(path))
        return real_prepare(self, path)

    monkeypatch.setattr(Classifier, "_load_backend", slow_load)
    monkeypatch.setattr(Classifier, "_prepare_path", counting_prepare)
    clf = Classifier(tiny_model, device="cpu", background=True)
    assert not clf.ready
    got: list[ImageResult] = []
    consumer = threading.Thread(target=lambda: got.extend(clf.classify_paths(paths, batch_size=2, workers=2)))
    consumer.start()
    try:
        deadline = time.time() + 20
        while len(decoded) < 8 and time.time() < deadline:
            time.sleep(0.01)
        assert len(decoded) >= 8 and not got  # several batches decoded, none classified yet
    finally:
        gate.set()
        consumer.join(30)
    assert clf.ready
    assert [r.path for r in got] == [str(p) for p in paths]
    assert all(r.status == "ok" for r in got)
    expected = list(Classifier(tiny_model, device="cpu").classify_paths(paths))
    for r, e in zip(got, expected, strict=True):
        assert r.probabilities == pytest.approx(e.probabilities)


def test_background_load_error_surfaces_at_the_first_result(tiny_model, tmp_path):
    from engine.core.errors import ModelIntegrityError

    bad = tmp_path / "bad"
    bad.mkdir()
    weights = bad / tiny_model.name
    data = bytearray(tiny_model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    (bad / tiny_model.with_suffix(".json").name).write_bytes(tiny_model.with_suffix(".json").read_bytes())
    clf = Classifier(weights, device="cpu", background=True)  # returns before the weights are read
    with pytest.raises(ModelIntegrityError):
        next(clf.classify_paths(_smears(tmp_path, 6, size=32), batch_size=2))
    with pytest.raises(ModelIntegrityError):
        clf.wait_ready()
    with pytest.raises(ModelIntegrityError):
        Classifier(weights, device="cpu")  # without background: raised by the constructor


@pytest.mark.parametrize("backend, limit", [("torch", 1), ("onnx", 2)])
def test_network_calls_never_overlap_beyond_parallel_batches(tiny_model, tmp_path, backend, limit):
    import threading
    import time

    configure_threads()
    clf = Classifier(tiny_model, device="cpu", backend=backend)
    assert clf.parallel_batches == min(limit, configure_threads())
    running, peak, lock = 0, 0, threading.Lock()
    real_run = clf.backend.run

    def tracking_run(images):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)  # long enough for another worker to try
        try:
            return real_run(images)
        finally:
            with lock:
                running -= 1

    clf.backend.run = tracking_run
    results = list(clf.classify_paths(_smears(tmp_path, 16, size=32), batch_size=2, workers=4))
    assert len(results) == 16 and all(r.ok for r in results)
    assert peak == clf.parallel_batches


def test_an_error_in_the_path_iterable_reaches_the_caller(classifier, tmp_path):
    files = _smears(tmp_path, 3, size=32)

    def source():
        yield from files
        raise RuntimeError("the listing failed")

    with pytest.raises(RuntimeError, match="the listing failed"):
        list(classifier.classify_paths(source(), batch_size=2))


def test_heatmap_waits_for_a_running_torch_batch(tiny_model, tmp_path):
    # Grad-CAM hooks the torch network: it must not run while a batch is inside it.
    import threading

    clf = Classifier(tiny_model, device="cpu", backend="torch")
    image = _smears(tmp_path, 1, size=32)[0]
    inside, release = threading.Event(), threading.Event()
    real_run = clf.backend.run

    def blocking_run(images):
        inside.set()
        release.wait(10)
        return real_run(images)

    clf.backend.run = blocking_run
    batch = threading.Thread(target=lambda: list(clf.classify_paths([image])))
    batch.start()
    assert inside.wait(10)
    done = threading.Event()
    heat = threading.Thread(target=lambda: (clf.heatmap(image), done.set()))
    heat.start()
    assert not done.wait(0.3)  # held back while the batch runs
    release.set()
    batch.join(10)
    heat.join(30)
    assert done.is_set()
