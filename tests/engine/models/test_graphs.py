"""A model's ONNX graph beside its weights: written by training (attach_graph), listed and
hash-bound in the card, verified on every load, carried by install and export; the shipped
models have theirs, so classifying never exports anything."""

from __future__ import annotations

import json

import pytest

from engine.core.errors import ModelError, ModelIntegrityError
from engine.inference import onnx_export
from engine.inference.classifier import Classifier
from engine.models.card import ModelCard
from engine.models.checkpoint import read_card
from engine.models.graphs import EXPORT_FORMAT, graph_key, graph_path, read_graph
from engine.models.library import ModelLibrary
from engine.models.resolve import resolve_model_card
from tests.conftest import save_tiny_model, synthetic_smear


@pytest.fixture
def with_graph(tmp_path):
    return onnx_export.attach_graph(save_tiny_model(tmp_path / "m"))


def _edit_card(card: ModelCard, **graph_fields) -> ModelCard:
    data = json.loads(card.path.read_text())
    data["graphs"]["fp32"].update(graph_fields)
    card.path.write_text(json.dumps(data, indent=2))
    return read_card(card.path)


def test_attach_graph_writes_a_hash_bound_graph_beside_the_weights(with_graph):
    entry = with_graph.graphs["fp32"]
    path = graph_path(with_graph)
    assert path == with_graph.weights_path.with_suffix(".onnx") and path.is_file()
    assert entry["graph_key"] == graph_key(with_graph) and entry["format"] == EXPORT_FORMAT
    assert read_graph(with_graph) == path.read_bytes()
    assert read_card(with_graph.path) == with_graph  # the card on disk says the same


def test_a_graph_whose_bytes_changed_is_refused(with_graph):
    path = graph_path(with_graph)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ModelIntegrityError, match="ONNX graph is corrupt or has been tampered with"):
        read_graph(with_graph)
    with pytest.raises(ModelIntegrityError):
        Classifier(with_graph, device="cpu", backend="onnx")


def test_a_missing_graph_file_is_a_damaged_installation(with_graph):
    graph_path(with_graph).unlink()
    with pytest.raises(ModelError, match="cannot be read.*reinstall"):
        read_graph(with_graph)


def test_a_graph_made_for_other_weights_or_an_older_format_is_not_used(with_graph):
    assert read_graph(_edit_card(with_graph, graph_key="0" * 64)) is None
    assert read_graph(_edit_card(with_graph, graph_key=graph_key(with_graph), format=EXPORT_FORMAT - 1)) is None


@pytest.mark.parametrize("field, value", [("file", "../elsewhere.onnx"), ("file", "graph.bin"), ("sha256", "xyz"),
                                          ("graph_key", "ABC")])
def test_a_card_listing_an_impossible_graph_is_refused(with_graph, field, value):
    with pytest.raises(ModelError, match=f"graphs.fp32.{field}"):
        _edit_card(with_graph, **{field: value})


def test_install_and_export_carry_the_graph(with_graph, tmp_path):
    library = ModelLibrary()
    installed = library.install(with_graph.weights_path, by="it", origin="test")
    assert read_graph(installed.card) == read_graph(with_graph)
    exported = library.export(installed.ref, tmp_path / "out")
    assert exported.with_suffix(".onnx").read_bytes() == graph_path(with_graph).read_bytes()
    assert read_graph(read_card(exported)) is not None


@pytest.mark.parametrize("model_id", ["resnet18", "baseline"])
def test_the_shipped_models_classify_from_their_own_graph_without_exporting(model_id, monkeypatch, tmp_path):
    monkeypatch.setenv("ALLSIGHT_CACHE_DIR", str(tmp_path / "cache"))
    card = resolve_model_card(model_id)
    assert read_graph(card) is not None, f"{model_id} ships without its graph: run scripts/export_graphs.py"

    def no_export(*_a, **_k):
        raise AssertionError("a shipped model must not need an export")

    monkeypatch.setattr(onnx_export, "export_bytes", no_export)
    clf = Classifier(card, device="cpu", backend="onnx")
    (result,) = clf.classify_arrays([synthetic_smear(1, 96, 0)])
    assert result.predicted_class in card.classes
    assert not any(tmp_path.rglob("*.onnx"))
