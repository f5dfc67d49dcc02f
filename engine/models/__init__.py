"""Model zoo: a registry of builders, torchvision style.

    @register_model("resnet18")
    def resnet18(num_classes, init, mode, image_size): ...

``init`` is "scratch", "imagenet" (torchvision weights enum: torch hub cache or download) or a
path to an ALLSight ``.safetensors`` model to start from. ``mode`` is "finetune" (train every
layer) or "frozen" (an ImageNet feature extractor with only the new head trained).
"""

from engine.models.registry import (
    ModelSpec,
    build_model,
    feature_layer,
    get_spec,
    list_models,
    register_model,
)
from engine.models import zoo as _zoo  # noqa: F401  (registers the built-in models)

__all__ = ["ModelSpec", "build_model", "feature_layer", "get_spec", "list_models", "register_model"]
