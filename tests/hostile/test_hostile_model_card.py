"""Hostile model cards: a card edited by hand must never change what the weights say.

The attack of the issue: class order reversed, review threshold 0, OOD threshold 1e12,
temperature <= 0, and every Benign image came back "Pro 1.000000" unflagged, stored under the
genuine weights' sha256. Each case below is refused where the card is read, with the engine's
own error naming the file and the field, before a single image is classified.

Two guards, two kinds of model file:

* *unbound* (written before the binding, like the shipped baseline 1.2.0): only the validation
  stands between an edited card and a load, so the value cases are run on those;
* *bound* (every file saved now): the card's result-bearing fields are sealed into the weights
  file, so any edit to them, even to a value training could have written, is refused as "the
  model card was edited after training".
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engine.core.errors import ModelError, ModelIntegrityError
from engine.inference import onnx_export
from engine.inference.classifier import Classifier
from engine.models.card import CardBinding, ModelCard
from engine.models.checkpoint import read_card
from engine.models.resolve import LoadedModel, load_model
from tests.conftest import save_tiny_model, synthetic_smear, write_image
from tests.engine.models.test_checkpoint import edit_card, unbind

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ALLSIGHT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


@pytest.fixture
def unbound(tmp_path) -> ModelCard:
    """A tiny model as an older ALLSight wrote it (no card fields sealed into the weights)."""
    card = unbind(save_tiny_model(tmp_path / "unbound"))
    assert card.binding is CardBinding.UNBOUND
    return card


@pytest.fixture
def bound(tmp_path) -> ModelCard:
    card = save_tiny_model(tmp_path / "bound")
    assert read_card(card.path).binding is CardBinding.BOUND
    return card


@pytest.fixture
def smear(tmp_path) -> Path:
    return write_image(tmp_path / "in" / "benign.png", synthetic_smear(0, 48, 0))


def refused(model: Path, smear: Path, error: type[Exception], message: str) -> str:
    """Try to classify ``smear`` with ``model`` the way the app does (the model loaded in the
    background while the images are decoded); assert it is refused with exactly ``error``,
    whose text matches ``message`` and names the card, and that no result came out."""
    results = []
    with pytest.raises(error, match=message) as info:
        classifier = Classifier(model, device="cpu", background=True)
        results.extend(classifier.classify_paths([smear]))
    assert type(info.value) is error
    text = str(info.value)
    assert text.startswith(f"{model.with_suffix('.json')}: ") and "refusing to load it" in text, text
    assert results == []
    return text


def _set(data: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    for key in parents:
        data = data[key]
    data[last] = value


def edited(card: ModelCard, **changes) -> Path:
    """``card``'s JSON with ``changes`` (dotted field names, ``__`` for ``.``) applied by hand."""
    return edit_card(card, lambda d: [_set(d, k.replace("__", "."), v) for k, v in changes.items()])


# ------------------------------------------------------------------------ the values
def test_reversed_class_order_is_refused(unbound, smear):
    path = edit_card(unbound, lambda d: d.__setitem__("classes", d["classes"][::-1]))
    refused(path, smear, ModelError, r"'classes' must be exactly Benign, Early, Pre, Pro, in this order \(the order "
            r"of the network's outputs\), got \['Pro', 'Pre', 'Early', 'Benign'\]")


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_a_temperature_of_zero_or_less_is_refused(unbound, smear, temperature):
    refused(edited(unbound, calibration__temperature=temperature), smear, ModelError,
            rf"'calibration.temperature' must be >= 0.05 and <= 20, got {temperature}")


def test_a_review_threshold_above_one_is_refused(unbound, smear):
    refused(edited(unbound, review_threshold=1.5), smear, ModelError,
            r"'review_threshold' must be >= 0 and <= 1, got 1.5")


def test_a_review_threshold_of_zero_is_legitimate_so_only_the_binding_catches_it(unbound, bound, smear):
    """0 is what training writes when every validation image met the target precision: the
    validation must accept it. On a bound model the edit is still refused."""
    edited(unbound, review_threshold=0.0)
    assert read_card(unbound.path).review_threshold == 0.0  # unbound: validated, not bound (documented)
    text = refused(edited(bound, review_threshold=0.0), smear, ModelIntegrityError,
                   r"the model card was edited after training \(review_threshold differs from what tiny.safetensors "
                   r"was saved with\)")
    assert "main.py refit" in text


@pytest.mark.parametrize("threshold, rule", [(1e12, r"must be >= 0 and <= 1e\+09, got 1000000000000.0"),
                                             (float("nan"), "must be a finite number, got nan"),
                                             (float("inf"), "must be a finite number, got inf"),
                                             (-1.0, "must be >= 0 and <= 1e\\+09, got -1.0")])
def test_an_ood_threshold_out_of_range_is_refused(unbound, smear, threshold, rule):
    # The tiny model has the one-layer (pre-1.2) detector, whose raw-distance threshold is bounded loosely.
    refused(edited(unbound, ood__threshold=threshold), smear, ModelError, f"'ood.threshold' {rule}")


def test_an_ood_threshold_of_1e12_on_a_multi_layer_detector_is_refused(tmp_path, smear):
    """The shipped models' detector kind (unbound, like them), whose threshold has a real unit."""
    shutil.copy(ROOT / "resources" / "models" / "baseline.safetensors", tmp_path)
    card = ModelCard.from_json_dict(json.loads((ROOT / "resources" / "models" / "baseline.json").read_text()),
                                    tmp_path / "baseline.json")
    (tmp_path / "baseline.json").write_text(json.dumps(card.to_json_dict()))
    assert read_card(tmp_path / "baseline.json").binding is CardBinding.UNBOUND
    refused(edited(card, ood__threshold=1e12), smear, ModelError,
            r"'ood.threshold' must be >= 0 and <= 100, got 1000000000000.0")


def test_a_mean_of_the_wrong_length_is_refused(unbound, smear):
    refused(edited(unbound, preprocess__mean=[0.5, 0.5], normalization__mean=[0.5, 0.5]), smear, ModelError,
            r"'preprocess.mean' must be three numbers \(R, G, B\), got \[0.5, 0.5\]")


def test_an_image_size_that_disagrees_between_fields_is_refused(unbound, smear):
    refused(edited(unbound, preprocess__image_size=64), smear, ModelError,
            r"'input_size' must be \[3, 64, 64\] \(preprocess.image_size is 64\), got \[3, 32, 32\]")


def test_an_unknown_architecture_is_refused(unbound, smear):
    refused(edited(unbound, architecture="resnet1800"), smear, ModelError,
            r"'architecture' must be a registered architecture \(alexnet, baseline, resnet18, vgg16\), got "
            "'resnet1800'")


def test_a_deleted_ood_section_is_refused(unbound, smear):
    path = edit_card(unbound, lambda d: d.__setitem__("ood", {}))
    refused(path, smear, ModelError, re.escape(f"{path}: the model card has no 'ood' section, but tiny.safetensors "
                                               "holds an out-of-distribution detector"))


# ------------------------------------------------------------------------ the binding
def test_the_whole_attack_on_a_bound_model_is_an_edit_after_training(bound, smear):
    path = edit_card(bound, lambda d: d.update(
        classes=d["classes"][::-1], review_threshold=0.0, calibration={"method": "temperature", "temperature": 0.06},
        ood={**d["ood"], "threshold": 99.0}))
    # The reversed classes fail the validation first; with them put back the rest is still an edit.
    refused(path, smear, ModelError, "'classes' must be exactly")
    edit_card(bound, lambda d: d.__setitem__("classes", d["classes"][::-1]))
    refused(path, smear, ModelIntegrityError, r"the model card was edited after training \(calibration.temperature, "
            r"review_threshold, ood.threshold differ from what tiny.safetensors was saved with\)")


def test_the_json_edited_after_training_is_refused_through_the_command_line(bound, smear, tmp_path):
    edited(bound, preprocess__white_balance=True)
    out = tmp_path / "results.csv"
    proc = subprocess.run([sys.executable, "main.py", "classify", str(smear.parent), "--model", str(bound.weights_path),
                           "--out", str(out), "--device", "cpu", "--workers", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.search(r"error: .*tiny\.json: the model card was edited after training \(preprocess\.white_balance "
                     r"differs", proc.stderr), proc.stderr
    assert not out.exists()  # nothing was classified, so nothing was written


def test_stripping_the_seal_changes_the_weights_hash(bound):
    """Making a bound model look unbound means rewriting its weights file: its results can then
    never be stored under the genuine weights' sha256."""
    genuine = bound.weights_sha256
    stripped = unbind(bound)
    assert stripped.binding is CardBinding.UNBOUND and stripped.weights_sha256 != genuine


# ------------------------------------------------------------------------ the ONNX cache
def test_a_poisoned_onnx_cache_entry_is_not_served(bound, fresh_cache, smear):
    """An entry exported for an edited card (other normalisation and input size) and put in
    place of the genuine model's entry is rebuilt, not used."""
    pixels = np.stack([synthetic_smear(i % 4, 32, i) for i in range(3)])
    genuine = Classifier(bound.weights_path, device="cpu", backend="onnx")
    expected, _ = genuine.backend.run(pixels)
    entry = onnx_export.cache_path(genuine.card)
    assert entry.is_file()

    loaded = load_model(bound.path)
    # In memory: a file edited so would be refused before any export (the binding); this is the
    # cache entry such a card would leave behind.
    hostile_card = replace(genuine.card, preprocess=bound.preprocess.replace(mean=(0.0,) * 3, std=(1.0,) * 3))
    hostile = onnx_export.ensure_cached(hostile_card, LoadedModel(hostile_card, loaded.net, loaded.extras))
    poisoned = onnx_export.cache_path(hostile_card)
    assert poisoned != entry
    shutil.copy(poisoned, entry)
    shutil.copy(poisoned.with_suffix(".json"), entry.with_suffix(".json"))
    assert entry.read_bytes() == hostile and onnx_export.read_cached(genuine.card) is None

    again = Classifier(bound.weights_path, device="cpu", backend="onnx")
    logits, _ = again.backend.run(pixels)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    assert onnx_export.read_cached(again.card) not in (None, hostile)  # rebuilt for the genuine card
