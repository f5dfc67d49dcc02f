"""What a registered model is, and the decorator that registers one (torchvision style).

    @register_model("resnet18", feature_layer="layer4", has_imagenet=True)
    def resnet18(num_classes, init, mode, image_size): ...

``init`` is "scratch", "imagenet" (torchvision weights enum: torch hub cache or download) or a
path to an ALLSight ``.safetensors`` model to start from. ``mode`` is "finetune" (train every
layer) or "frozen" (an ImageNet feature extractor with only the new head trained).

Builders register here (:mod:`engine.models.zoo` holds the built-in ones); models are looked up
through :mod:`engine.models.registry`, which loads the zoo first. Importing this module does not
import torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

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
#: Every registered model by name (read-only).
REGISTERED = MappingProxyType(_REGISTRY)


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
