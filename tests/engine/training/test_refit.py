"""main.py refit: a trained model's calibration and OOD detector re-fitted, its network kept."""

from __future__ import annotations

import json

import numpy as np

from engine.inference.ood import METHOD
from engine.models.resolve import load_model
from engine.training.refit import refit
from tests.engine.training.test_train import quick_config, run_to_end


def test_refit_replaces_a_legacy_detector_and_keeps_the_network(class_dataset, tmp_path):
    path = run_to_end(quick_config(class_dataset, tmp_path / "run", epochs=1))[-1].metrics["model_path"]
    original = load_model(path)
    # make the card look like a pre-1.2 model: one-layer detector under the old keys
    card_path = original.card.path
    card = json.loads(card_path.read_text())
    card["ood"] = {"method": "mahalanobis", "feature_layer": "features.4", "threshold": 1.0}
    card_path.write_text(json.dumps(card))

    new_card = refit(path, class_dataset, tmp_path / "refit", model_version="9.9.9")
    new = load_model(new_card.weights_path)
    assert new.card.version == "9.9.9" and new.card.ood["method"] == METHOD
    assert new.card.ood["feature_layers"] == ["features.1", "features.4"]
    assert new.card.training["refit"]["from_weights_sha256"] == original.card.weights_sha256
    assert set(new.extras) == {f"ood.{layer}.{part}" for layer in ("features.1", "features.4")
                               for part in ("means", "precision")}
    for key, value in original.net.state_dict().items():
        np.testing.assert_array_equal(new.net.state_dict()[key].numpy(), value.numpy(), err_msg=key)
    assert (tmp_path / "run" / "quick.safetensors").is_file()  # the input model is left alone
    # the INT8 graph is made again: its check's bands depend on the thresholds refit replaced
    assert new.card.graphs["int8"]["quantized_from"] == new.card.graphs["fp32"]["sha256"]
    assert new.card.graphs["int8"]["fp32_check"] != {} and (tmp_path / "refit" / "quick.int8.onnx").is_file()
