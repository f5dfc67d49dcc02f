"""A model's ONNX graphs: the network as ONNX Runtime runs it, shipped beside the weights.

A model that ships with its graph (``NAME.onnx`` beside ``NAME.safetensors``, listed in the
card's ``graphs``; ``NAME.int8.onnx`` too, where a static INT8 graph was made from it)
classifies without torch: the lean install has none, and even with torch
nothing needs exporting on a fresh machine. The card records, per graph, its file, its sha256
and its :func:`graph_key` — the sha256 of the weights it was exported from and of everything
else the graph bakes in (architecture, normalisation, input size, feature layers, export
format). :func:`read_graph` checks all three on every load, so a graph can only ever run for the
weights and card it was made from. Graphs are written by :mod:`engine.inference.onnx_export`
(which needs torch); this module reads them and imports no torch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from engine.core.errors import ModelError, ModelIntegrityError
from engine.models.card import ModelCard, feature_layers_of

#: Bump when an exported graph's inputs, outputs or semantics change: older graphs are not used.
#: 3: a third output, ``class_maps`` (Grad-CAM without autograd), where the head allows it.
EXPORT_FORMAT = 3
INPUT_NAME = "images"
#: What every graph returns; ``class_maps`` follows when the architecture's head is linear.
OUTPUT_NAMES = ("logits", "features")
CLASS_MAPS = "class_maps"


def graph_key(card: ModelCard) -> str:
    """sha256 of everything baked into the exported graph: the weights, the normalisation, the
    input size and the feature layers. An edited card can therefore never be served a graph made
    for another card with the same weights."""
    baked = {
        "weights": card.weights_sha256, "format": EXPORT_FORMAT, "architecture": card.architecture,
        "mean": list(card.preprocess.mean), "std": list(card.preprocess.std), "size": card.image_size,
        "layers": list(feature_layers_of(card.ood, "")),
    }
    return hashlib.sha256(json.dumps(baked, sort_keys=True).encode()).hexdigest()


def graph_path(card: ModelCard, kind: str = "fp32") -> Path | None:
    """Where ``card``'s graph of ``kind`` lies, or ``None`` if the card lists none."""
    entry = card.graphs.get(kind)
    if not entry or card.path is None:
        return None
    return card.path.parent / str(entry["file"])


def graph_files(card: ModelCard) -> list[Path]:
    """Every graph file the card lists (what travels with the model when it is copied)."""
    return [p for kind in card.graphs if (p := graph_path(card, kind)) is not None]


def read_graph(card: ModelCard, kind: str = "fp32") -> bytes | None:
    """The verified bytes of ``card``'s shipped graph, or ``None`` when the card lists none or
    lists one made for other weights or an older format (the caller then uses or makes another).

    A listed graph whose file is missing or whose bytes do not match the card's sha256 is a
    damaged installation, refused with :class:`ModelError` / :class:`ModelIntegrityError`."""
    path = graph_path(card, kind)
    if path is None:
        return None
    entry = card.graphs[kind]
    if entry.get("format") != EXPORT_FORMAT or entry.get("graph_key") != graph_key(card):
        return None
    if kind == "int8" and entry.get("quantized_from") != card.graphs.get("fp32", {}).get("sha256"):
        return None  # quantised from another fp32 graph than the one listed: not this network
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: the model's ONNX graph cannot be read ({exc.strerror}); "
                         "reinstall the model") from None
    digest = hashlib.sha256(blob).hexdigest()
    if digest != entry["sha256"]:
        raise ModelIntegrityError(
            f"{path}: the model's ONNX graph is corrupt or has been tampered with (sha256 {digest[:12]}... "
            f"does not match the model card's {str(entry['sha256'])[:12]}...); refusing to load it.")
    return blob


__all__ = ["CLASS_MAPS", "EXPORT_FORMAT", "INPUT_NAME", "OUTPUT_NAMES", "graph_files", "graph_key", "graph_path",
           "read_graph"]
