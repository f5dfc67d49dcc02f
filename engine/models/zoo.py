"""Built-in models: the original baseline CNN and three torchvision backbones."""

from __future__ import annotations

import logging

import torch
from torch import nn

from engine.core.errors import ModelError
from engine.models.spec import register_model

log = logging.getLogger(__name__)


class BaselineCNN(nn.Module):
    """The original work's small CNN: two 5x5 conv blocks (5 and 10 channels), one linear layer."""

    def __init__(self, num_classes: int = 4, image_size: int = 224):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 5, kernel_size=5, padding=2),
            nn.LeakyReLU(0.01),
            nn.MaxPool2d(2),
            nn.Conv2d(5, 10, kernel_size=5, padding=2),
            nn.LeakyReLU(0.01),
            nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.classifier = nn.Linear(10 * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@register_model("baseline", feature_layer="features.4", has_imagenet=False, ood_layers=("features.1", "features.4"),
                description="Original 2-layer CNN (5 and 10 channels, 5x5), trained from scratch")
def baseline(*, num_classes: int, init: str, mode: str, image_size: int) -> nn.Module:
    return BaselineCNN(num_classes, image_size)


def _imagenet_weights(enum_cls, arch: str):
    """Resolve torchvision's ImageNet weights: hub cache, else download; one clear error if neither."""
    weights = enum_cls.DEFAULT
    try:
        state = weights.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # URLError, socket errors, hash mismatch
        raise ModelError(
            f"ImageNet weights for {arch} are not available: not in the torch hub cache and the "
            f"download failed ({type(exc).__name__}). Connect to the internet once, or use --init scratch."
        ) from exc
    return state


def _torchvision(arch: str, ctor, enum_cls, head_path: str, *, num_classes, init, mode):
    model = ctor(weights=None)
    if init == "imagenet":
        model.load_state_dict(_imagenet_weights(enum_cls, arch))
    parent_name, _, attr = head_path.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, attr) if not attr.isdigit() else parent[int(attr)]
    new = nn.Linear(old.in_features, num_classes)
    if attr.isdigit():
        parent[int(attr)] = new
    else:
        setattr(parent, attr, new)
    if mode == "frozen":
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith(head_path + ".")
    return model


@register_model("resnet18", feature_layer="layer4", has_imagenet=True,
                ood_layers=("layer1", "layer2", "layer3", "layer4"),
                description="torchvision ResNet18; fine-tuned end to end (primary model) or frozen")
def resnet18(*, num_classes: int, init: str, mode: str, image_size: int) -> nn.Module:
    from torchvision.models import ResNet18_Weights
    from torchvision.models import resnet18 as ctor

    return _torchvision("resnet18", ctor, ResNet18_Weights, "fc", num_classes=num_classes, init=init, mode=mode)


@register_model("alexnet", feature_layer="features.11", has_imagenet=True,
                description="torchvision AlexNet; frozen feature extractor + trained head")
def alexnet(*, num_classes: int, init: str, mode: str, image_size: int) -> nn.Module:
    from torchvision.models import AlexNet_Weights
    from torchvision.models import alexnet as ctor

    return _torchvision("alexnet", ctor, AlexNet_Weights, "classifier.6", num_classes=num_classes, init=init, mode=mode)


@register_model("vgg16", feature_layer="features.29", has_imagenet=True,
                description="torchvision VGG16; frozen feature extractor + trained head")
def vgg16(*, num_classes: int, init: str, mode: str, image_size: int) -> nn.Module:
    from torchvision.models import VGG16_Weights
    from torchvision.models import vgg16 as ctor

    return _torchvision("vgg16", ctor, VGG16_Weights, "classifier.6", num_classes=num_classes, init=init, mode=mode)
