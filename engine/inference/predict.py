"""Running a network over preprocessed images: logits, pooled features, calibration, OOD scores.

Shared by training (validation, calibration, OOD fitting), evaluation and batch inference.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from engine.imaging.preprocess import PreprocessConfig, model_input_only, to_chw_float
from engine.inference.scoring import mahalanobis_score, softmax  # noqa: F401 - re-exported for callers


@contextmanager
def pooled_features(net: nn.Module, layer: nn.Module | Sequence[nn.Module]) -> Iterator[list[torch.Tensor]]:
    """Collect global-average-pooled activations during forward passes: one (N, D) tensor per
    forward pass, the layers' pooled activations concatenated in the order given (one layer or
    several: the multi-depth OOD detector's input)."""
    layers = [layer] if isinstance(layer, nn.Module) else list(layer)
    store: list[torch.Tensor] = []
    pending: dict[int, torch.Tensor] = {}

    def make_hook(k: int):
        def hook(_module, _inputs, output):
            pending[k] = output.detach().float().mean(dim=(2, 3))
            if len(pending) == len(layers):
                store.append(torch.cat([pending[i] for i in range(len(layers))], dim=1))
                pending.clear()
        return hook

    handles = [m.register_forward_hook(make_hook(k)) for k, m in enumerate(layers)]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


def preprocess_batch(originals: np.ndarray | Sequence[np.ndarray], config: PreprocessConfig) -> np.ndarray:
    """Resized originals (N, S, S, 3) uint8 -> normalised float32 model inputs (N, 3, S, S)."""
    inputs = np.stack([model_input_only(img, config)[1] for img in originals])
    return to_chw_float(inputs, config)


@torch.inference_mode()
def run_network(
    net: nn.Module, inputs: np.ndarray, *, batch_size: int = 64,
    feature_layer: nn.Module | Sequence[nn.Module] | None = None,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits (N, C) and, if asked, pooled features (N, D) for float inputs (N, 3, S, S)
    (``feature_layer`` several modules: their pooled features side by side)."""
    net.eval()
    logits: list[np.ndarray] = []
    features: list[np.ndarray] = []
    for start in range(0, len(inputs), batch_size):
        x = torch.from_numpy(inputs[start:start + batch_size]).to(device)
        if feature_layer is not None:
            with pooled_features(net, feature_layer) as store:
                out = net(x)
            features.append(store[0].cpu().numpy())
        else:
            out = net(x)
        logits.append(out.float().cpu().numpy())
    n_classes = logits[0].shape[1] if logits else 0
    all_logits = np.concatenate(logits) if logits else np.zeros((0, n_classes), np.float32)
    return all_logits, (np.concatenate(features) if features else None)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature scaling (Guo et al. 2017): minimise validation NLL over log T."""
    lg = torch.from_numpy(np.asarray(logits, np.float64))
    y = torch.from_numpy(np.asarray(labels, np.int64))
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(lg / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(np.clip(log_t.exp().item(), 0.05, 20.0))


# ------------------------------------------------------------------------- review threshold
def review_threshold(probs: np.ndarray, labels: np.ndarray, target_precision: float = 0.995) -> float:
    """Smallest confidence cut-off whose unflagged images are >= ``target_precision`` correct.

    Chosen on validation data: images with confidence below the returned threshold need review.
    """
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    order = np.argsort(-conf)
    cum_acc = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    ok = np.nonzero(cum_acc >= target_precision)[0]
    if len(ok) == 0:
        return 1.0  # nothing can be trusted unreviewed
    k = ok.max()  # the largest accepted set meeting the target
    if k == len(order) - 1:
        return 0.0
    # Flag everything at or below the first rejected confidence.
    return float(np.nextafter(conf[order[k + 1]], 1.0))
