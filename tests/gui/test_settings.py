"""Settings: versioned JSON in the user's config folder, tolerant loading, atomic saving."""

from __future__ import annotations

import json
import os

import pytest

from gui.settings import (
    SETTINGS_SCHEMA_VERSION,
    Settings,
    config_dir,
    load_settings,
    save_settings,
    settings_path,
)


def test_config_dir_honours_env(tmp_path):
    assert config_dir() == tmp_path / "config"
    assert settings_path().parent == tmp_path / "config"


def test_defaults():
    s = Settings()
    assert s.schema_version == SETTINGS_SCHEMA_VERSION
    assert s.active_model == ""  # the model library's active model
    assert s.device == "auto"
    assert s.review_threshold_override is None
    assert (s.lab_name, s.last_open_dir, s.last_export_dir) == ("", "", "")


def test_round_trip(tmp_path):
    s = Settings(active_model="/models/custom.safetensors", device="cpu", review_threshold_override=0.7,
                 lab_name="Haematology 2 — Ørsted", last_open_dir="/data/in",
                 last_export_dir="/data/out")
    path = save_settings(s)
    assert path == settings_path() and path.is_file()
    assert load_settings() == s
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema_version"] == SETTINGS_SCHEMA_VERSION
    # atomic write: no temporary files left behind
    assert sorted(os.listdir(path.parent)) == ["settings.json"]


def test_missing_file_gives_defaults():
    assert not settings_path().exists()
    assert load_settings() == Settings()


def test_corrupt_file_falls_back_to_defaults(caplog):
    path = settings_path()
    path.parent.mkdir(parents=True)
    path.write_text("{ this is not json", encoding="utf-8")
    assert load_settings() == Settings()
    assert "corrupt" in caplog.text
    assert path.with_name("settings.json.bad").is_file()  # kept for whoever investigates
    save_settings(Settings(lab_name="AB"))  # and the next save works
    assert load_settings().lab_name == "AB"


def test_non_object_and_binary_files(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("[1, 2, 3]")
    assert load_settings(path) == Settings()
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert load_settings(path) == Settings()


def test_older_file_and_bad_fields_keep_what_is_valid(tmp_path, caplog):
    path = tmp_path / "s.json"
    # an "older" file: no schema version, one bad value, one field from elsewhere
    path.write_text(json.dumps({"last_open_dir": "/in", "device": "quantum", "review_threshold_override": 2,
                                "lab_name": 5, "window_state": "abc"}))
    s = load_settings(path)
    assert s.last_open_dir == "/in"
    assert s.device == "auto" and s.review_threshold_override is None and s.lab_name == ""
    assert "invalid value" in caplog.text


def test_newer_file_is_read_as_far_as_understood(tmp_path, caplog):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"schema_version": SETTINGS_SCHEMA_VERSION + 5, "lab_name": "Z",
                                "future_field": 1}))
    assert load_settings(path).lab_name == "Z"
    assert "newer" in caplog.text


def test_a_version_1_file_loads_without_its_operator_name_which_no_longer_decides_who_acts(tmp_path, caplog):
    """Schema 2 retired ``operator_name`` (reviews were recorded under it): an older file still
    loads, keeps every other field, and the next save no longer writes it."""
    import logging

    caplog.set_level(logging.INFO, logger="allsight.gui.settings")
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"schema_version": 1, "operator_name": "T. Typed", "lab_name": "Lab 1",
                                "require_independent_reviewer": True}))
    s = load_settings(path)
    assert (s.lab_name, s.require_independent_reviewer) == ("Lab 1", True)
    assert not hasattr(s, "operator_name") and SETTINGS_SCHEMA_VERSION == 3
    assert "no longer used" in caplog.text and "ignoring unknown" not in caplog.text
    save_settings(s, path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert "operator_name" not in data and data["schema_version"] == 3


@pytest.mark.parametrize(("written", "read"), [("resnet18", ""), ("baseline", "baseline"),
                                               ("/lab/models/ours.safetensors", "/lab/models/ours.safetensors")])
def test_a_version_2_file_with_the_old_default_model_follows_the_library_and_a_pinned_one_stays(tmp_path, written,
                                                                                               read):
    """Schema 3: "" (the library's active model, Tools ▸ Models…) is the default. A version 2
    file holding the old default "resnet18" never chose it, so it follows the library; any other
    model was chosen and stays pinned."""
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"schema_version": 2, "active_model": written}))
    assert load_settings(path).active_model == read
    path.write_text(json.dumps({"schema_version": 3, "active_model": "resnet18"}))
    assert load_settings(path).active_model == "resnet18"  # chosen under schema 3: kept


def test_the_independent_reviewer_rule_is_off_by_default_kept_when_on_and_must_be_a_boolean(caplog):
    assert Settings().require_independent_reviewer is False
    save_settings(Settings(require_independent_reviewer=True))
    assert load_settings().require_independent_reviewer is True
    data = json.loads(settings_path().read_text(encoding="utf-8"))
    settings_path().write_text(json.dumps({**data, "require_independent_reviewer": "yes"}), encoding="utf-8")
    assert load_settings().require_independent_reviewer is False  # not a boolean: the default


def test_the_theme_follows_the_desktop_by_default_round_trips_and_must_be_a_known_name(caplog):
    assert Settings().theme == "system"
    for choice in ("light", "dark", "system"):
        save_settings(Settings(theme=choice, lab_name="L"))
        assert load_settings().theme == choice and load_settings().lab_name == "L"
    data = json.loads(settings_path().read_text(encoding="utf-8"))
    assert data["schema_version"] == SETTINGS_SCHEMA_VERSION == 3  # the theme (a new field with a default) needed no bump
    settings_path().write_text(json.dumps({**data, "theme": "purple"}), encoding="utf-8")
    assert load_settings().theme == "system" and "invalid value for 'theme'" in caplog.text
    del data["theme"]  # a file from before the setting: the default, nothing else lost
    settings_path().write_text(json.dumps({**data, "lab_name": "Older"}), encoding="utf-8")
    assert load_settings() == Settings(lab_name="Older")


def test_the_precision_is_automatic_by_default_round_trips_and_must_be_a_known_name(caplog):
    assert Settings().precision == "auto"
    for choice in ("fp32", "int8", "auto"):
        save_settings(Settings(precision=choice))
        assert load_settings().precision == choice
    data = json.loads(settings_path().read_text(encoding="utf-8"))
    assert data["schema_version"] == SETTINGS_SCHEMA_VERSION == 3  # a new field with a default: no bump
    settings_path().write_text(json.dumps({**data, "precision": "int4"}), encoding="utf-8")
    assert load_settings().precision == "auto" and "invalid value for 'precision'" in caplog.text


def test_the_dialog_describes_the_active_model_and_its_int8_graph(qtbot):
    """The default choice (the library's active model: here the shipped ResNet18) is described,
    not mistaken for an empty file choice."""
    from engine.models.resolve import resolve_model_card
    from gui.settings_dialog import FILE_CHOICE, SettingsDialog

    active = resolve_model_card(None)
    dialog = SettingsDialog(Settings())
    qtbot.addWidget(dialog)
    text = dialog.model_info.text()
    agreement = active.graphs["int8"]["agreement"]
    assert text.startswith(f"{active.id} {active.version}")
    assert f"INT8 graph: fp32's call on {agreement['call_agreement']:.2%} of {agreement['images']} test images" in text
    dialog.model_combo.setCurrentIndex(dialog.model_combo.findData(FILE_CHOICE))
    assert dialog.model_info.text() == "Choose a model file."
    dialog.connection_test.shutdown()
