"""The INT8 recipe (engine.training.int8) and what the product does with its graph: listed and
hash-bound in the card, verified on load, chosen by precision, carried by the model library."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.core.choices import PrecisionName
from engine.core.errors import ConfigError, ModelError, ModelIntegrityError
from engine.inference import onnx_export, precision
from engine.inference.cascade import CascadeBackend
from engine.inference.classifier import Classifier
from engine.models.checkpoint import read_card
from engine.models.graphs import graph_files, graph_path, read_graph
from engine.models.library import ModelLibrary, verify
from engine.training.int8 import MIN_MARGIN, pick_check, score_check
from tests.conftest import save_tiny_int8_model, save_tiny_model, synthetic_smear


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory):
    """A tiny model with its fp32 and INT8 graphs, made from a tiny class-folder set."""
    return save_tiny_int8_model(tmp_path_factory.mktemp("int8"))


def _copy(card, tmp_path):
    """The model's files in a folder of this test's own (the module's model stays untouched)."""
    for source in (card.weights_path, card.path, *graph_files(card)):
        (tmp_path / source.name).write_bytes(source.read_bytes())
    return read_card(tmp_path / card.path.name)


def _edit(card, **int8_fields):
    data = json.loads(card.path.read_text())
    data["graphs"]["int8"].update(int8_fields)
    card.path.write_text(json.dumps(data, indent=2))
    return read_card(card.path)


def _images(n=12):
    return [synthetic_smear(i % 4, 48, 100 + i) for i in range(n)]


def test_the_recipe_lists_a_bound_int8_graph_with_its_check_and_figures(int8_model):
    card, _ = int8_model
    entry = card.graphs["int8"]
    assert graph_path(card, "int8") == card.path.with_suffix(".int8.onnx")
    assert read_graph(card, "int8") == graph_path(card, "int8").read_bytes()
    assert entry["quantized_from"] == card.graphs["fp32"]["sha256"]
    assert entry["calibration"]["split"] == "train" and entry["agreement"]["check_picked_on"] == "val"
    assert entry["fp32_check"]["margin"] >= MIN_MARGIN
    agreement = entry["agreement"]
    assert agreement["split"] == "test" and agreement["images"] > 0
    assert 0.0 <= agreement["fp32_rerun_fraction"] <= 1.0 and entry["speed"]["int8_over_fp32"] > 0


def test_int8_with_everything_checked_gives_fp32s_numbers(int8_model, tmp_path):
    card = _edit(_copy(int8_model[0], tmp_path), fp32_check={"margin": 1.0, "confidence_band": 10.0,
                                                             "ood_band": 10.0})
    fp32 = Classifier(card, device="cpu", precision="fp32").classify_arrays(_images())
    checked = Classifier(card, device="cpu", precision="int8")
    results = checked.classify_arrays(_images())
    assert checked.precision == PrecisionName.INT8 and checked.runtime == "CPU (ONNX Runtime, INT8)"
    assert isinstance(checked.backend, CascadeBackend) and checked.backend.images_checked == len(results)
    got = np.array([list(r.probabilities.values()) for r in results])
    assert np.abs(got - np.array([list(r.probabilities.values()) for r in fp32])).max() < 1e-6


def test_int8_with_no_check_runs_the_int8_graph_alone(int8_model, tmp_path):
    card = _edit(_copy(int8_model[0], tmp_path), fp32_check={"margin": 0.0, "confidence_band": 0.0, "ood_band": 0.0})
    classifier = Classifier(card, device="cpu", precision="int8")
    results = classifier.classify_arrays(_images())
    assert classifier.backend.images_checked == 0 and classifier.backend.images == len(results)
    assert all(r.status == "ok" for r in results)


def test_fp32_stays_selectable_and_runs_the_fp32_graph_alone(int8_model):
    classifier = Classifier(int8_model[0], device="cpu", precision="fp32")
    classifier.classify_arrays(_images(2))
    assert classifier.precision == PrecisionName.FP32 and not isinstance(classifier.backend, CascadeBackend)
    assert classifier.runtime == "CPU (ONNX Runtime)"


def test_auto_takes_int8_only_where_it_measures_faster(int8_model, monkeypatch):
    card = int8_model[0]
    monkeypatch.setattr(precision, "int8_time_fraction", lambda *a: 0.5)
    assert Classifier(card, device="cpu").precision == PrecisionName.INT8
    monkeypatch.setattr(precision, "int8_time_fraction", lambda *a: 0.95)
    assert Classifier(card, device="cpu").precision == PrecisionName.FP32


def test_the_environment_chooses_when_no_precision_is_given(int8_model, monkeypatch):
    monkeypatch.setenv("ALLSIGHT_PRECISION", "fp32")
    assert Classifier(int8_model[0], device="cpu").precision == PrecisionName.FP32
    monkeypatch.setenv("ALLSIGHT_PRECISION", "int8")
    assert Classifier(int8_model[0], device="cpu").precision == PrecisionName.INT8
    monkeypatch.setenv("ALLSIGHT_PRECISION", "int4")
    with pytest.raises(ConfigError, match="unknown precision 'int4'"):
        Classifier(int8_model[0], device="cpu")


def test_the_timing_is_measured_once_per_cpu_and_pair_of_graphs(int8_model, monkeypatch, tmp_path):
    monkeypatch.setenv("ALLSIGHT_CACHE_DIR", str(tmp_path / "cache"))  # this test's own timings only
    calls = []
    real = precision._seconds_per_batch
    monkeypatch.setattr(precision, "_seconds_per_batch", lambda b, i: calls.append(1) or real(b, i))
    card = int8_model[0]
    Classifier(card, device="cpu")
    Classifier(card, device="cpu")
    assert len(calls) == 2  # int8 and fp32, once
    remembered = json.loads(precision.cache_file().read_text())
    assert [v["model"] for v in remembered.values()] == [f"{card.id} {card.version}"]


def test_int8_asked_of_a_model_without_an_int8_graph_is_a_clear_error(tmp_path):
    card = onnx_export.attach_graph(save_tiny_model(tmp_path / "m"))
    with pytest.raises(ConfigError, match="has no INT8 graph.*use precision fp32 or auto"):
        Classifier(card, device="cpu", precision="int8")
    assert Classifier(card, device="cpu").precision == PrecisionName.FP32  # auto: fp32, quietly


def test_int8_in_torch_is_refused_before_anything_loads(int8_model):
    with pytest.raises(ConfigError, match="INT8 runs in ONNX Runtime on the CPU"):
        Classifier(int8_model[0], device="cpu", backend="torch", precision="int8")


def test_a_tampered_int8_graph_is_refused_even_where_auto_would_not_use_it(int8_model, tmp_path):
    card = _copy(int8_model[0], tmp_path)
    path = graph_path(card, "int8")
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ModelIntegrityError, match="corrupt or has been tampered with"):
        Classifier(card, device="cpu")
    with pytest.raises(ModelIntegrityError):
        verify(card, network=False)


def test_an_int8_graph_quantised_from_another_fp32_graph_is_not_used(int8_model, tmp_path):
    card = _edit(_copy(int8_model[0], tmp_path), quantized_from="0" * 64)
    assert read_graph(card, "int8") is None
    assert Classifier(card, device="cpu").precision == PrecisionName.FP32
    with pytest.raises(ConfigError, match="has no INT8 graph"):
        Classifier(card, device="cpu", precision="int8")


@pytest.mark.parametrize(("fields", "message"), [
    ({"fp32_check": {"margin": 0.1}}, "must hold exactly"),
    ({"fp32_check": {"margin": -0.1, "confidence_band": 0.1, "ood_band": 0.1}}, "between 0 and 1.0"),
    ({"fp32_check": {"margin": 0.1, "confidence_band": "wide", "ood_band": 0.1}}, "finite number"),
    ({"quantized_from": "abc"}, "64 lower-case hexadecimal"),
])
def test_a_card_with_a_broken_int8_entry_is_refused_by_name(int8_model, tmp_path, fields, message):
    card = _copy(int8_model[0], tmp_path)
    with pytest.raises(ModelError, match=f"graphs.int8.*{message}"):
        _edit(card, **fields)


def test_the_library_installs_and_exports_the_int8_graph_with_the_model(int8_model, tmp_path):
    library = ModelLibrary(tmp_path / "library")
    installed = library.install(int8_model[0], by="tester", origin="test")
    assert read_graph(installed.card, "int8") == read_graph(int8_model[0], "int8")
    library.export(f"{installed.card.id}@{installed.card.version}", tmp_path / "out")
    assert (tmp_path / "out" / graph_path(int8_model[0], "int8").name).is_file()


def _outputs(probs, scores):
    return {"probs": np.array(probs, np.float64), "scores": np.array(scores, np.float64)}


def test_the_picked_check_takes_every_decision_fp32_takes_on_the_images_it_was_picked_on(int8_model):
    card = int8_model[0]  # review threshold 0.5, OOD threshold 1e9
    fp32 = _outputs([[0.51, 0.49, 0, 0], [0.9, 0.1, 0, 0], [0.52, 0.2, 0.2, 0.08]], [1.0, 1.0, 1.0])
    # row 0: the call flips (margin 0.06); row 2: a clear call, but the review flag flips
    int8 = _outputs([[0.47, 0.53, 0, 0], [0.9, 0.1, 0, 0], [0.48, 0.2, 0.2, 0.12]], [1.0, 1.0, 1.0])
    check = pick_check(fp32, int8, card, None)
    assert check.margin >= 2 * 0.06 and check.confidence_band >= 1.5 * abs(np.log(0.52 / 0.5))
    scored = score_check(fp32, int8, np.array([0, 0, 0]), card, None, check)
    assert scored["call_agreement"] == 1.0 and scored["flag_agreement"] == 1.0
    assert scored["call_agreement_without_check"] == pytest.approx(2 / 3)
    assert scored["flag_agreement_without_check"] == pytest.approx(2 / 3)
    assert scored["fp32_rerun_fraction"] == pytest.approx(2 / 3)


def test_a_model_whose_int8_graph_cannot_be_made_is_saved_without_one(tmp_path, caplog):
    from engine.training.int8 import with_int8_graph

    card = save_tiny_model(tmp_path / "m")  # no fp32 graph to quantise
    images = np.zeros((4, 32, 32, 3), np.uint8)
    assert with_int8_graph(card, images, (images, np.zeros(4)), (images, np.zeros(4))) is card
    assert "no INT8 graph written" in caplog.text and "runs fp32" in caplog.text
    assert not card.path.with_suffix(".int8.onnx").exists()
