"""The ONNX cache is keyed by everything baked into the exported graph: an entry written for one
card is never served to a card that differs in weights, normalisation, input size, feature layers
or architecture (no export here: the cache is fed stand-in bytes; the real export is tested in
test_runtime.py and tests/hostile/test_hostile_model_card.py)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from engine.inference import onnx_export
from engine.models.card import ModelCard
from tests.conftest import save_tiny_model


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ALLSIGHT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


@pytest.fixture
def card(tmp_path) -> ModelCard:
    return save_tiny_model(tmp_path / "m")


def _baked_variants(card: ModelCard) -> dict[str, ModelCard]:
    """Cards differing from ``card`` in one thing the exported graph bakes in."""
    pp = card.preprocess
    multilayer = {"method": "mahalanobis-multilayer", "feature_layers": ["features.1", "features.4"], "dims": [5, 10],
                  "scales": [1.0, 1.0], "threshold": 1.5}
    return {
        "weights": replace(card, weights_sha256="f" * 64),
        "mean": replace(card, preprocess=pp.replace(mean=(0.5, 0.5, 0.5))),
        "std": replace(card, preprocess=pp.replace(std=(0.5, 0.5, 0.5))),
        "image size": replace(card, preprocess=pp.replace(image_size=64)),
        "feature layers": replace(card, ood=multilayer),
        "architecture": replace(card, architecture="resnet18"),
    }


def test_the_graph_key_covers_everything_baked_into_the_graph(card):
    keys = {name: onnx_export.graph_key(c) for name, c in _baked_variants(card).items()}
    assert len(set(keys.values()) | {onnx_export.graph_key(card)}) == len(keys) + 1, keys


def test_what_the_graph_does_not_bake_in_keeps_its_entry(card):
    # Applied after the network, in NumPy: a new threshold must not cost a new export.
    same = replace(card, temperature=2.0, review_threshold=0.9, ood={**card.ood, "threshold": 3.0}, version="9",
                   preprocess=card.preprocess.replace(model_input="enhanced", white_balance=True))
    assert onnx_export.graph_key(same) == onnx_export.graph_key(card)
    assert onnx_export.cache_path(same) == onnx_export.cache_path(card)


def test_an_entry_is_served_only_to_the_card_it_was_written_for(card, fresh_cache):
    blob = b"stand-in for the genuine card's graph"
    onnx_export.write_cache(card, blob)
    assert onnx_export.read_cached(card) == blob  # the positive control
    for name, other in _baked_variants(card).items():
        assert onnx_export.cache_path(other) != onnx_export.cache_path(card), name
        assert onnx_export.read_cached(other) is None, name


@pytest.mark.parametrize("variant", ["mean", "std", "image size", "feature layers"])
def test_an_entry_copied_under_another_card_s_name_is_not_served(card, fresh_cache, variant):
    """A poisoned cache: the genuine model's entry (graph and sidecar) renamed to what an edited
    card would look up. The sidecar's graph key gives it away."""
    edited = _baked_variants(card)[variant]
    source = onnx_export.write_cache(card, b"graph of the genuine card")
    target = onnx_export.cache_path(edited)
    shutil.copy(source, target)
    shutil.copy(source.with_suffix(".json"), target.with_suffix(".json"))
    assert onnx_export.read_cached(edited) is None
    # and the other way round: an entry made for the edited card is never the genuine one's
    onnx_export.write_cache(edited, b"graph baked with the edited card")
    shutil.copy(target, source)
    shutil.copy(target.with_suffix(".json"), source.with_suffix(".json"))
    assert onnx_export.read_cached(card) is None


@pytest.mark.parametrize("field, value", [("graph_key", "0" * 64), ("weights_sha256", "0" * 64),
                                          ("export_format", onnx_export.EXPORT_FORMAT - 1)])
def test_a_sidecar_that_disagrees_on_any_key_is_not_served(card, fresh_cache, field, value):
    path = onnx_export.write_cache(card, b"graph")
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta[field] = value
    sidecar.write_text(json.dumps(meta))
    assert onnx_export.read_cached(card) is None
