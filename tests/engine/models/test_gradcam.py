"""Grad-CAM maps and overlays, for the baseline CNN and ResNet18."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.imaging.preprocess import preprocess, to_chw_float
from engine.inference.classifier import Classifier
from engine.models.gradcam import gradcam, overlay
from engine.models.registry import feature_layer
from engine.models.resolve import load_model
from tests.conftest import save_tiny_model, synthetic_smear, write_image

SIZE = 32


def _no_hooks(module: torch.nn.Module) -> bool:
    return all(not getattr(m, name) for m in module.modules()
               for name in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
               if hasattr(m, name))


@pytest.fixture(params=["baseline", "resnet18"])
def loaded(request, tmp_path):
    card = save_tiny_model(tmp_path / request.param, arch=request.param, image_size=SIZE)
    return load_model(card.weights_path)


def _input(card) -> torch.Tensor:
    stages = preprocess(synthetic_smear(2, 48, 0), card.preprocess)
    return torch.from_numpy(to_chw_float(stages.model_input, card.preprocess)[None])


def test_gradcam_map_shape_range_and_no_hooks_left(loaded):
    arch = loaded.card.architecture
    x = _input(loaded.card)
    for class_index in (0, 3, None):
        heat = gradcam(loaded.net, arch, x, class_index)
        assert heat.shape == (SIZE, SIZE)
        assert heat.dtype == np.float32
        assert np.all(np.isfinite(heat)) and heat.min() >= 0.0 and heat.max() <= 1.0
    layer = feature_layer(loaded.net, arch)
    assert not layer._forward_hooks and not layer._backward_hooks
    assert _no_hooks(loaded.net)
    assert not loaded.net.training
    assert all(p.grad is None for p in loaded.net.parameters())


def test_gradcam_works_under_inference_mode(loaded):
    with torch.inference_mode():
        x = _input(loaded.card).clone()  # an inference tensor
        assert x.is_inference()
        heat = gradcam(loaded.net, loaded.card.architecture, x, 1)
    assert heat.shape == (SIZE, SIZE) and 0.0 <= heat.min() <= heat.max() <= 1.0
    assert _no_hooks(loaded.net)


def test_gradcam_highlights_something_for_baseline(tmp_path):
    card = save_tiny_model(tmp_path, arch="baseline", image_size=SIZE)
    net = load_model(card.weights_path).net
    heats = [gradcam(net, "baseline", _input(card), k) for k in range(4)]
    assert any(h.max() == pytest.approx(1.0) for h in heats)  # normalised when not all zero


def test_overlay_blends_jet_colours():
    rgb = synthetic_smear(0, SIZE, 0)
    heat = np.linspace(0, 1, SIZE * SIZE, dtype=np.float32).reshape(SIZE, SIZE)
    out = overlay(rgb, heat)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert not np.array_equal(out, rgb)
    assert np.array_equal(overlay(rgb, heat, alpha=0.0), rgb)
    # a heat map of another size is resized to the image
    assert overlay(rgb, np.zeros((8, 8), np.float32)).shape == rgb.shape


def test_classifier_heatmap_from_path_and_array(tmp_path, tiny_model):
    clf = Classifier(tiny_model, device="cpu")
    path = write_image(tmp_path / "smear.png", synthetic_smear(3, 64, 2))
    rgb, heat, over = clf.heatmap(path)
    assert rgb.shape == (SIZE, SIZE, 3) and rgb.dtype == np.uint8
    assert heat.shape == (SIZE, SIZE) and 0.0 <= heat.min() <= heat.max() <= 1.0
    assert over.shape == (SIZE, SIZE, 3) and over.dtype == np.uint8
    rgb2, heat2, _ = clf.heatmap(synthetic_smear(3, 64, 2), class_index="Pro")
    assert np.array_equal(rgb, rgb2)
    _, heat3, _ = clf.heatmap(path, class_index=3)
    np.testing.assert_allclose(heat2, heat3, atol=1e-6)
    assert _no_hooks(clf._torch_network()[0])
