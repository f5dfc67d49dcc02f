"""Which model a name means, and its network loaded: :func:`resolve_model_card` (the active
model, a shipped id, a lab model or a path), :func:`active_card_path` (what ``active.json`` names,
else the shipped default) and :func:`load_model` (:class:`LoadedModel`: the card, the network in
eval mode, the extra tensors). Where lab models live and which is active is
:mod:`engine.models.installed`'s; reading and verifying the files is :mod:`engine.models.checkpoint`'s.
Imports torch only inside :func:`load_model`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.errors import ModelError, ModelIntegrityError
from engine.core.optional import require_torch
from engine.models import installed
from engine.models.card import ModelCard
from engine.models.checkpoint import load_tensors, read_card

#: The shipped models live here, next to the code (read-only at run time).
SHIPPED_MODELS_DIR = Path(__file__).resolve().parents[2] / "resources" / "models"
DEFAULT_MODEL_ID = "resnet18"


def resolve_model_card(model: str | Path | None, *, recalibrating: bool = False) -> ModelCard:
    """The model ``model`` names: ``None`` or "" for the active model (:func:`active_card_path`),
    a shipped id (``resnet18``, ``baseline``), a lab model (``id``, ``id@version`` or a sha256
    prefix, :mod:`engine.models.installed`), or a path to a model file."""
    model = str(model or "")
    if not model:
        return read_card(active_card_path(), recalibrating=recalibrating)
    if model.endswith((".safetensors", ".json")) or os.sep in model or "/" in model:
        return read_card(model, recalibrating=recalibrating)
    card_path = SHIPPED_MODELS_DIR / f"{model}.json"
    if card_path.is_file():
        return read_card(card_path, recalibrating=recalibrating)
    lab = installed.find_lab_card(model)
    if lab is None:
        shipped = sorted(p.stem for p in SHIPPED_MODELS_DIR.glob("*.json"))
        raise ModelError(f"no model {model!r}; shipped models: {', '.join(shipped) or 'none'}; lab models: "
                         f"see `main.py models list` (or give a path to a .safetensors file)")
    return read_card(lab, recalibrating=recalibrating)


def active_card_path(root: Path | None = None) -> Path:
    """The card of the active model: the one ``active.json`` names, else the shipped default.
    :class:`ModelError` when the named model is gone, or
    :class:`ModelIntegrityError` when its weights are no longer the ones activated: a model that
    classifies never changes without an activation."""
    active = installed.read_active(root)
    if active is None:
        return SHIPPED_MODELS_DIR / f"{DEFAULT_MODEL_ID}.json"
    if active.get("source") == "shipped":
        path = SHIPPED_MODELS_DIR / f"{active.get('model', DEFAULT_MODEL_ID).partition('@')[0]}.json"
    else:
        path = (root or installed.library_dir()) / str(active.get("card", ""))
    if not path.is_file():
        raise ModelError(f"the active model {active.get('model')} (activated by {active.get('by')} at "
                         f"{active.get('at')}) is missing ({path}); activate another model (Tools ▸ Models… "
                         f"or `main.py models activate`)")
    if active.get("source") != "shipped":
        try:
            sha = installed.card_sha256(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
            raise ModelError(f"{path}: the active model's card cannot be read ({exc})") from None
        if sha != active["sha256"]:
            raise ModelIntegrityError(f"{path}: the active model's card names other weights (sha256 {sha[:12]}…) "
                                      f"than those activated ({active['sha256'][:12]}…); refusing to use it")
    return path


@dataclass
class LoadedModel:
    card: ModelCard
    net: Any  # torch.nn.Module, eval mode
    extras: dict[str, Any]  # non-network tensors stored with the weights (e.g. "ood.*")


def load_model(model: str | Path | ModelCard | None = None, *, recalibrating: bool = False) -> LoadedModel:
    """The network of ``model`` (a card, or what :func:`resolve_model_card` accepts), its weights
    verified; ``recalibrating`` as for :func:`~engine.models.checkpoint.read_card`."""
    card = model if isinstance(model, ModelCard) else resolve_model_card(model, recalibrating=recalibrating)
    require_torch(f"loading {card.id} {card.version}'s network into PyTorch")
    from engine.models.registry import build_model

    tensors = load_tensors(card)
    net_state = {k[len("net."):]: v for k, v in tensors.items() if k.startswith("net.")}
    extras = {k: v for k, v in tensors.items() if not k.startswith("net.")}
    # "frozen" models are complete networks once trained; build without fetching ImageNet weights.
    net = build_model(card.architecture, num_classes=len(card.classes), init="scratch", image_size=card.image_size)
    try:
        net.load_state_dict(net_state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{card.weights_path}: weights do not fit architecture {card.architecture} ({exc})") from None
    net.eval()
    return LoadedModel(card, net, extras)
