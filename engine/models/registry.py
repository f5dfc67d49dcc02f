"""The model registry, torchvision style: ``@register_model`` builders looked up by name.

    @register_model("resnet18", feature_layer="layer4", has_imagenet=True)
    def resnet18(num_classes, init, mode, image_size): ...

``init`` is "scratch", "imagenet" (torchvision weights enum: torch hub cache or download) or a
path to an ALLSight ``.safetensors`` model to start from. ``mode`` is "finetune" (train every
layer) or "frozen" (an ImageNet feature extractor with only the new head trained).

Importing this module does not import torch; looking a model up does (the built-in models of
:mod:`engine.models.zoo` are registered on the first lookup), so the ONNX inference path, which
never needs a builder, stays free of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.core.errors import ModelError

if TYPE_CHECKING:
    from torch import nn

Builder = Callable[..., "nn.Module"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Builder
    #: Dotted name of the module whose output is the spatial feature map (Grad-CAM, OOD).
    feature_layer: str
    #: Whether ImageNet weights exist for it in torchvision.
    has_imagenet: bool
    description: str
    #: Layers whose pooled activations the out-of-distribution detector models, shallow to deep
    #: (shallow layers see stain and texture, deep ones morphology); default: ``feature_layer``.
    ood_layers: tuple[str, ...] = ()

    @property
    def ood_feature_layers(self) -> tuple[str, ...]:
        return self.ood_layers or (self.feature_layer,)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, *, feature_layer: str, has_imagenet: bool, description: str = "",
                   ood_layers: tuple[str, ...] = ()):
    """Decorator registering a builder ``fn(num_classes, init, mode, image_size) -> nn.Module``."""

    def wrap(fn: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelSpec(name, fn, feature_layer, has_imagenet, description or (fn.__doc__ or "").strip(),
                                    tuple(ood_layers))
        return fn

    return wrap


def _register_builtin_models() -> None:
    from engine.models import zoo  # noqa: F401 - importing it registers the built-in models


def list_models() -> list[str]:
    _register_builtin_models()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    _register_builtin_models()
    try:
        return _REGISTRY[name]
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
