"""Looking registered models up by name, and building them (imports torch: the built-in models
of :mod:`engine.models.zoo` are registered on import). A new architecture registers itself with
:func:`engine.models.spec.register_model`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.core.errors import ModelError
from engine.models import zoo  # noqa: F401 - importing it registers the built-in models
from engine.models.spec import REGISTERED, ModelSpec, register_model

if TYPE_CHECKING:
    from torch import nn


def list_models() -> list[str]:
    return sorted(REGISTERED)


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTERED[name]
    except KeyError:
        raise ModelError(f"unknown architecture {name!r}; known: {', '.join(list_models())}") from None


def build_model(
    name: str, *, num_classes: int = 4, init: str = "scratch", mode: str = "finetune", image_size: int = 224
) -> nn.Module:
    if mode not in ("finetune", "frozen"):
        raise ModelError(f"mode must be 'finetune' or 'frozen', got {mode!r}")
    if init not in ("scratch", "imagenet"):
        raise ModelError(f"init must be 'scratch' or 'imagenet' here (paths are handled by the trainer), got {init!r}")
    spec = get_spec(name)
    if init == "imagenet" and not spec.has_imagenet:
        raise ModelError(f"{name} has no ImageNet weights; use --init scratch")
    if mode == "frozen" and init != "imagenet":
        raise ModelError(f"a frozen feature extractor needs ImageNet weights (--init imagenet), not {init}")
    return spec.builder(num_classes=num_classes, init=init, mode=mode, image_size=image_size)


def feature_layer(model: nn.Module, name: str) -> nn.Module:
    return model.get_submodule(get_spec(name).feature_layer)


__all__ = ["ModelSpec", "build_model", "feature_layer", "get_spec", "list_models", "register_model"]
