import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from engine import CLASS_IDS
from engine.core.errors import ModelError, ModelIntegrityError
from engine.models.card import (
    BUILT_IN_ARCHITECTURES,
    OOD_LEGACY_METHOD,
    OOD_METHOD,
    TEMPERATURE_RANGE,
    CardBinding,
    ModelCard,
)
from engine.models.checkpoint import BOUND_FIELDS, CARD_RECORD_KEY, load_arrays, read_card, read_safetensors_header
from engine.models.resolve import SHIPPED_MODELS_DIR, load_model, resolve_model_card
from tests.conftest import save_tiny_model

ROOT = Path(__file__).resolve().parents[3]


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


# ------------------------------------------------------------------ validation and binding
# Helpers shared with tests/hostile/test_hostile_model_card.py.
def edit_card(card, change) -> Path:
    """Apply ``change(data)`` to ``card``'s JSON file in place (a hand edit); returns its path."""
    data = json.loads(card.path.read_text())
    change(data)
    card.path.write_text(json.dumps(data, indent=2))
    return card.path


def unbind(card):
    """Rewrite ``card``'s weights as save_model wrote them before the binding (one metadata key,
    ``format: pt``), and the card's sha256 to match: a model file from an older ALLSight."""
    from safetensors.numpy import load, save

    blob = save(load(card.weights_path.read_bytes()), metadata={"format": "pt"})
    card.weights_path.write_bytes(blob)
    edit_card(card, lambda d: d["weights"].__setitem__("sha256", hashlib.sha256(blob).hexdigest()))
    return read_card(card.path)


SHIPPED_CARDS = sorted(SHIPPED_MODELS_DIR.glob("*.json"))


def shipped_card_dict(name: str = "resnet18") -> dict:
    """A multi-layer-detector card as training writes it (the shipped one, as parsed JSON)."""
    return json.loads((SHIPPED_MODELS_DIR / f"{name}.json").read_text())


def test_there_are_shipped_cards_to_check():
    assert {p.stem for p in SHIPPED_CARDS} >= {"resnet18", "baseline"}


#: Shipped models trained before the card was bound to the weights (ADR 11): they load unbound.
UNBOUND_SHIPPED = {"baseline"}  # 1.2.0; resnet18 (1.3.0 on) is bound


@pytest.mark.parametrize("card_path", SHIPPED_CARDS, ids=lambda p: p.stem)
def test_every_shipped_card_validates_and_loads_with_its_binding(card_path):
    card = read_card(card_path)
    header = read_safetensors_header(card.weights_path)
    if card_path.stem in UNBOUND_SHIPPED:
        assert card.binding is CardBinding.UNBOUND  # written before the binding
        assert CARD_RECORD_KEY not in header.get("__metadata__", {})
    else:
        assert card.binding is CardBinding.BOUND and CARD_RECORD_KEY in header["__metadata__"]
    assert card.classes == CLASS_IDS
    assert set(load_arrays(card, "ood.")) == set(card.ood["tensors"])  # its weights verify too


def test_built_in_architectures_are_the_zoo_s():
    from engine.models.spec import REGISTERED

    zoo = {name for name, spec in REGISTERED.items() if spec.builder.__module__ == "engine.models.zoo"}
    assert set(BUILT_IN_ARCHITECTURES) == zoo, "update BUILT_IN_ARCHITECTURES in engine/models/card.py"


def test_the_card_s_ood_method_names_are_the_detector_s():
    from engine.inference import ood

    assert (OOD_METHOD, OOD_LEGACY_METHOD) == (ood.METHOD, ood.LEGACY_METHOD)


def test_fitted_temperatures_always_pass_the_card_check():
    import numpy as np

    from engine.inference.predict import fit_temperature

    labels = np.arange(40) % 4
    confident = np.eye(4)[labels] * 200.0  # wants T -> infinity... or 0, clipped either way
    wrong = np.eye(4)[(labels + 1) % 4] * 200.0
    fitted = [fit_temperature(confident, labels), fit_temperature(wrong, labels)]
    low, high = TEMPERATURE_RANGE
    assert all(low <= t <= high for t in fitted)
    assert min(fitted) == pytest.approx(low) or max(fitted) == pytest.approx(high)


def _valid() -> dict:
    return shipped_card_dict()


def _set(path: str, value):
    def change(data):
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        node[last] = value
    return change


REFUSED = [
    ("reversed classes", _set("classes", list(reversed(_valid()["classes"]))), "'classes' must be exactly Benign, "
     "Early, Pre, Pro, in this order"),
    ("three classes", _set("classes", _valid()["classes"][:3]), "'classes' must be exactly"),
    ("temperature 0", _set("calibration.temperature", 0.0), r"'calibration.temperature' must be >= 0.05 and <= 20"),
    ("temperature -1", _set("calibration.temperature", -1.0), "'calibration.temperature' must be >= 0.05"),
    ("temperature 1e-6", _set("calibration.temperature", 1e-6), "'calibration.temperature' must be >= 0.05"),
    ("temperature NaN", _set("calibration.temperature", float("nan")), "'calibration.temperature' must be a finite"),
    ("temperature text", _set("calibration.temperature", "0.5"), "'calibration.temperature' must be a finite"),
    ("review 1.5", _set("review_threshold", 1.5), r"'review_threshold' must be >= 0 and <= 1, got 1.5"),
    ("review -0.1", _set("review_threshold", -0.1), "'review_threshold' must be >= 0"),
    ("review true", _set("review_threshold", True), "'review_threshold' must be a finite number"),
    ("ood 1e12", _set("ood.threshold", 1e12), r"'ood.threshold' must be >= 0 and <= 100"),
    ("ood NaN", _set("ood.threshold", float("nan")), "'ood.threshold' must be a finite number"),
    ("ood inf", _set("ood.threshold", float("inf")), "'ood.threshold' must be a finite number"),
    ("ood negative", _set("ood.threshold", -1.0), "'ood.threshold' must be >= 0"),
    ("ood none", _set("ood.threshold", None), "'ood.threshold' must be a finite number"),
    ("ood method", _set("ood.method", "none"), "'ood.method' must be"),
    ("ood scale 0", _set("ood.scales", [0.0, 1.0, 1.0, 1.0]), "'ood.scales' must be numbers > 0"),
    ("ood scale NaN", _set("ood.scales", [float("nan"), 1.0, 1.0, 1.0]), "'ood.scales' must be a finite"),
    ("ood scales short", _set("ood.scales", [1.0]), "'ood.scales' must be 4 numbers"),
    ("ood dims", _set("ood.dims", [64, 128, 256, -512]), "'ood.dims' must be 4 positive whole numbers"),
    ("ood layers", _set("ood.feature_layers", ["layer1", "layer1"]), "'ood.feature_layers' must be a list of "
     "distinct"),
    ("ood quantile", _set("ood.quantile", 1.5), "'ood.quantile' must be > 0 and <= 1"),
    ("mean of 2", _set("preprocess.mean", [0.5, 0.5]), r"'preprocess.mean' must be three numbers \(R, G, B\)"),
    ("mean of 4", _set("preprocess.mean", [0.5, 0.5, 0.5, 0.5]), "'preprocess.mean' must be three numbers"),
    ("mean NaN", _set("preprocess.mean", [float("nan"), 0.5, 0.5]), "'preprocess.mean' must be a finite"),
    ("std 0", _set("preprocess.std", [0.0, 0.2, 0.2]), "'preprocess.std' must be > 0 and <= 1"),
    ("std inf", _set("preprocess.std", [float("inf"), 0.2, 0.2]), "'preprocess.std' must be a finite"),
    ("normalization differs", _set("normalization.mean", [0.5, 0.5, 0.5]), "'normalization.mean' must equal "
     "preprocess.mean"),
    ("image size mismatch", _set("preprocess.image_size", 224), r"'input_size' must be \[3, 224, 224\] "
     r"\(preprocess.image_size is 224\)"),
    ("input size mismatch", _set("input_size", [3, 64, 64]), r"'input_size' must be \[3, 128, 128\]"),
    ("image size 0", _set("preprocess.image_size", 0), r"'preprocess' is invalid \(image_size must be between"),
    ("image size float", _set("preprocess.image_size", 128.0), r"'preprocess' is invalid \(image_size must be a whole"),
    ("architecture", _set("architecture", "resnet1800"), "'architecture' must be a registered architecture "
     r"\(alexnet, baseline, resnet18, vgg16\)"),
    ("mode", _set("mode", "train"), "'mode' must be 'finetune' or 'frozen'"),
    ("weights elsewhere", _set("weights.file", "../other/model.safetensors"), "'weights.file' must be the name"),
    ("weights sha", _set("weights.sha256", "abc"), "'weights.sha256' must be 64"),
    ("weights dtype", _set("weights.dtype", "int8"), "'weights.dtype' must be float32 or float16"),
]


@pytest.mark.parametrize("change, message", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_the_validator_refuses_values_training_never_writes(tmp_path, change, message):
    data = _valid()
    change(data)
    data = json.loads(json.dumps(data))  # as a file would give it back (NaN and Infinity included)
    where = tmp_path / "edited.json"
    with pytest.raises(ModelError, match=message) as info:
        ModelCard.from_json_dict(data, where)
    assert str(info.value).startswith(f"{where}: model card field ") and "refusing to load it" in str(info.value)
    assert type(info.value) is ModelError


ACCEPTED = [
    ("review threshold 0 (every validation image met the target)", _set("review_threshold", 0.0)),
    ("review threshold 1 (nothing could be trusted unreviewed)", _set("review_threshold", 1.0)),
    ("ood threshold 0 (flag everything)", _set("ood.threshold", 0.0)),
    ("temperature at both ends of the fitted range", _set("calibration.temperature", 20.0)),
    ("no detector", _set("ood", {})),
    ("an integer threshold", _set("review_threshold", 1)),
]


@pytest.mark.parametrize("change", [a[1] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED])
def test_the_validator_accepts_what_training_can_write(change):
    data = _valid()
    change(data)
    assert ModelCard.from_json_dict(data).classes == CLASS_IDS


def test_a_legacy_one_layer_detector_has_a_looser_bound():
    data = _valid()
    data["ood"] = {"method": "mahalanobis", "feature_layer": "layer4", "threshold": 1e9}
    assert ModelCard.from_json_dict(data).ood["threshold"] == 1e9
    data["ood"]["threshold"] = 1e12
    with pytest.raises(ModelError, match=r"'ood.threshold' must be >= 0 and <= 1e\+09"):
        ModelCard.from_json_dict(data)


def test_save_refuses_a_card_no_load_would_accept_and_writes_nothing(tmp_path):
    from dataclasses import replace

    from engine.models.checkpoint import save_model

    card = save_tiny_model(tmp_path / "ok")
    tensors = load_model(card.path).extras | {f"net.{k}": v for k, v in load_model(card.path).net.state_dict().items()}
    with pytest.raises(ModelError, match="'calibration.temperature' must be >= 0.05"):
        save_model(tensors, replace(card, temperature=0.0), tmp_path / "bad", "bad")
    assert not (tmp_path / "bad" / "bad.safetensors").exists() and not (tmp_path / "bad" / "bad.json").exists()


def test_save_refuses_an_ood_section_that_does_not_describe_the_tensors(tmp_path):
    from dataclasses import replace

    from engine.models.checkpoint import save_model

    card = save_tiny_model(tmp_path / "ok")
    loaded = load_model(card.path)
    tensors = {f"net.{k}": v for k, v in loaded.net.state_dict().items()}  # the detector's tensors left out
    with pytest.raises(ModelError, match=r"the tensor ood.means \(missing\) does not fit layer features"):
        save_model(tensors, replace(card, weights_sha256=""), tmp_path / "bad", "bad")
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


def test_save_seals_the_bound_fields_into_the_only_metadata_key(tmp_path):
    card = save_tiny_model(tmp_path)
    meta = read_safetensors_header(card.weights_path)["__metadata__"]
    assert list(meta) == [CARD_RECORD_KEY]  # one key: safetensors orders several differently on each run
    record = json.loads(meta[CARD_RECORD_KEY])
    data = json.loads(card.path.read_text())
    assert record["version"] == 1 and record["fields"] == {k: data[k] for k in BOUND_FIELDS}
    assert set(BOUND_FIELDS) == {"architecture", "mode", "classes", "input_size", "normalization", "preprocess",
                                 "calibration", "review_threshold", "ood"}
    assert card.binding is CardBinding.BOUND and read_card(card.path).binding is CardBinding.BOUND
    assert card.weights_sha256 == hashlib.sha256(card.weights_path.read_bytes()).hexdigest()


def test_two_saves_of_the_same_model_give_the_same_bytes(tmp_path):
    a = save_tiny_model(tmp_path / "a")
    b = save_tiny_model(tmp_path / "b")
    assert a.weights_path.read_bytes() == b.weights_path.read_bytes()
    assert a.weights_sha256 == b.weights_sha256


def test_the_seal_changes_with_each_bound_field(tmp_path):
    from dataclasses import replace

    from engine.models.checkpoint import save_model

    card = save_tiny_model(tmp_path / "a")
    loaded = load_model(card.path)
    tensors = loaded.extras | {f"net.{k}": v for k, v in loaded.net.state_dict().items()}
    other = save_model(tensors, replace(card, review_threshold=0.25), tmp_path / "b", "tiny")
    assert other.weights_sha256 != card.weights_sha256  # the same tensors, another calibration: another model


@pytest.mark.parametrize("field, value, named", [
    ("review_threshold", 0.0, "review_threshold"),
    ("calibration", {"method": "temperature", "temperature": 2.0}, "calibration.temperature"),
    ("ood", {"method": "mahalanobis", "threshold": 99.0, "tensors": ["ood.means", "ood.precision"]}, "ood.threshold"),
    ("classes", [{"id": c, "display_name": c} for c in CLASS_IDS], "classes"),
    ("mode", "frozen", "mode"),
])
def test_an_edit_to_a_bound_field_is_refused_naming_it(tmp_path, field, value, named):
    card = save_tiny_model(tmp_path)
    edit_card(card, lambda d: d.__setitem__(field, value))
    with pytest.raises(ModelIntegrityError) as info:
        read_card(card.path)
    message = str(info.value)
    assert message.startswith(f"{card.path}: the model card was edited after training ({named} differs from what "
                              "tiny.safetensors was saved with); refusing to load it."), message
    with pytest.raises(ModelIntegrityError, match="edited after training"):
        load_model(card.weights_path)


def test_edits_to_descriptive_fields_are_allowed(tmp_path):
    card = save_tiny_model(tmp_path)

    def change(data):
        data["version"] = "0.0.2"
        data["metrics"] = {"note": "re-measured"}
        data["training"] = {"note": "by hand"}

    edit_card(card, change)
    again = read_card(card.path)
    assert again.binding is CardBinding.BOUND and again.version == "0.0.2"


def test_recalibrating_tolerates_calibration_edits_only(tmp_path):
    card = save_tiny_model(tmp_path)
    edit_card(card, lambda d: d.update(review_threshold=0.0, ood={"method": "mahalanobis", "threshold": 1.0}))
    with pytest.raises(ModelIntegrityError, match=r"\(review_threshold, ood.tensors, ood.threshold differ"):
        load_model(card.path)
    assert load_model(card.path, recalibrating=True).card.review_threshold == 0.0  # refit replaces it anyway
    edit_card(card, lambda d: d["preprocess"].__setitem__("white_balance", True))
    with pytest.raises(ModelIntegrityError, match=r"\(preprocess.white_balance differs"):
        load_model(card.path, recalibrating=True)


def test_an_unbound_model_loads_and_says_so(tmp_path):
    card = unbind(save_tiny_model(tmp_path))
    assert card.binding is CardBinding.UNBOUND
    loaded = load_model(card.weights_path)
    assert loaded.card.binding is CardBinding.UNBOUND and set(loaded.extras) == {"ood.means", "ood.precision"}


def test_the_unbound_warning_is_given_once_per_file(tmp_path, caplog):
    card = save_tiny_model(tmp_path)
    from safetensors.numpy import load, save

    blob = save(load(card.weights_path.read_bytes()), metadata={"format": "pt"})
    card.weights_path.write_bytes(blob)
    edit_card(card, lambda d: d["weights"].__setitem__("sha256", hashlib.sha256(blob).hexdigest()))
    with caplog.at_level("WARNING", logger="engine.models.checkpoint"):
        for _ in range(3):
            read_card(card.path)
    assert sum(str(card.weights_path) in r.getMessage() for r in caplog.records) == 1


def test_an_unreadable_or_future_seal_is_refused(tmp_path):
    from safetensors.numpy import load, save

    card = save_tiny_model(tmp_path)
    arrays = load(card.weights_path.read_bytes())
    for record, error, message in (
        ("{not json", ModelIntegrityError, "card record in the weights file is unreadable"),
        (json.dumps({"version": 1, "fields": {"architecture": "baseline"}}), ModelIntegrityError, "is incomplete"),
        (json.dumps({"version": 2, "fields": {}}), ModelError, r"card record \(version 2\) is newer"),
    ):
        blob = save(arrays, metadata={CARD_RECORD_KEY: record})
        card.weights_path.write_bytes(blob)
        edit_card(card, lambda d, b=blob: d["weights"].__setitem__("sha256", hashlib.sha256(b).hexdigest()))
        with pytest.raises(error, match=message):
            read_card(card.path)


def test_a_truncated_header_is_not_a_safetensors_file(tmp_path):
    card = save_tiny_model(tmp_path)
    card.weights_path.write_bytes(card.weights_path.read_bytes()[:20])
    with pytest.raises(ModelError, match="not a valid safetensors file"):
        read_card(card.path)


def test_the_card_must_describe_the_detector_the_weights_hold(tmp_path):
    card = unbind(save_tiny_model(tmp_path))  # unbound: only these checks stand between the card and a load
    edit_card(card, lambda d: d.__setitem__("ood", {}))
    with pytest.raises(ModelError, match="has no 'ood' section, but tiny.safetensors holds an out-of-distribution"):
        read_card(card.path)
    edit_card(card, lambda d: d.__setitem__("ood", {"method": "mahalanobis-multilayer", "feature_layers": ["x"],
                                                    "dims": [10], "scales": [1.0], "threshold": 1.5}))
    with pytest.raises(ModelError, match=r"'ood' does not match tiny.safetensors: the tensor ood.x.means \(missing\)"):
        read_card(card.path)


def test_a_card_without_its_weights_still_reads_unchecked(tmp_path):
    card = save_tiny_model(tmp_path)
    card.weights_path.unlink()
    assert read_card(card.path).binding is CardBinding.UNCHECKED  # the preview needs only the card
    with pytest.raises(ModelError, match="weights file cannot be read"):
        load_model(card.path)


def test_reading_a_card_imports_no_torch(tmp_path):
    import subprocess
    import sys

    card = save_tiny_model(tmp_path)
    code = ("import sys; from engine.models.checkpoint import read_card, load_arrays; "
            f"c = read_card({str(card.path)!r}); load_arrays(c, 'ood.'); "
            "print(c.binding, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["bound", "False"], out.stderr
