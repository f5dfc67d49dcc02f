"""The classifier in a child process: same results as in-process, errors, cancel, a dying child.

One child is shared by the module's tests (starting one costs seconds); the tests that break it
start their own.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.core.errors import Cancelled, ModelError
from engine.core.progress import CancelToken
from engine.inference.classifier import Classifier
from engine.inference.process import ClassifierProcess
from tests.conftest import save_tiny_model, synthetic_smear, write_image


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("cp-model")).weights_path


@pytest.fixture(scope="module")
def served(model_path):
    process = ClassifierProcess(model_path, "cpu", threads=1)
    yield process
    process.close()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("cp-images")
    paths = [write_image(folder / f"img{i}.png", synthetic_smear(i % 4, 48, i)) for i in range(24)]
    broken = folder / "broken.png"
    broken.write_bytes(b"not an image")
    return paths[:5] + [broken] + paths[5:]


def test_child_gives_the_in_process_results_in_order(served, model_path, images):
    remote = list(served.classify_paths(images, batch_size=4, workers=1))
    local = list(Classifier(model_path, "cpu").classify_paths(images, batch_size=4, workers=1))
    assert [r.path for r in remote] == [str(p) for p in images]
    assert [r.to_dict() for r in remote] == [r.to_dict() for r in local]
    assert served.card.id == "tiny" and "CPU" in served.runtime


def test_a_broken_file_is_an_error_row_and_the_job_goes_on(served, images):
    results = list(served.classify_paths(images, batch_size=4, workers=1))
    assert results[5].status == "error" and "not an image" in results[5].error
    assert sum(r.ok for r in results) == len(images) - 1


def test_cancel_stops_the_job_and_the_child_serves_the_next(served, images):
    token = CancelToken()
    gen = served.classify_paths(images, batch_size=2, workers=1, cancel=token)
    next(gen)
    token.cancel()
    with pytest.raises(Cancelled):
        list(gen)
    assert not served.busy
    assert len(list(served.classify_paths(images[:3], batch_size=2, workers=1))) == 3


def test_closing_the_generator_early_keeps_the_pipe_in_step(served, images):
    gen = served.classify_paths(images, batch_size=2, workers=1)
    next(gen)
    gen.close()
    assert not served.busy
    again = list(served.classify_paths(images[:4], batch_size=2, workers=1))
    assert [r.path for r in again] == [str(p) for p in images[:4]]


def test_one_job_at_a_time(served, images):
    gen = served.classify_paths(images, batch_size=2, workers=1)
    next(gen)
    with pytest.raises(ModelError, match="already running"):
        next(served.classify_paths(images[:1]))
    gen.close()


def test_review_threshold_override_applies_in_the_child(model_path, images):
    with ClassifierProcess(model_path, "cpu", review_threshold=0.99) as process:
        assert process.card.review_threshold == 0.99
        results = list(process.classify_paths(images[:4], batch_size=4, workers=1))
    assert all(r.needs_review for r in results if r.ok and r.confidence < 0.99)


def test_a_missing_model_raises_the_engines_error(tmp_path):
    with pytest.raises(ModelError, match="model card not found"):
        ClassifierProcess(tmp_path / "nope.safetensors", "cpu")


def test_a_dead_child_is_a_clear_error_not_a_hang(model_path, images):
    process = ClassifierProcess(model_path, "cpu")
    process._process.kill()
    with pytest.raises(ModelError, match="stopped unexpectedly.*exit code"):
        list(process.classify_paths(images[:3]))
    assert not process.alive
    process.close()


def test_close_stops_the_child(model_path):
    process = ClassifierProcess(model_path, "cpu")
    process.close()
    assert not process._process.is_alive() and not process.alive
    with pytest.raises(ModelError, match="closed"):
        next(process.classify_paths([]))


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="Unix process priorities")
def test_the_child_can_run_at_a_lower_priority(model_path):
    with ClassifierProcess(model_path, "cpu", nice=5) as process:
        child = os.getpriority(os.PRIO_PROCESS, process.pid)
    assert child == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 5)


def test_a_start_can_be_cancelled_and_leaves_no_child(model_path):
    import multiprocessing

    before = {p.pid for p in multiprocessing.active_children()}
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        ClassifierProcess(model_path, "cpu", cancel=token)
    assert {p.pid for p in multiprocessing.active_children()} <= before


def test_the_child_runs_the_precision_it_is_given(tmp_path, images):
    from tests.conftest import save_tiny_int8_model

    card, _ = save_tiny_int8_model(tmp_path)
    process = ClassifierProcess(card.path, "cpu", precision="int8")
    try:
        assert process.runtime == "CPU (ONNX Runtime, INT8)"
        direct = Classifier(card, device="cpu", precision="int8")
        assert [r.predicted_class for r in process.classify_paths(images)] == \
            [r.predicted_class for r in direct.classify_paths(images)]
    finally:
        process.close()
