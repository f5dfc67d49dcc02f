"""The recipe for a model's static INT8 graph and its fp32 check (needs ``onnx``: the training extra).

:func:`make_int8_graph` makes ``NAME.int8.onnx`` beside a model's fp32 graph and lists it in the
card (``graphs.int8``): :func:`attach_int8_graph` from the development set a shipped model was
trained on (``scripts/export_graphs.py --int8``), :func:`with_int8_graph` from the images ``train``
and ``refit`` hold when they save a model (a lab's fine-tune: its own training, validation and
held-out images), in the same steps:

1. **calibrate** on ``calibration`` images drawn (seeded) from the model's *training* split:
   ONNX Runtime's ``quantize_static``, QDQ, per-channel signed 8-bit weights, unsigned 8-bit
   activations, min–max ranges (measured best of min–max, min–max with the classifier in fp32
   and entropy: docs/performance.md "Static INT8");
2. **pick the fp32 check's bands** (:class:`engine.inference.cascade.Fp32Check`) on the
   *validation* split: the smallest margin and bands with which every call, review flag and
   out-of-distribution flag there is fp32's, then widened for room (margin ×2 and at least
   0.05, bands ×1.5 and at least 0.1);
3. **score** on the *test* split, which took no part in 1 or 2: how often the call and the flags
   agree with fp32 without and with the check, how many images the check runs again, accuracy,
   ECE and the flagged share of both; and on the test split together with the training images
   not used for calibration (more images, so a finer figure: the model was trained on those,
   but what is measured is INT8's agreement with fp32);
4. **time** both graphs on this CPU (the card says which CPU).

The card's own fields and the weights are not touched; the INT8 entry is bound to them by the
graph key and to the fp32 graph by its sha256 (:func:`engine.models.graphs.read_graph`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.errors import ModelError
from engine.core.fsutil import atomic_write_bytes
from engine.imaging.preprocess import model_input_only
from engine.inference.cascade import Fp32Check
from engine.inference.ood import OodDetector
from engine.inference.precision import cpu_identity
from engine.inference.runtime import OnnxBackend
from engine.inference.scoring import softmax
from engine.io.images import load_image
from engine.models.card import ModelCard
from engine.models.checkpoint import load_arrays, read_card
from engine.models.graphs import EXPORT_FORMAT, graph_key, read_graph
from engine.training.data import split_samples
from engine.training.metrics import expected_calibration_error

log = logging.getLogger(__name__)

CALIBRATION_IMAGES = 256
#: The margin never below this, whatever the validation split needed (room for other images).
MIN_MARGIN = 0.05
#: Nor a band below this: where validation saw no flag move, a zero band would leave no room at all
#: (measured: ResNet18 1.4.0 picked an OOD band of 0 and one test image's flag then differed).
MIN_BAND = 0.1
MARGIN_ROOM, BAND_ROOM = 2.0, 1.5
_MARGIN_GRID = np.round(np.arange(0.0, 0.5001, 0.005), 3)
_BAND_GRID = np.round(np.arange(0.0, 5.0001, 0.01), 2)


def quantize_graph(fp32_graph: bytes, calibration: np.ndarray, kept_fp32: Sequence[str] = (),
                   method: str = "MinMax") -> bytes:
    """Static INT8 (QDQ, per-channel s8 weights, u8 activations) of ``fp32_graph``, calibrated on
    ``calibration`` (preprocessed uint8 images, in batches of 16) with ONNX Runtime's calibration
    ``method`` (the product's recipe: min–max; benchmarks/int8_agreement.py compares others)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:  # entropy and percentile collectors need equal batches
            end = len(calibration) if method == "MinMax" else len(calibration) - len(calibration) % 16
            self._it = iter([{"images": calibration[i:i + 16]} for i in range(0, end, 16)])

        def get_next(self):  # noqa: ANN202 - onnxruntime's interface
            return next(self._it, None)

    with tempfile.TemporaryDirectory(prefix="allsight-int8-") as work:
        source, prepared, out = (os.path.join(work, n) for n in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        Path(source).write_bytes(fp32_graph)
        quant_pre_process(source, prepared, skip_symbolic_shape=True)
        quantize_static(prepared, out, Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, method), nodes_to_exclude=list(kept_fp32),
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        return Path(out).read_bytes()


def _pixels(card: ModelCard, paths: Sequence[Path]) -> np.ndarray:
    with ThreadPoolExecutor(max_workers=2) as pool:
        return np.stack(list(pool.map(lambda p: model_input_only(load_image(p), card.preprocess)[1], paths)))


def _outputs(backend: OnnxBackend, pixels: np.ndarray, card: ModelCard,
             detector: OodDetector | None) -> dict[str, np.ndarray]:
    parts = [backend.run(pixels[i:i + 32]) for i in range(0, len(pixels), 32)]
    logits, features = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    probs = softmax(logits.astype(np.float64), card.temperature)
    scores = detector.score(features) if detector is not None else np.zeros(len(probs))
    return {"probs": probs, "scores": scores}


def _decisions(out: dict[str, np.ndarray], card: ModelCard, detector: OodDetector | None) -> dict[str, np.ndarray]:
    return {"call": out["probs"].argmax(1), "low": out["probs"].max(1) < card.review_threshold,
            "ood": out["scores"] > detector.threshold if detector is not None else np.zeros(len(out["probs"]), bool)}


def _with_check(fp32: dict, int8: dict, card: ModelCard, detector: OodDetector | None,
                check: Fp32Check) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Decisions, probabilities and the rerun mask of INT8 with ``check``."""
    again = check.needs_fp32(int8["probs"], card.review_threshold, int8["scores"],
                             None if detector is None else detector.threshold)
    mixed = {k: np.where(again[:, None] if fp32[k].ndim == 2 else again, fp32[k], int8[k]) for k in fp32}
    return _decisions(mixed, card, detector), mixed["probs"], again


def pick_check(fp32: dict, int8: dict, card: ModelCard, detector: OodDetector | None) -> Fp32Check:
    """The smallest margin, then confidence band, then OOD band with which INT8 + check takes
    fp32's every decision on these outputs, widened for room."""
    reference = _decisions(fp32, card, detector)  # fp32's decisions: the same for every candidate check

    def agrees(check: Fp32Check, what: str) -> bool:
        return bool((_with_check(fp32, int8, card, detector, check)[0][what] == reference[what]).all())

    margin = next((float(m) for m in _MARGIN_GRID if agrees(Fp32Check(float(m), 0.0, 0.0), "call")), 0.5)
    margin = max(MIN_MARGIN, MARGIN_ROOM * margin)
    conf = next((float(b) for b in _BAND_GRID if agrees(Fp32Check(margin, float(b), 0.0), "low")), 5.0)
    ood = next((float(b) for b in _BAND_GRID if agrees(Fp32Check(margin, conf, float(b)), "ood")), 5.0)
    return Fp32Check(round(margin, 4), round(min(10.0, max(MIN_BAND, BAND_ROOM * conf)), 4),
                     round(min(10.0, max(MIN_BAND, BAND_ROOM * ood)), 4))


def score_check(fp32: dict, int8: dict, labels: np.ndarray, card: ModelCard, detector: OodDetector | None,
                check: Fp32Check) -> dict[str, Any]:
    """How INT8 alone and INT8 with ``check`` compare with fp32 on these outputs."""
    ref, alone = _decisions(fp32, card, detector), _decisions(int8, card, detector)
    final, probs, again = _with_check(fp32, int8, card, detector, check)
    flagged = {name: d["low"] | d["ood"] for name, d in (("fp32", ref), ("alone", alone), ("checked", final))}
    return {
        "images": len(labels),
        "call_agreement_without_check": float((alone["call"] == ref["call"]).mean()),
        "call_agreement": float((final["call"] == ref["call"]).mean()),
        "flag_agreement_without_check": float((flagged["alone"] == flagged["fp32"]).mean()),
        "flag_agreement": float((flagged["checked"] == flagged["fp32"]).mean()),
        "fp32_rerun_fraction": float(again.mean()),
        "accuracy_fp32": float((ref["call"] == labels).mean()), "accuracy": float((final["call"] == labels).mean()),
        "ece_fp32": expected_calibration_error(fp32["probs"], labels),
        "ece": expected_calibration_error(probs, labels),
        "flagged_fp32": float(flagged["fp32"].mean()), "flagged": float(flagged["checked"].mean()),
    }


def _speed(backend_fp32: bytes, backend_int8: bytes, pixels: np.ndarray) -> dict[str, Any]:
    """Network alone, one session × 2 threads, best of three over ``pixels``: images per second."""
    rates = {}
    for name, graph in (("fp32", backend_fp32), ("int8", backend_int8)):
        backend, best = OnnxBackend(graph, 2), float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for i in range(0, len(pixels), 32):
                backend.run(pixels[i:i + 32])
            best = min(best, time.perf_counter() - started)
        rates[name] = len(pixels) / best
    return {"cpu": cpu_identity(), "threads": 2, "fp32_images_per_s": round(rates["fp32"], 1),
            "int8_images_per_s": round(rates["int8"], 1), "int8_over_fp32": round(rates["int8"] / rates["fp32"], 3)}


def attach_int8_graph(card: ModelCard, data_dir: str | Path, *, calibration_images: int = CALIBRATION_IMAGES,
                      seed: int = 0, speed_images: int = 320) -> ModelCard:
    """Make, check and list ``card``'s INT8 graph from the development set ``data_dir`` the model
    was trained on (see the module's docstring); returns the card as now written."""
    parts = {name: split_samples(card, data_dir, name) for name in ("train", "val", "test")}
    order = np.random.default_rng(seed).permutation(len(parts["train"]))
    calibration = [parts["train"][i] for i in order[:calibration_images]]
    rest = [parts["train"][i] for i in order[calibration_images:]]

    def pixels_and_labels(samples):
        return _pixels(card, [s.path for s in samples]), np.array([s.label for s in samples])

    return make_int8_graph(card, _pixels(card, [s.path for s in calibration]), pixels_and_labels(parts["val"]),
                           pixels_and_labels(parts["test"]), extra=pixels_and_labels(rest), seed=seed,
                           speed_images=speed_images)


def with_int8_graph(card: ModelCard, train_imgs: np.ndarray, val: tuple[np.ndarray, np.ndarray],
                    test: tuple[np.ndarray, np.ndarray], *, seed: int = 0) -> ModelCard:
    """``card`` given its INT8 graph from the images its training just used (resized, not yet
    preprocessed: ``train`` and ``refit`` hold them). A model whose INT8 graph cannot be made —
    no fp32 graph, no validation images, ``onnx`` missing, anything else — is logged and left
    as it is: it runs fp32 (engine.inference.precision)."""
    try:
        if "fp32" not in card.graphs or not len(val[0]) or not len(test[0]):
            raise ModelError("it needs an fp32 graph and validation and test images")
        order = np.random.default_rng(seed).permutation(len(train_imgs))[:CALIBRATION_IMAGES]
        return make_int8_graph(card, _model_inputs(card, train_imgs[order]), (_model_inputs(card, val[0]), val[1]),
                               (_model_inputs(card, test[0]), test[1]), seed=seed, speed_images=64)
    except Exception as exc:  # noqa: BLE001 - the model is saved; it runs fp32 without the INT8 graph
        log.warning("%s %s: no INT8 graph written (%s: %s); the model runs fp32", card.id, card.version,
                    type(exc).__name__, exc)
        return card


def _model_inputs(card: ModelCard, resized: np.ndarray) -> np.ndarray:
    """Model inputs of images already cropped and resized to the model's size."""
    return np.stack([model_input_only(img, card.preprocess)[1] for img in resized])


def make_int8_graph(card: ModelCard, calibration: np.ndarray, val: tuple[np.ndarray, np.ndarray],
                    test: tuple[np.ndarray, np.ndarray], *, extra: tuple[np.ndarray, np.ndarray] | None = None,
                    seed: int = 0, speed_images: int = 320) -> ModelCard:
    """Quantise ``card``'s fp32 graph on ``calibration``, pick the check on ``val``, score it on
    ``test`` (and on ``test`` + ``extra``, where given), write NAME.int8.onnx and list it in the
    card. Images are model inputs (preprocessed uint8); ``val``/``test`` are (images, labels)."""
    import onnxruntime

    fp32_graph = read_graph(card, "fp32")
    if fp32_graph is None or card.path is None:
        raise ModelError(f"{card.id} {card.version}: no fp32 graph to quantise (scripts/export_graphs.py first)")
    int8_graph = quantize_graph(fp32_graph, calibration)
    detector = OodDetector.from_card(card.ood, load_arrays(card, "ood."))
    graphs = {"fp32": OnnxBackend(fp32_graph, 2), "int8": OnnxBackend(int8_graph, 2)}
    named = {"val": val, "test": test, **({"extra": extra} if extra is not None else {})}
    outputs = {name: {kind: _outputs(b, images, card, detector) for kind, b in graphs.items()}
               for name, (images, _) in named.items()}
    labels = {name: np.asarray(y) for name, (_, y) in named.items()}
    check = pick_check(outputs["val"]["fp32"], outputs["val"]["int8"], card, detector)
    agreement: dict[str, Any] = {
        **score_check(outputs["test"]["fp32"], outputs["test"]["int8"], labels["test"], card, detector, check),
        "split": "test", "check_picked_on": "val"}
    if extra is not None:
        wider = ("test", "extra")  # everything that took no part in calibrating or picking the check
        agreement["test_and_unused_training_images"] = score_check(
            _joined(outputs, wider, "fp32"), _joined(outputs, wider, "int8"),
            np.concatenate([labels[s] for s in wider]), card, detector, check)
    entry = {
        "file": card.path.with_suffix(".int8.onnx").name, "sha256": hashlib.sha256(int8_graph).hexdigest(),
        "graph_key": graph_key(card), "format": EXPORT_FORMAT,
        "quantized_from": hashlib.sha256(fp32_graph).hexdigest(),
        "calibration": {"method": "minmax", "images": len(calibration), "split": "train", "seed": seed,
                        "quantizer": f"onnxruntime {onnxruntime.__version__} quantize_static: QDQ, per-channel "
                                     "signed 8-bit weights, unsigned 8-bit activations"},
        "fp32_check": check.as_dict(),
        "agreement": agreement,
        "speed": _speed(fp32_graph, int8_graph, test[0][:speed_images]),
    }
    data = json.loads(card.path.read_text(encoding="utf-8"))
    data.setdefault("graphs", {})["int8"] = entry
    atomic_write_bytes(card.path.with_suffix(".int8.onnx"), int8_graph)
    atomic_write_bytes(card.path, (json.dumps(data, indent=2) + "\n").encode())
    return read_card(card.path)


def _joined(outputs: dict, splits: Sequence[str], kind: str) -> dict[str, np.ndarray]:
    return {k: np.concatenate([outputs[s][kind][k] for s in splits]) for k in ("probs", "scores")}


__all__ = ["CALIBRATION_IMAGES", "attach_int8_graph", "make_int8_graph", "pick_check", "quantize_graph",
           "score_check", "with_int8_graph"]
