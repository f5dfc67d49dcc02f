import json
import shutil

import pytest
import torch

from engine.core.errors import ModelError, ModelIntegrityError
from engine.models.checkpoint import load_model, read_card, resolve_model_card
from tests.conftest import save_tiny_model


def test_card_holds_everything_needed_to_use_the_weights(tiny_model):
    data = json.loads(tiny_model.with_suffix(".json").read_text())
    for key in ("schema_version", "id", "version", "architecture", "classes", "preprocess", "input_size",
                "normalization", "training", "data_fingerprint", "metrics", "calibration", "created",
                "libraries", "weights"):
        assert key in data, key
    assert [c["id"] for c in data["classes"]] == ["Benign", "Early", "Pre", "Pro"]
    assert data["classes"][2]["display_name"] == "Pre-B ALL"
    assert len(data["weights"]["sha256"]) == 64
    assert data["preprocess"]["color_ranges"][0]["name"] == "pink"


def test_round_trip_gives_the_same_network_output(tmp_path):
    card = save_tiny_model(tmp_path)
    loaded = load_model(card.weights_path)
    x = torch.rand(1, 3, 32, 32)
    again = load_model(str(card.path))
    assert torch.equal(loaded.net(x), again.net(x))
    assert loaded.card.preprocess == card.preprocess
    assert set(loaded.extras) == {"ood.means", "ood.precision"}


def test_tampered_weights_are_refused(tmp_path):
    card = save_tiny_model(tmp_path)
    blob = bytearray(card.weights_path.read_bytes())
    blob[-5] ^= 0xFF
    card.weights_path.write_bytes(bytes(blob))
    with pytest.raises(ModelIntegrityError, match="corrupt or has been tampered with"):
        load_model(card.weights_path)


def test_weights_are_never_unpickled(tmp_path, monkeypatch):
    import pickle

    card = save_tiny_model(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    load_model(card.weights_path)


def test_missing_card_and_unknown_id_are_clear(tmp_path):
    card = save_tiny_model(tmp_path)
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(card.weights_path, lone / "x.safetensors")
    with pytest.raises(ModelError, match="model card not found"):
        load_model(lone / "x.safetensors")
    with pytest.raises(ModelError, match="no model 'nonexistent'"):
        resolve_model_card("nonexistent")


def test_malformed_and_future_cards_are_refused(tmp_path):
    card = save_tiny_model(tmp_path)
    data = json.loads(card.path.read_text())
    data["schema_version"] = 99
    card.path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="newer than this ALLSight"):
        read_card(card.path)
    del data["weights"]
    data["schema_version"] = 1
    card.path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="incomplete or malformed"):
        read_card(card.path)


def test_fp16_storage_halves_the_file_and_loads_as_float32(tmp_path):
    from dataclasses import replace

    from engine.models.checkpoint import save_model

    card = save_tiny_model(tmp_path)
    loaded = load_model(card.weights_path)
    tensors = {f"net.{k}": v for k, v in loaded.net.state_dict().items()}
    tensors.update(loaded.extras)
    half = save_model(tensors, replace(card, weights_dtype="float16", weights_sha256=""), tmp_path, "half")
    assert half.weights_path.stat().st_size < 0.6 * card.weights_path.stat().st_size
    reloaded = load_model(half.weights_path)
    assert all(p.dtype == torch.float32 for p in reloaded.net.parameters())
    assert reloaded.extras["ood.precision"].dtype == torch.float32
