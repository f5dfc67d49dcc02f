"""engine.core.paths: one lookup for every per-user folder, each overridable by its variable."""

from __future__ import annotations

import re
from pathlib import Path

import platformdirs
import pytest

from engine.core.paths import user_dir

ROOT = Path(__file__).resolve().parents[3]

KINDS = {
    "config": ("ALLSIGHT_CONFIG_DIR", platformdirs.user_config_dir),
    "data": ("ALLSIGHT_DATA_DIR", platformdirs.user_data_dir),
    "cache": ("ALLSIGHT_CACHE_DIR", platformdirs.user_cache_dir),
    "log": ("ALLSIGHT_LOG_DIR", platformdirs.user_log_dir),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_variable_overrides_the_platform_folder(kind, tmp_path, monkeypatch):
    variable, platform_folder = KINDS[kind]
    monkeypatch.setenv(variable, str(tmp_path / kind))
    assert user_dir(kind) == tmp_path / kind
    monkeypatch.setenv(variable, "")  # set but empty: as if unset
    assert user_dir(kind) == Path(platform_folder("ALLSight", appauthor=False))
    monkeypatch.delenv(variable)
    assert user_dir(kind) == Path(platform_folder("ALLSight", appauthor=False))
    assert not (tmp_path / kind).exists()  # looking a folder up never creates it


def test_every_user_folder_comes_from_engine_paths():
    from engine.core import logging_setup
    from engine.inference import onnx_export
    from engine.store import results as store
    from gui import settings

    assert settings.config_dir() == user_dir("config")
    assert store.default_db_path().parent == user_dir("data")
    assert onnx_export.cache_dir() == user_dir("cache") / "onnx"
    assert logging_setup.log_dir() == user_dir("log")
    # and no other module asks platformdirs itself
    imports = re.compile(r"^\s*(import|from) platformdirs\b", re.MULTILINE)
    users = [p.relative_to(ROOT).as_posix() for folder in ("engine", "gui") for p in (ROOT / folder).rglob("*.py")
             if imports.search(p.read_text(encoding="utf-8"))]
    assert users == ["engine/core/paths.py"]
