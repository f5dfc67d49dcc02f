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


# ------------------------------------------------------- Grad-CAM without torch (the graph's class maps)
def _session(loaded):
    import onnxruntime as ort

    from engine.inference.onnx_export import export_bytes

    return ort.InferenceSession(export_bytes(loaded), providers=["CPUExecutionProvider"])


def test_the_graphs_class_maps_give_autograds_grad_cam(loaded):
    from engine.models.gradcam import heat_from_class_map

    session = _session(loaded)
    assert "class_maps" in [o.name for o in session.get_outputs()]
    card = loaded.card
    images = np.stack([preprocess(synthetic_smear(k, 48, k), card.preprocess).model_input for k in range(3)])
    _, maps = session.run(["logits", "class_maps"], {"images": images})
    for k in range(3):
        x = torch.from_numpy(to_chw_float(images[k], card.preprocess)[None])
        for class_index in range(4):
            expected = gradcam(loaded.net, card.architecture, x, class_index)
            np.testing.assert_allclose(heat_from_class_map(maps[k, class_index], SIZE), expected, atol=1e-5)


def test_a_head_that_is_not_linear_gets_no_class_maps():
    from engine.inference.onnx_export import _class_map_weights

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 6),
                              torch.nn.ReLU(), torch.nn.Linear(6, 4))
    assert _class_map_weights(net, net[0], 8) is None  # the gradient depends on the input
    linear = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 4))
    assert _class_map_weights(linear, linear[0], 8).shape == (4, 4)


def test_the_classifier_explains_from_the_graph_without_loading_torchs_network(tmp_path, monkeypatch):
    from engine.inference import classifier as classifier_module
    from engine.inference.onnx_export import attach_graph

    card = attach_graph(save_tiny_model(tmp_path / "m", arch="resnet18", image_size=SIZE))
    reference = load_model(card)

    def no_torch_network(*_a, **_k):
        raise AssertionError("Grad-CAM from the graph must not load the torch network")

    monkeypatch.setattr(classifier_module, "load_model", no_torch_network)
    clf = Classifier(card, device="cpu", backend="onnx")
    image = synthetic_smear(3, 64, 2)
    for class_index in ("Benign", 2):
        _, heat, over = clf.heatmap(image, class_index=class_index)
        stages = preprocess(image, card.preprocess)
        x = torch.from_numpy(to_chw_float(stages.model_input, card.preprocess)[None])
        index = card.classes.index(class_index) if isinstance(class_index, str) else class_index
        np.testing.assert_allclose(heat, gradcam(reference.net, "resnet18", x, index), atol=1e-5)
        assert over.shape == (SIZE, SIZE, 3)


def test_without_class_maps_the_classifier_falls_back_to_autograd(tmp_path, monkeypatch):
    from engine.inference import onnx_export

    monkeypatch.setattr(onnx_export, "_class_map_weights", lambda *a, **k: None)
    card = onnx_export.attach_graph(save_tiny_model(tmp_path / "m", image_size=SIZE))
    clf = Classifier(card, device="cpu", backend="onnx")
    assert not clf.backend.has_class_maps
    _, heat, _ = clf.heatmap(synthetic_smear(3, 64, 2), class_index=1)
    x = torch.from_numpy(to_chw_float(preprocess(synthetic_smear(3, 64, 2), card.preprocess).model_input,
                                      card.preprocess)[None])
    np.testing.assert_allclose(heat, gradcam(load_model(card).net, "baseline", x, 1), atol=1e-6)
