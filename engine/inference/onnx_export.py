"""ONNX copies of ALLSight models for ONNX Runtime, derived from the safetensors weights and cached.

The shipped weights stay in safetensors; ONNX Runtime needs a graph, so the first CPU
classification with a model exports one with ``torch.onnx`` and caches it in the user's cache
folder (``engine.core.paths.user_dir("cache")/onnx``; ``$ALLSIGHT_CACHE_DIR`` overrides it), named
by :func:`graph_key` (the sha256 of the weights it came from and of everything else the graph bakes
in: normalisation, input size, feature layers, architecture) and by :data:`EXPORT_FORMAT`. Later runs load the
cached graph without importing torch at all, which is most of what makes ``classify`` start
fast (importing torch and torchvision alone costs ~2.4 s on the 2-core build machine).

The exported graph takes the preprocessed images as they come out of the preprocessing —
uint8, ``(N, S, S, 3)`` RGB — and does the card's normalisation itself, so the float
conversion runs inside ONNX Runtime. It returns the logits and the globally average-pooled
feature map of the architecture's feature layer (the out-of-distribution detector's input).

A cache entry is a ``.onnx`` file and a ``.json`` sidecar that records the file's own sha256 and
the graph key it was exported for; an entry that no longer matches either (disk corruption, a
half-copied cache, an entry renamed to another card's name) is rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from engine.core.errors import ModelError
from engine.core.fsutil import atomic_write_bytes
from engine.core.paths import user_dir
from engine.models.card import ModelCard
from engine.models.resolve import LoadedModel

log = logging.getLogger(__name__)

#: Bump when the exported graph's inputs, outputs or semantics change: old entries are ignored.
EXPORT_FORMAT = 2  # 2: features of every OOD layer, concatenated; cache key covers the card's graph inputs
INPUT_NAME = "images"
OUTPUT_NAMES = ("logits", "features")
OPSET = 17


def cache_dir() -> Path:
    """Where exported graphs are kept (not created here)."""
    return user_dir("cache") / "onnx"


def graph_key(card: ModelCard) -> str:
    """sha256 of everything baked into the exported graph: the weights, the normalisation, the
    input size and the feature layers. An edited card can therefore never be served a graph made
    for another card with the same weights."""
    from engine.inference.ood import feature_layers_of  # not engine.models: that imports torch

    baked = {
        "weights": card.weights_sha256, "format": EXPORT_FORMAT, "architecture": card.architecture,
        "mean": list(card.preprocess.mean), "std": list(card.preprocess.std), "size": card.image_size,
        "layers": list(feature_layers_of(card.ood, "")),
    }
    return hashlib.sha256(json.dumps(baked, sort_keys=True).encode()).hexdigest()


def cache_path(card: ModelCard) -> Path:
    """The cache file for ``card``: one per :func:`graph_key`."""
    return cache_dir() / f"{card.architecture}-{graph_key(card)[:32]}-f{EXPORT_FORMAT}.onnx"


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def read_cached(card: ModelCard) -> bytes | None:
    """The cached graph's bytes for ``card`` if present and intact, else ``None``."""
    path = cache_path(card)
    try:
        meta = json.loads(_sidecar(path).read_text(encoding="utf-8"))
        blob = path.read_bytes()
    except (OSError, ValueError):
        return None
    if (meta.get("weights_sha256") != card.weights_sha256 or meta.get("export_format") != EXPORT_FORMAT
            or meta.get("graph_key") != graph_key(card)):
        return None
    if hashlib.sha256(blob).hexdigest() != meta.get("onnx_sha256"):
        log.warning("cached ONNX graph %s does not match its recorded hash; rebuilding it", path)
        return None
    return blob


def export_bytes(loaded: LoadedModel) -> bytes:
    """Export ``loaded``'s network (on the CPU, float32) to an ONNX graph; needs torch."""
    import io

    import torch
    from torch import nn

    from engine.inference.ood import feature_layers_of
    from engine.models.registry import get_spec

    card = loaded.card
    net = loaded.net.to("cpu").float().eval()
    layers = [net.get_submodule(n) for n in feature_layers_of(card.ood, get_spec(card.architecture).feature_layer)]
    cfg = card.preprocess

    class Exportable(nn.Module):
        """uint8 NHWC images -> (logits, pooled features), with the card's normalisation."""

        # The buffers registered below (declared so they type as tensors, not Tensor | Module).
        offset: torch.Tensor
        scale: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("offset", torch.tensor(cfg.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
            self.register_buffer("scale", 1.0 / (torch.tensor(cfg.std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0))

        def forward(self, images: torch.Tensor):
            x = (images.permute(0, 3, 1, 2).float() - self.offset) * self.scale
            pooled: dict[int, torch.Tensor] = {}  # by layer index: the card's order, whatever the forward's
            handles = [m.register_forward_hook(lambda _m, _i, out, k=k: pooled.__setitem__(k, out.mean(dim=(2, 3))))
                       for k, m in enumerate(layers)]
            try:
                logits = self.net(x)
            finally:
                for h in handles:
                    h.remove()
            parts = [pooled[k] for k in range(len(layers))]
            return logits, parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    size = card.image_size
    example = torch.zeros((2, size, size, 3), dtype=torch.uint8)
    buffer = io.BytesIO()
    import warnings

    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        # torch types ``f`` as a path only; the TorchScript exporter (dynamo=False) writes to a file object.
        torch.onnx.export(
            Exportable().eval(), (example,),
            buffer,  # type: ignore[arg-type]
            input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAMES[0]: {0: "batch"}, OUTPUT_NAMES[1]: {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
    return buffer.getvalue()


def write_cache(card: ModelCard, blob: bytes) -> Path:
    """Store ``blob`` as the cached graph of ``card`` (atomically; the sidecar last)."""
    path = cache_path(card)
    atomic_write_bytes(path, blob)
    meta: dict[str, Any] = {
        "model_id": card.id, "model_version": card.version, "architecture": card.architecture,
        "weights_sha256": card.weights_sha256, "export_format": EXPORT_FORMAT, "graph_key": graph_key(card),
        "onnx_sha256": hashlib.sha256(blob).hexdigest(),
    }
    atomic_write_bytes(_sidecar(path), (json.dumps(meta, indent=2) + "\n").encode())
    return path


def ensure_cached(card: ModelCard, loaded: LoadedModel | None = None) -> bytes:
    """The ONNX graph for ``card``: from the cache, else exported now (importing torch) and
    cached. A cache folder that cannot be written only costs the next run another export."""
    blob = read_cached(card)
    if blob is not None:
        return blob
    if loaded is None:
        from engine.models.resolve import load_model

        loaded = load_model(card)
    log.info("exporting %s %s to ONNX for ONNX Runtime (once per model)", card.id, card.version)
    try:
        blob = export_bytes(loaded)
    except ModelError:
        raise
    except Exception as exc:  # the exporter's own errors: name them, the caller falls back
        raise ModelError(f"{card.id}: the ONNX export failed ({type(exc).__name__}: {exc})") from exc
    try:
        write_cache(card, blob)
    except OSError as exc:
        log.warning("cannot cache the ONNX graph in %s (%s); it will be exported again next time",
                    cache_dir(), exc.strerror or exc)
    return blob


def _export_in_child(card_path: str, result: Any) -> None:  # pragma: no cover - runs in a child process
    from engine.models.checkpoint import read_card

    try:
        ensure_cached(read_card(card_path))
        result.put(None)
    except Exception as exc:  # report, do not die silently
        result.put(f"{type(exc).__name__}: {exc}")


def ensure_cached_isolated(card: ModelCard, timeout_s: float = 600.0) -> bytes:
    """:func:`ensure_cached`, but any export runs in a child process, so this process never
    imports torch (the desktop app: importing torch holds the GIL long enough to freeze the
    window). Falls back to an in-process export when the card has no file to hand over."""
    blob = read_cached(card)
    if blob is not None or card.path is None:
        return blob if blob is not None else ensure_cached(card)
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    result = ctx.Queue()
    child = ctx.Process(target=_export_in_child, args=(str(card.path), result), name="allsight-onnx-export",
                        daemon=True)
    child.start()
    try:
        error = result.get(timeout=timeout_s)
    except Exception:  # queue.Empty, or the child died without a word
        error = f"the export process did not answer (exit code {child.exitcode})"
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    if error is not None:
        raise ModelError(f"{card.id}: the ONNX export failed ({error})")
    blob = read_cached(card)
    if blob is None:  # e.g. the cache folder is not writable: do it here after all
        return ensure_cached(card)
    return blob
