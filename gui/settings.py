"""User settings: one small, versioned JSON file in the user's configuration folder.

The file lives in the platform's per-user config folder, ``engine.core.paths.user_dir("config")``
(or ``$ALLSIGHT_CONFIG_DIR``, which the tests use so they never touch the real home folder).
Nothing is ever written next to the program. Loading never fails: a missing, unreadable, corrupt
or older file gives the defaults for whatever cannot be used, and says why in the log. Saving is
atomic (temporary file + rename), so a crash mid-write cannot leave a half-written file behind.

This module is Qt-free on purpose: it is plain data, easy to test and reuse.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from engine.core.choices import DeviceName, PrecisionName
from engine.core.fsutil import atomic_write_bytes
from engine.core.paths import user_dir
from gui.lab_database_url import has_password, redacted, url_problem, without_password

log = logging.getLogger("allsight.gui.settings")

SETTINGS_FILE_NAME = "settings.json"
#: Bump when a field changes meaning; add a step to :func:`_migrate` for the old files.
#: 2: no ``operator_name`` (who acts is the OS login or a signed-in ALLSight account, never a
#: name in a workstation's settings).
#: 3: ``active_model`` "" (the new default) follows the model library's active model
#: (Tools ▸ Models…); the old default "resnet18" reads as "".
SETTINGS_SCHEMA_VERSION = 3
DEVICES = tuple(d.value for d in DeviceName)
#: Which graph runs the network on the CPU (engine.inference.precision): "auto" takes INT8 with its
#: fp32 check where the model has it and it is faster here. A file without the field (older)
#: reads as "auto"; an older ALLSight ignores it: no version bump.
PRECISIONS = tuple(p.value for p in PrecisionName)
#: The colour theme: follow the desktop, or ALLSight's own light or dark one (gui.theme). A file
#: without the field (older) reads as "system"; an older ALLSight ignores it: no version bump.
THEMES = ("system", "light", "dark")
#: ``lab_database``: "" is this workstation's own SQLite history; else the lab's PostgreSQL server,
#: ``postgresql://user@host:5432/name``, used from the next start (gui.lab_database). Never with a
#: password: one found in a file being read, or in settings being saved, is taken out (logged),
#: so the plain-JSON file cannot leak it. A file without the field reads as "": no version bump.


@dataclass(frozen=True)
class Settings:
    schema_version: int = SETTINGS_SCHEMA_VERSION
    #: "": the model library's active model (engine.models.library; Tools ▸ Models…), else a
    #: model pinned for this person: a shipped id (``resnet18``), a lab model's ``id@version``
    #: or a path to a ``.safetensors`` model file.
    active_model: str = ""
    device: str = "auto"
    precision: str = "auto"
    #: None: use the model card's review threshold; else a probability in [0, 1].
    review_threshold_override: float | None = None
    lab_name: str = ""
    last_open_dir: str = ""
    last_export_dir: str = ""
    #: The lab's rule: the person who signs a sample off may not be one who classified it.
    require_independent_reviewer: bool = False
    theme: str = "system"
    lab_database: str = ""

    def replace(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def to_json_dict(self) -> dict[str, Any]:
        return asdict(self)


def config_dir() -> Path:
    return user_dir("config")


def settings_path() -> Path:
    return config_dir() / SETTINGS_FILE_NAME


def _valid_value(name: str, value: Any) -> bool:
    if name == "schema_version":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "review_threshold_override":
        return value is None or (
            isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= float(value) <= 1.0
        )
    if name == "device":
        return value in DEVICES
    if name == "precision":
        return value in PRECISIONS
    if name == "theme":
        return value in THEMES
    if name == "active_model":
        return isinstance(value, str)
    if name == "require_independent_reviewer":
        return isinstance(value, bool)
    if name == "lab_database":
        return isinstance(value, str) and not url_problem(value)
    return isinstance(value, str)


#: Fields of older schemas that no longer mean anything (dropped quietly when such a file is read).
_RETIRED_FIELDS = {2: ("operator_name",)}


def _migrate(data: dict[str, Any], version: int) -> dict[str, Any]:
    """Bring an older file's fields up to the current schema (version 0 = no version field, the
    fields of version 1). Version 2 retired ``operator_name``: reviews and sign-offs were
    recorded under it; now they are recorded under the window's identity, so it is dropped.
    Version 3 reads the old default model "resnet18" as "" (the library's active model)."""
    for since, names in _RETIRED_FIELDS.items():
        if version < since:
            for name in names:
                if data.pop(name, None):
                    log.info("settings: %r is no longer used (who acts is the signed-in identity)", name)
    if version < 3 and data.get("active_model") == "resnet18":
        data["active_model"] = ""  # the old default: follow the library's active model now
    return data


def settings_from_dict(data: Mapping[str, Any], *, source: str = "settings") -> Settings:
    """Build Settings from parsed JSON, keeping every valid field and defaulting the rest."""
    defaults = Settings()
    raw_version = data.get("schema_version", 0)
    version = raw_version if isinstance(raw_version, int) and not isinstance(raw_version, bool) else 0
    if version > SETTINGS_SCHEMA_VERSION:
        log.warning("%s was written by a newer ALLSight (schema %s > %s); using the fields this "
                    "version understands", source, version, SETTINGS_SCHEMA_VERSION)
    data = _migrate(dict(data), version)
    values: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name == "schema_version" or f.name not in data:
            continue
        value = data[f.name]
        if _valid_value(f.name, value):
            values[f.name] = float(value) if f.name == "review_threshold_override" and value is not None else value
        else:  # the lab database's URL may hold a password: never in the log
            shown = redacted(value) if f.name == "lab_database" else repr(value)
            log.warning("%s: invalid value for %r (%s); using the default %r",
                        source, f.name, shown, getattr(defaults, f.name))
    if "lab_database" in values:
        values["lab_database"] = _lab_database_without_password(values["lab_database"], source)
    unknown = sorted(set(data) - {f.name for f in fields(Settings)})
    if unknown:
        log.info("%s: ignoring unknown fields %s", source, ", ".join(unknown))
    return Settings(**values)


def _lab_database_without_password(url: str, source: str) -> str:
    """``url`` without a password, warning when there was one to take out."""
    if has_password(url):
        log.warning("%s: the lab database URL held a password; it was taken out (ALLSight never keeps one "
                    "in the settings: it comes from ~/.pgpass, $ALLSIGHT_DB_PASSWORD or is asked at start-up)",
                    source)
        return without_password(url)
    return url.strip()


def load_settings(path: str | Path | None = None) -> Settings:
    """Read the settings file; any problem gives the defaults (never raises)."""
    path = Path(path) if path is not None else settings_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        log.info("no settings file at %s; using defaults", path)
        return Settings()
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("settings file %s cannot be read (%s); using defaults", path, exc)
        return Settings()
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, found {type(data).__name__}")
    except ValueError as exc:
        log.warning("settings file %s is corrupt (%s); using defaults", path, exc)
        _keep_bad_copy(path)
        return Settings()
    return settings_from_dict(data, source=str(path))


def _keep_bad_copy(path: Path) -> None:
    """Keep the corrupt file beside the new one (settings.json.bad) for whoever investigates."""
    with contextlib.suppress(OSError):
        os.replace(path, path.with_name(path.name + ".bad"))


def save_settings(settings: Settings, path: str | Path | None = None) -> Path:
    """Write the settings atomically; raises OSError if the folder cannot be written."""
    path = Path(path) if path is not None else settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    lab_database = _lab_database_without_password(settings.lab_database, "settings being saved")
    payload = settings.replace(schema_version=SETTINGS_SCHEMA_VERSION, lab_database=lab_database).to_json_dict()
    data = (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    atomic_write_bytes(path, data)
    return path
