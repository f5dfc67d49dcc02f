"""Where the lab's own models live, and which model is active: the two facts model resolution
(:func:`engine.models.resolve.resolve_model_card`) needs, read without parsing a model card.

Lab-trained and imported models live in the user data folder, never the install folder::

    <user data>/models/
        active.json                      the active model and every activation (format 1)
        resnet18-lab-1.0.0-3fa2c1d09e4b/ one folder per model: <id>-<version>-<sha256[:12]>
            resnet18-lab.safetensors
            resnet18-lab.json            its model card
            install.json                 when, by whom and how it came (trained, imported)

The shipped models stay in ``resources/models`` (read-only). Without ``active.json`` the
shipped default is active. Managing the folder (install, activate, export, delete) is
:mod:`engine.models.library`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from engine.core.errors import ModelError
from engine.core.paths import user_dir

ACTIVE_FILE = "active.json"
INSTALL_FILE = "install.json"
ACTIVE_FORMAT = 1
#: A model reference: ``id``, ``id@version`` or a sha256 prefix of at least 8 hex digits.
SHA_PREFIX = re.compile(r"^[0-9a-f]{8,64}$")


def library_dir() -> Path:
    """The folder of the lab's own models (not created here)."""
    return user_dir("data") / "models"


def read_active(root: Path | None = None) -> dict[str, Any] | None:
    """The ``active`` entry of ``active.json`` (``None`` when there is none: the shipped
    default is active); :class:`ModelError` when the file is there but unreadable, so a broken
    pointer never silently switches the model that classifies."""
    path = (root or library_dir()) / ACTIVE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        active = data["active"]
        if data.get("format") != ACTIVE_FORMAT or not isinstance(active, dict) or not active.get("sha256"):
            raise ValueError("not an ALLSight active-model file of format 1")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: the record of the active model cannot be read ({exc}); activate a model "
                         "again (Tools ▸ Models… or `main.py models activate`)") from None
    return active


def lab_cards(root: Path | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """Every lab model's card path and raw JSON, oldest folder name first; folders that are not
    models (no card, unreadable card) are left out (the library lists them as problems)."""
    root = root or library_dir()
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for card_path in sorted(folder.glob("*.json")):
            if card_path.name == INSTALL_FILE:
                continue
            try:
                data = json.loads(card_path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError):
                continue
            if isinstance(data, dict) and card_sha256(data):
                found.append((card_path, data))
    return found


def card_sha256(data: dict[str, Any]) -> str:
    """The weights' sha256 a card's JSON names ("" when it names none)."""
    weights = data.get("weights")
    return str(weights.get("sha256", "")) if isinstance(weights, dict) else ""


def matches(data: dict[str, Any], ref: str) -> bool:
    """Whether the card JSON ``data`` is the model ``ref`` names (``id@version``, a sha256
    prefix, or an ``id``)."""
    ref = ref.strip()
    if "@" in ref:
        model_id, _, version = ref.partition("@")
        return data.get("id") == model_id and data.get("version") == version
    if SHA_PREFIX.match(ref.lower()) and card_sha256(data).startswith(ref.lower()):
        return True
    return data.get("id") == ref


def find_lab_card(ref: str, root: Path | None = None) -> Path | None:
    """The card of the lab model ``ref`` names: the newest version when ``ref`` is a bare id;
    :class:`ModelError` when a sha256 prefix is ambiguous."""
    hits = [(path, data) for path, data in lab_cards(root) if matches(data, ref)]
    if not hits:
        return None
    shas = {card_sha256(d) for _, d in hits}
    if SHA_PREFIX.match(ref.lower()) and len(shas) > 1:
        raise ModelError(f"{ref!r} names {len(shas)} models: give more of the sha256")
    hits.sort(key=lambda hit: (str(hit[1].get("created", "")), hit[0].parent.name))
    return hits[-1][0]


__all__ = ["ACTIVE_FILE", "ACTIVE_FORMAT", "INSTALL_FILE", "card_sha256", "find_lab_card", "lab_cards", "library_dir", "matches",
           "read_active"]
