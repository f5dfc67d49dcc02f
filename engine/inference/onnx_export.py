"""ONNX graphs of ALLSight models for ONNX Runtime, exported from the safetensors weights.

ONNX Runtime needs a graph. The shipped models carry theirs (:mod:`engine.models.graphs`:
``NAME.onnx`` beside the weights, listed and hash-bound in the card; :func:`attach_graph` writes
one, at training or release time). A model without one (a lab model from an older version) gets
one exported with ``torch.onnx`` at its first CPU classification, cached in the user's cache
folder (``engine.core.paths.user_dir("cache")/onnx``; ``$ALLSIGHT_CACHE_DIR`` overrides it), named
by :func:`graph_key` (the sha256 of the weights it came from and of everything else the graph bakes
in: normalisation, input size, feature layers, architecture) and by :data:`EXPORT_FORMAT`. Later runs load the
cached graph without importing torch at all, which is most of what makes ``classify`` start
fast (importing torch and torchvision alone costs ~2.4 s on the 2-core build machine).

The exported graph takes the preprocessed images as they come out of the preprocessing —
uint8, ``(N, S, S, 3)`` RGB — and does the card's normalisation itself, so the float
conversion runs inside ONNX Runtime. It returns the logits, the globally average-pooled
activations of the detector's layers (the out-of-distribution detector's input) and, where the
head after the architecture's feature layer is linear in that layer's activations (ResNet18: global
average pooling and a linear layer; the baseline: max pooling and a linear layer), the *class
maps* ``sum_k alpha_ck A_k`` whose rectified, upsampled and normalised slice is Grad-CAM: the
gradient of a linear head's class score with respect to ``A`` averages to the constant
``alpha_c`` (computed once at export, with autograd, and checked to be constant), so the
heat map needs neither torch nor a backward pass at run time.

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

from engine.core.errors import MissingExtraError, ModelError
from engine.core.fsutil import atomic_write_bytes
from engine.core.optional import require_torch
from engine.core.paths import user_dir
from engine.models.card import ModelCard, feature_layers_of
from engine.models.graphs import CLASS_MAPS, EXPORT_FORMAT, INPUT_NAME, OUTPUT_NAMES, graph_key, read_graph
from engine.models.resolve import LoadedModel

log = logging.getLogger(__name__)

OPSET = 17
#: What the classifier asks every graph for (a graph may also return ``CLASS_MAPS``).
__all__ = ["CLASS_MAPS", "EXPORT_FORMAT", "INPUT_NAME", "OUTPUT_NAMES", "attach_graph", "ensure_cached",
           "ensure_cached_isolated", "export_bytes", "graph_key", "read_cached", "with_graph", "write_cache"]


def cache_dir() -> Path:
    """Where exported graphs are kept (not created here)."""
    return user_dir("cache") / "onnx"


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


def _class_map_weights(net: Any, layer: Any, size: int) -> Any | None:
    """``alpha`` (C, K): the spatial mean of d logit_c / d A_k for the feature layer's
    activations ``A``, or ``None`` when it depends on the input (a head that is not linear in
    ``A``: then the class maps are not Grad-CAM and the graph does without them)."""
    import torch

    captured: list[Any] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        with torch.inference_mode(False), torch.enable_grad():
            generator = torch.Generator().manual_seed(0)
            x = torch.rand((2, 3, size, size), generator=generator) * 4.0 - 2.0
            logits = net(x)
            acts = captured[-1]
            rows = []
            for c in range(logits.shape[1]):
                (grad,) = torch.autograd.grad(logits[:, c].sum(), acts, retain_graph=True)
                rows.append(grad.mean(dim=(2, 3)))  # (2, K): one row per input
    finally:
        handle.remove()
    alpha = torch.stack(rows, dim=1).detach()  # (2, C, K)
    scale = float(alpha.abs().max()) or 1.0
    if not torch.allclose(alpha[0], alpha[1], rtol=1e-4, atol=1e-6 * scale):
        return None
    return alpha[0]


def _compact(model: Any) -> None:
    """Store float32 initialisers that are exactly float16 values (the shipped weights are
    float16) as float16 with a Cast back: half the file, the same numbers. ONNX Runtime folds
    the casts when it loads the graph."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims or [1])) < 1024:
            continue
        values = numpy_helper.to_array(init)
        half = values.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), values):
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(half, f"{name}__f16"))
        casts.append(helper.make_node("Cast", [f"{name}__f16"], [name], to=TensorProto.FLOAT, name=f"{name}__cast"))
    for node in reversed(casts):
        graph.node.insert(0, node)


def export_bytes(loaded: LoadedModel) -> bytes:
    """Export ``loaded``'s network (on the CPU, float32) to an ONNX graph; needs torch and onnx."""
    require_torch("exporting a model's ONNX graph")
    import io

    import torch
    from torch import nn

    from engine.models.registry import get_spec

    card = loaded.card
    net = loaded.net.to("cpu").float().eval()
    spec = get_spec(card.architecture)
    layers = [net.get_submodule(n) for n in feature_layers_of(card.ood, spec.feature_layer)]
    cam_layer = net.get_submodule(spec.feature_layer)
    alpha = _class_map_weights(net, cam_layer, card.image_size)
    cfg = card.preprocess

    class Exportable(nn.Module):
        """uint8 NHWC images -> (logits, pooled features[, class maps]), with the card's normalisation."""

        # The buffers registered below (declared so they type as tensors, not Tensor | Module).
        offset: torch.Tensor
        scale: torch.Tensor
        alpha: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("offset", torch.tensor(cfg.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
            self.register_buffer("scale", 1.0 / (torch.tensor(cfg.std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0))
            if alpha is not None:
                self.register_buffer("alpha", alpha.float())

        def forward(self, images: torch.Tensor):
            x = (images.permute(0, 3, 1, 2).float() - self.offset) * self.scale
            pooled: dict[int, torch.Tensor] = {}  # by layer index: the card's order, whatever the forward's
            handles = [m.register_forward_hook(lambda _m, _i, out, k=k: pooled.__setitem__(k, out.mean(dim=(2, 3))))
                       for k, m in enumerate(layers)]
            maps: list[torch.Tensor] = []
            if alpha is not None:
                handles.append(cam_layer.register_forward_hook(
                    lambda _m, _i, out: maps.append(torch.einsum("ck,nkhw->nchw", self.alpha, out))))
            try:
                logits = self.net(x)
            finally:
                for h in handles:
                    h.remove()
            parts = [pooled[k] for k in range(len(layers))]
            features = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
            return (logits, features, maps[0]) if maps else (logits, features)

    outputs = [*OUTPUT_NAMES, *([CLASS_MAPS] if alpha is not None else [])]
    size = card.image_size
    example = torch.zeros((2, size, size, 3), dtype=torch.uint8)
    buffer = io.BytesIO()
    import warnings

    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        # torch types ``f`` as a path only; the TorchScript exporter (dynamo=False) writes to a file object.
        # PRESERVE (the module is in eval mode) keeps batch norm as its own node with the
        # weights' own values, which _compact can then store as the float16 they are.
        torch.onnx.export(
            Exportable().eval(), (example,),
            buffer,  # type: ignore[arg-type]
            input_names=[INPUT_NAME], output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in [INPUT_NAME, *outputs]},
            opset_version=OPSET, dynamo=False, training=torch.onnx.TrainingMode.PRESERVE,
            do_constant_folding=False,
        )
    import onnx

    model = onnx.load_from_string(buffer.getvalue())
    _compact(model)
    return model.SerializeToString()


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
    """The ONNX graph for ``card``: the one it ships with (verified), else the cached one, else
    one exported now (importing torch) and cached. A cache folder that cannot be written only
    costs the next run another export."""
    blob = read_graph(card)
    if blob is None:
        blob = read_cached(card)
    if blob is not None:
        return blob
    require_torch(f"{card.id} {card.version} has no ONNX graph for this version of ALLSight, and making one")
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
    blob = read_graph(card)
    if blob is None:
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
        if error.startswith("MissingExtraError: "):
            raise MissingExtraError(error.split(": ", 1)[1])
        raise ModelError(f"{card.id}: the ONNX export failed ({error})")
    blob = read_cached(card)
    if blob is None:  # e.g. the cache folder is not writable: do it here after all
        return ensure_cached(card)
    return blob


def attach_graph(card: ModelCard, loaded: LoadedModel | None = None) -> ModelCard:
    """Export ``card``'s graph to ``NAME.onnx`` beside its weights and list it in the card (the
    card file is rewritten; the weights are not touched). Returns the card as now written.
    Training does this for every model it saves; ``scripts/export_graphs.py`` for the shipped ones."""
    import onnxruntime as ort

    from engine.models.checkpoint import read_card

    if card.path is None:
        raise ModelError(f"{card.id}: a card with no file cannot be given a graph")
    if loaded is None:
        from engine.models.resolve import load_model

        loaded = load_model(card)
    blob = export_bytes(loaded)
    # Check it loads before anything is written (a graph ONNX Runtime refuses must not ship).
    ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    target = card.path.with_suffix(".onnx")
    data = json.loads(card.path.read_text(encoding="utf-8"))
    data["graphs"] = {"fp32": {"file": target.name, "sha256": hashlib.sha256(blob).hexdigest(),
                               "graph_key": graph_key(card), "format": EXPORT_FORMAT}}
    atomic_write_bytes(target, blob)
    atomic_write_bytes(card.path, (json.dumps(data, indent=2) + "\n").encode())
    return read_card(card.path)


def with_graph(card: ModelCard, net: Any) -> ModelCard:
    """``card`` given its graph (:func:`attach_graph`) from the network ``net`` just saved with it.
    A failed export is logged and leaves the model as it was: usable wherever torch is (its graph
    is then exported at the first classification), not on a lean install."""
    try:
        # Weights stored in float16 hold rounded values: the graph is made from the file, so that it
        # runs the numbers the weights file holds (and stores them as float16: half the size).
        return attach_graph(card, None if card.weights_dtype == "float16" else LoadedModel(card, net, {}))
    except Exception as exc:  # noqa: BLE001 - the weights are saved; the graph can be made later
        log.warning("%s %s: no ONNX graph written beside the weights (%s: %s); a lean (torch-free) "
                    "install cannot run this model until one is", card.id, card.version, type(exc).__name__, exc)
        return card
