import pytest
import torch

from engine.core.errors import ModelError
from engine.models.registry import build_model, feature_layer, get_spec, list_models, register_model


def test_registry_lists_the_builtin_models():
    assert {"baseline", "resnet18", "alexnet", "vgg16"} <= set(list_models())


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError):
        register_model("baseline", feature_layer="x", has_imagenet=False)(lambda **kw: None)


def test_baseline_is_the_original_two_layer_cnn():
    net = build_model("baseline", image_size=64)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(5, (5, 5)), (10, (5, 5))]
    assert sum(isinstance(m, torch.nn.LeakyReLU) for m in net.modules()) == 2
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in net.modules()) == 2
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 1 and linears[0].out_features == 4
    assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 4)


@pytest.mark.parametrize("arch", ["resnet18", "alexnet", "vgg16"])
def test_torchvision_backbones_get_a_four_class_head(arch):
    net = build_model(arch, image_size=64)
    assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 4)
    assert isinstance(feature_layer(net, arch), torch.nn.Module)


def test_unknown_architecture_names_the_known_ones():
    with pytest.raises(ModelError, match="known: .*resnet18"):
        build_model("resnet1800")


def test_missing_imagenet_weights_give_one_clear_error(monkeypatch):
    from torchvision.models import ResNet18_Weights

    def offline(self, *args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(type(ResNet18_Weights.DEFAULT), "get_state_dict", offline)
    with pytest.raises(ModelError) as info:
        build_model("resnet18", init="imagenet")
    message = str(info.value)
    assert "ImageNet weights for resnet18 are not available" in message and "--init scratch" in message
    assert "\n" not in message


def test_frozen_mode_trains_only_the_head(monkeypatch):
    import engine.models.zoo as zoo

    monkeypatch.setattr(zoo, "_imagenet_weights", lambda enum_cls, arch: None)
    monkeypatch.setattr(torch.nn.Module, "load_state_dict", lambda self, state, strict=True: None)
    net = build_model("resnet18", init="imagenet", mode="frozen")
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"}


def test_frozen_without_imagenet_is_refused():
    with pytest.raises(ModelError, match="needs ImageNet weights"):
        build_model("resnet18", init="scratch", mode="frozen")


def test_baseline_has_no_imagenet_weights():
    assert not get_spec("baseline").has_imagenet
    with pytest.raises(ModelError, match="no ImageNet weights"):
        build_model("baseline", init="imagenet")


def test_shipped_cards_name_their_ood_feature_layer_as_the_registry_does():
    import json

    from engine.models.resolve import SHIPPED_MODELS_DIR

    cards = sorted(SHIPPED_MODELS_DIR.glob("*.json"))
    assert cards
    for path in cards:
        card = json.loads(path.read_text(encoding="utf-8"))
        assert card["ood"]["feature_layer"] == get_spec(card["architecture"]).feature_layer, path.name
