"""The model library: shipped and lab models, the active one, install/activate/rollback/export/
delete, and what a damaged file or pointer gets (a clear refusal; nothing installed or active
changes)."""

from __future__ import annotations

import json

import pytest

from engine.core.errors import ModelError, ModelIntegrityError
from engine.models.installed import ACTIVE_FILE, library_dir
from engine.models.library import ModelLibrary, ModelSource
from engine.models.resolve import DEFAULT_MODEL_ID, resolve_model_card
from tests.conftest import save_tiny_model


@pytest.fixture
def library() -> ModelLibrary:
    return ModelLibrary()  # the test's private user data folder (tests/conftest.py)


@pytest.fixture
def tiny(tmp_path):
    return save_tiny_model(tmp_path / "trained", model_id="tiny-lab")


def test_a_new_library_has_the_shipped_models_and_the_default_is_active(library):
    models = library.models()
    assert {m.card.id for m in models} >= {"resnet18", "baseline"}
    assert all(m.source is ModelSource.SHIPPED for m in models)
    assert library.active().card.id == DEFAULT_MODEL_ID and library.history() == []
    assert resolve_model_card(None).id == DEFAULT_MODEL_ID


def test_install_copies_a_verified_model_into_the_user_data_folder_once(library, tiny):
    model = library.install(tiny.weights_path, by="ada", origin="imported from a USB stick")
    assert model.source is ModelSource.LAB and model.sha256 == tiny.weights_sha256
    assert model.folder.parent == library_dir() and model.installed_by == "ada"
    assert library.install(tiny.path, by="tom", origin="again") == model  # already there: unchanged
    assert [m.ref for m in library.models() if m.source is ModelSource.LAB] == ["tiny-lab@0.0.1"]
    for ref in ("tiny-lab", "tiny-lab@0.0.1", tiny.weights_sha256[:10]):
        assert resolve_model_card(ref).weights_sha256 == tiny.weights_sha256


def test_activate_promotes_and_rolls_back_with_who_and_why(library, tiny):
    library.install(tiny.weights_path, by="ada", origin="trained")
    with pytest.raises(ModelError, match="say why"):
        library.activate("tiny-lab", by="ada", reason="  ")
    promoted = library.activate("tiny-lab", by="ada", reason="validated on our stain")
    assert resolve_model_card(None).weights_sha256 == tiny.weights_sha256
    assert promoted.previous_model.startswith(f"{DEFAULT_MODEL_ID}@") and promoted.source is ModelSource.LAB
    back = library.activate(DEFAULT_MODEL_ID, by="rita", reason="too many flags")
    assert resolve_model_card(None).id == DEFAULT_MODEL_ID and back.previous_sha256 == tiny.weights_sha256
    assert [(a.by, a.reason) for a in library.history()] == [("ada", "validated on our stain"),
                                                           ("rita", "too many flags")]
    assert library.promoted_by(tiny.weights_sha256).by == "ada"
    assert back.audit_details()["reason"] == "too many flags"


def test_a_tampered_model_is_refused_and_nothing_is_installed(library, tiny):
    blob = bytearray(tiny.weights_path.read_bytes())
    blob[-1] ^= 0xFF
    tiny.weights_path.write_bytes(bytes(blob))
    with pytest.raises(ModelIntegrityError, match="corrupt or has been tampered"):
        library.install(tiny.weights_path, by="ada", origin="imported")
    assert not library_dir().exists() or list(library_dir().iterdir()) == []


def test_export_then_import_on_another_workstation(library, tiny, tmp_path):
    library.install(tiny.weights_path, by="ada", origin="trained")
    exported = library.export("tiny-lab", tmp_path / "stick")
    assert exported.is_file() and exported.with_suffix(".json").is_file()
    with pytest.raises(ModelError, match="already exist"):
        library.export("tiny-lab", tmp_path / "stick")  # never writes over a file
    other = ModelLibrary(tmp_path / "other-workstation")
    assert other.install(exported, by="it", origin="imported").sha256 == tiny.weights_sha256


def test_delete_refuses_shipped_and_active_models(library, tiny):
    library.install(tiny.weights_path, by="ada", origin="trained")
    with pytest.raises(ModelError, match="shipped"):
        library.delete(DEFAULT_MODEL_ID)
    library.activate("tiny-lab", by="ada", reason="trial")
    with pytest.raises(ModelError, match="active model"):
        library.delete("tiny-lab")
    library.activate(DEFAULT_MODEL_ID, by="ada", reason="trial over")
    library.delete("tiny-lab")
    assert [m for m in library.models() if m.source is ModelSource.LAB] == []


def test_an_active_model_gone_from_disk_is_an_error_not_a_silent_switch(library, tiny):
    import shutil

    model = library.install(tiny.weights_path, by="ada", origin="trained")
    library.activate("tiny-lab", by="ada", reason="trial")
    shutil.rmtree(model.folder)
    with pytest.raises(ModelError, match="active model tiny-lab@0.0.1 .*is missing.*activate another"):
        resolve_model_card(None)
    library.activate(DEFAULT_MODEL_ID, by="ada", reason="repair")  # activating another repairs it
    assert resolve_model_card(None).id == DEFAULT_MODEL_ID


def test_a_damaged_active_record_or_swapped_card_is_refused(library, tiny, tmp_path):
    model = library.install(tiny.weights_path, by="ada", origin="trained")
    library.activate("tiny-lab", by="ada", reason="trial")
    card = json.loads(model.card.path.read_text())
    card["weights"]["sha256"] = "0" * 64
    model.card.path.write_text(json.dumps(card))
    with pytest.raises(ModelIntegrityError, match="other weights"):
        resolve_model_card(None)
    (library_dir() / ACTIVE_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="record of the active model cannot be read"):
        resolve_model_card(None)
