"""Grad-CAM (Selvaraju et al. 2017): which regions of the input drove a class score.

The map is computed at the architecture's feature layer (``ModelSpec.feature_layer``): the layer's
activations are weighted by the spatially averaged gradients of the class logit, summed over
channels, rectified, upsampled to the input size and scaled to 0..1. A temporary forward hook
captures the activations and is always removed; gradients come from ``torch.autograd.grad``, so no
backward hook is ever attached. It works when called from code that otherwise runs under
``torch.inference_mode`` (both inference mode and no-grad are lifted for the computation).

Without torch (:func:`heat_from_class_map`): for a head that is linear in the feature layer's
activations, the spatially averaged gradient is a constant per class and channel, so the ONNX
graph returns the weighted sum itself (``class_maps``, :mod:`engine.inference.onnx_export`) and
only the last steps — rectify, upsample, scale — remain; a test holds the two to 1e-5. Only
:func:`gradcam` imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from engine.core.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn


def _scaled(heat: np.ndarray) -> np.ndarray:
    """Rectified and scaled to 0..1 by its peak; a map with no positive evidence is all 0."""
    heat = np.maximum(heat, 0.0)
    peak = float(heat.max()) if heat.size else 0.0
    if not np.isfinite(peak) or peak <= 1e-12:
        return np.zeros(heat.shape, np.float32)
    return np.clip(heat / peak, 0.0, 1.0).astype(np.float32)


def heat_from_class_map(class_map: np.ndarray, size: int) -> np.ndarray:
    """Grad-CAM (size, size) in 0..1 from one class's map ``sum_k alpha_ck A_k`` (h, w): rectified,
    upsampled bilinearly (half-pixel centres, as torch's ``align_corners=False``) and scaled."""
    cam = np.maximum(np.asarray(class_map, np.float32), 0.0)
    return _scaled(cv2.resize(cam, (size, size), interpolation=cv2.INTER_LINEAR))


def gradcam(net: nn.Module, arch: str, input_tensor: torch.Tensor, class_index: int | None = None) -> np.ndarray:
    """Grad-CAM heat map (S, S) float32 in 0..1 for ``input_tensor`` (1, 3, S, S), with autograd.

    ``class_index`` None explains the predicted class. A map with no positive evidence is all 0.
    """
    import torch
    from torch.nn import functional as F

    from engine.models.registry import feature_layer

    if input_tensor.ndim != 4 or input_tensor.shape[0] != 1:
        raise ConfigError(f"gradcam expects one image as a (1, 3, S, S) tensor, got {tuple(input_tensor.shape)}")
    layer = feature_layer(net, arch)
    device = next(net.parameters()).device
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        captured.append(output)

    was_training = net.training
    net.eval()
    handle = layer.register_forward_hook(hook)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            # A fresh, ordinary tensor (the caller's may be an inference tensor).
            x = input_tensor.detach().to(device=device, dtype=torch.float32).clone().requires_grad_(True)
            logits = net(x)
            if class_index is None:
                class_index = int(logits[0].argmax())
            if not 0 <= int(class_index) < logits.shape[1]:
                raise ConfigError(f"class index {class_index} out of range for {logits.shape[1]} classes")
            if not captured:
                raise ConfigError(f"feature layer of {arch} did not run")
            acts = captured[-1]
            (grads,) = torch.autograd.grad(logits[0, int(class_index)], acts)
            weights = grads.mean(dim=(2, 3), keepdim=True)
            cam = F.relu((weights * acts).sum(dim=1, keepdim=True))
            cam = F.interpolate(cam, size=tuple(input_tensor.shape[-2:]), mode="bilinear", align_corners=False)
            heat = cam[0, 0].detach().float().cpu().numpy()
    finally:
        handle.remove()
        captured.clear()
        net.train(was_training)
    return _scaled(heat)


def overlay(rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Blend a JET-coloured ``heat`` (0..1) over ``rgb`` (S, S, 3) uint8; returns RGB uint8."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ConfigError(f"overlay expects an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    heat = np.asarray(heat, np.float32)
    if heat.shape != rgb.shape[:2]:
        heat = cv2.resize(heat, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    heat8 = np.clip(np.rint(np.nan_to_num(heat) * 255.0), 0, 255).astype(np.uint8)
    colored = cv2.cvtColor(cv2.applyColorMap(heat8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(np.ascontiguousarray(rgb), 1.0 - alpha, colored, alpha, 0.0)
