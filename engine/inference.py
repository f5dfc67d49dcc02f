"""Batch inference: classify image files (or in-memory images) with a shipped or trained model.

:class:`Classifier` holds one loaded model on one device. :meth:`Classifier.classify_paths` is a
generator that streams :class:`ImageResult` records in input order, one batch at a time, while a
small thread pool decodes and preprocesses the next batches (Pillow, OpenCV and ONNX Runtime
release the GIL). Only a few batches are in flight ahead of the one being yielded, and paths are
pulled from the input lazily, so memory stays bounded however many files are given. The network
runs in ONNX Runtime on the CPU and in torch on a GPU (:mod:`engine.runtime`).

Every file that cannot be read becomes a ``status="error"`` result naming the reason; the rest of
the batch carries on. Confidence is the temperature-calibrated maximum probability.
An image is flagged out of distribution when the Mahalanobis distance of its pooled features
exceeds the model card's threshold, or when simple image-level checks catch what the feature
distance may miss (a near-blank frame, a grayscale image). ``needs_review`` is set for
out-of-distribution images and for confidences below the card's review threshold.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine import CLASS_IDS
from engine.checkpoint import LoadedModel, ModelCard, load_arrays, load_model, resolve_model_card
from engine.errors import ConfigError, ImageLoadError, ModelError, ModelIntegrityError
from engine.imageio import load_image
from engine.preprocess import model_input_only, preprocess, to_chw_float
from engine.progress import CancelToken
from engine.runtime import (  # noqa: F401 - select_device/configure_threads are part of this API
    Backend, OnnxBackend, TorchBackend, configure_threads, resolve_backend, resolve_device, select_device,
)
from engine.scoring import mahalanobis_score, softmax

log = logging.getLogger(__name__)

#: The CSV columns, in order (one row per image).
CSV_COLUMNS: tuple[str, ...] = (
    "path", "status", "predicted_class", "confidence", "needs_review", "out_of_distribution",
    *(f"prob_{c}" for c in CLASS_IDS), "error",
)

#: Image-level out-of-distribution checks, on the centre-cropped, resized original (0..255).
#: Real smears measure a per-channel standard deviation of 17+ and a 99th-percentile chroma
#: (max - min of R, G, B) of 65+; these limits leave a wide margin.
BLANK_MAX_CHANNEL_STD = 4.0
GRAYSCALE_MAX_CHROMA_P99 = 12.0


# ------------------------------------------------------------------------------------ results
def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


@dataclass(frozen=True)
class ImageResult:
    """The outcome for one image. ``status`` is "ok" or "error" (then only ``error`` is set)."""

    path: str
    status: str
    predicted_class: str | None = None
    confidence: float | None = None
    probabilities: dict[str, float] | None = None
    needs_review: bool = False
    out_of_distribution: bool = False
    ood_score: float | None = None
    error: str | None = None
    #: Why the image was flagged out of distribution ("" when it was not).
    ood_reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def csv_row(self) -> dict[str, str]:
        """The row for :data:`CSV_COLUMNS`: flags as "true"/"false", missing values as ""."""
        probs = self.probabilities or {}
        row = {
            "path": str(self.path),
            "status": self.status,
            "predicted_class": self.predicted_class or "",
            "confidence": _fmt(self.confidence),
            "needs_review": "true" if self.needs_review else "false",
            "out_of_distribution": "true" if self.out_of_distribution else "false",
        }
        for c in CLASS_IDS:
            row[f"prob_{c}"] = _fmt(probs.get(c))
        row["error"] = self.error or ""
        return row

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (native types, ``None`` for missing values)."""
        return {
            "path": str(self.path), "status": self.status, "predicted_class": self.predicted_class,
            "confidence": self.confidence,
            "probabilities": dict(self.probabilities) if self.probabilities is not None else None,
            "needs_review": self.needs_review, "out_of_distribution": self.out_of_distribution,
            "ood_score": self.ood_score, "ood_reason": self.ood_reason or None, "error": self.error,
        }


@dataclass(frozen=True)
class _Prepared:
    """A preprocessed image ready for the network, or the reason it is not."""

    path: str
    pixels: np.ndarray | None = None  # (S, S, 3) uint8 model input
    image_flags: str = ""  # image-level OOD reasons, "; "-joined
    error: str | None = None


def _percentile_uint8(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear interpolation) for uint8 data, from a histogram:
    O(n) instead of a sort."""
    counts = np.bincount(values.ravel(), minlength=256)
    cumulative = np.cumsum(counts)
    rank = q / 100.0 * (values.size - 1)
    lo, frac = int(np.floor(rank)), rank - np.floor(rank)
    lo_value = int(np.searchsorted(cumulative, lo + 1))  # the value at 0-based rank lo
    hi_value = int(np.searchsorted(cumulative, min(lo + 2, values.size)))
    return lo_value + frac * (hi_value - lo_value)


def image_level_ood(original: np.ndarray) -> list[str]:
    """Reasons an (S, S, 3) uint8 image is unlike any stained smear (empty list if none)."""
    reasons = []
    _, std = cv2.meanStdDev(original)
    if float(std.max()) < BLANK_MAX_CHANNEL_STD:
        reasons.append("near-blank image")
    r, g, b = cv2.split(original)  # cv2, not ndarray.max(axis=2): ~10x faster on 3 channels
    chroma = cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b))
    if _percentile_uint8(chroma, 99) < GRAYSCALE_MAX_CHROMA_P99:
        reasons.append("grayscale image (no stain colour)")
    return reasons


# --------------------------------------------------------------------------------- classifier
class Classifier:
    """One model on one device: classify files or arrays, explain with Grad-CAM.

    ``model`` is a shipped model id, a path to a ``.safetensors``/``.json`` model, a
    :class:`ModelCard`, a :class:`LoadedModel`, or ``None`` for the default model.

    ``backend`` is ``auto`` (ONNX Runtime on the CPU when installed, else torch), ``onnx`` or
    ``torch`` (see :mod:`engine.runtime`). With ONNX Runtime, torch is imported only if the
    model's ONNX copy is not cached yet (``isolate_export=True`` exports it in a child process
    instead, for the desktop app) and for Grad-CAM. If the ONNX path fails for any reason but
    corrupt weights, ``auto`` falls back to torch and logs why.
    """

    def __init__(self, model: str | Path | ModelCard | LoadedModel | None = None,
                 device: Any = "auto", backend: str = "auto", *, isolate_export: bool = False) -> None:
        self.device: str = resolve_device(device)
        threads = configure_threads() if self.device == "cpu" else 1
        self._loaded: LoadedModel | None = model if isinstance(model, LoadedModel) else None
        if self._loaded is not None:
            card = self._loaded.card
        else:
            card = model if isinstance(model, ModelCard) else resolve_model_card(model)
        self.card: ModelCard = card
        self.arch = card.architecture
        self._torch_lock = threading.Lock()
        self.backend: Backend = None  # type: ignore[assignment]
        #: How many batches may run through the network at once (1: the network is not
        #: re-entrant or uses every core by itself).
        self.parallel_batches = 1
        extras: dict[str, Any] = {}
        kind = resolve_backend(backend, self.device)
        if kind == "onnx":
            try:
                extras = self._loaded_extras() if self._loaded is not None else load_arrays(card, "ood.")
                from engine.onnx_export import ensure_cached, ensure_cached_isolated

                graph = (ensure_cached_isolated(card) if isolate_export and self._loaded is None
                         else ensure_cached(card, self._loaded))
                # One compute thread per session call, and up to ``threads`` batches in flight
                # at once (see classify_paths): measured 183 vs 150 images/s end to end on
                # 2 cores, as no core idles while another decodes.
                self.backend = OnnxBackend(graph, 1)
                self.parallel_batches = threads
            except ModelIntegrityError:
                raise
            except ModelError as exc:
                if (backend or "auto").strip().lower() == "onnx":
                    raise
                log.warning("ONNX Runtime cannot run %s (%s); using torch instead", card.id, exc)
        if self.backend is None:
            if self._loaded is None:
                self._loaded = load_model(card)
            extras = self._loaded_extras()
            self.backend = TorchBackend(self._loaded, self.device)
        means, precision = extras.get("ood.means"), extras.get("ood.precision")
        self.ood_means = None if means is None else np.asarray(means, np.float64)
        self.ood_precision = None if precision is None else np.asarray(precision, np.float64)
        threshold = self.card.ood.get("threshold") if self.card.ood else None
        self.ood_threshold = None if threshold is None else float(threshold)

    def _loaded_extras(self) -> dict[str, np.ndarray]:
        assert self._loaded is not None
        return {k: v.detach().cpu().double().numpy() for k, v in self._loaded.extras.items()}

    @property
    def classes(self) -> tuple[str, ...]:
        return self.card.classes

    @property
    def runtime(self) -> str:
        """What runs the network, for people: "CPU, ONNX Runtime", "CUDA, torch"."""
        return f"{self.device.split(':')[0].upper()}, {'ONNX Runtime' if self.backend.name == 'onnxruntime' else 'torch'}"

    # ----------------------------------------------------------------------- preprocessing
    def _prepare_rgb(self, name: str, rgb: np.ndarray) -> _Prepared:
        original, model_input = model_input_only(rgb, self.card.preprocess)
        return _Prepared(name, model_input, "; ".join(image_level_ood(original)))

    def _prepare_path(self, path: str | Path) -> _Prepared:
        name = str(path)
        try:
            return self._prepare_rgb(name, load_image(path))
        except ImageLoadError as exc:
            return _Prepared(name, error=exc.reason)
        except Exception as exc:  # any other per-file failure must not stop the batch
            log.debug("cannot process %s", name, exc_info=True)
            return _Prepared(name, error=f"could not be processed ({type(exc).__name__}: {exc})")

    # ------------------------------------------------------------------------- the network
    def _classify_prepared(self, batch: Sequence[_Prepared]) -> list[ImageResult]:
        good = [p for p in batch if p.error is None]
        by_id: dict[int, ImageResult] = {}
        if good:
            logits, feats = self.backend.run(np.stack([p.pixels for p in good]))
            probs = softmax(logits.astype(np.float64), self.card.temperature)
            want_scores = self.ood_means is not None and self.ood_precision is not None
            scores = mahalanobis_score(feats, self.ood_means, self.ood_precision) if want_scores else None
            for i, p in enumerate(good):
                k = int(probs[i].argmax())
                conf = float(probs[i, k])
                reasons = [p.image_flags] if p.image_flags else []
                score = None if scores is None else float(scores[i])
                if score is not None and self.ood_threshold is not None and score > self.ood_threshold:
                    reasons.insert(0, f"feature distance {score:.1f} above {self.ood_threshold:.1f}")
                ood = bool(reasons)
                by_id[id(p)] = ImageResult(
                    path=p.path, status="ok", predicted_class=self.classes[k], confidence=conf,
                    probabilities={c: float(v) for c, v in zip(self.classes, probs[i])},
                    needs_review=bool(conf < self.card.review_threshold or ood),
                    out_of_distribution=ood, ood_score=score, ood_reason="; ".join(reasons),
                )
        return [by_id[id(p)] if p.error is None else ImageResult(p.path, "error", error=p.error)
                for p in batch]

    # ------------------------------------------------------------------------------ public
    def classify_paths(
        self, paths: Iterable[str | Path], *, batch_size: int = 64, workers: int = 2,
        cancel: CancelToken | None = None, prefetch: int = 2,
    ) -> Iterator[ImageResult]:
        """Yield one :class:`ImageResult` per path, in input order, as each batch finishes.

        ``paths`` may be any iterable (it is consumed lazily: at most ``max(prefetch, workers)``
        batches ahead of the batch being yielded). ``cancel`` is checked between batches and raises
        :class:`~engine.errors.Cancelled`. Closing the generator early stops the workers.

        Two ways to use ``workers`` threads: with ONNX Runtime each worker decodes a whole batch
        and runs it through the (re-entrant, single-threaded) session itself, up to
        :attr:`parallel_batches` batches at once; with torch the workers decode while the
        calling thread runs the network, whose own threads use the cores.
        """
        if batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        source = iter(paths)
        n_workers = max(1, int(workers))
        whole_batches = isinstance(self.backend, OnnxBackend)  # its sessions are re-entrant
        if whole_batches:
            n_workers = max(1, min(n_workers, self.parallel_batches))
        pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="allsight-classify")
        pending: deque[Any] = deque()
        exhausted = False
        in_flight = max(n_workers, prefetch, 1) if whole_batches else max(1, prefetch)

        def submit_next() -> None:
            nonlocal exhausted
            if exhausted:
                return
            chunk = list(islice(source, batch_size))
            if not chunk:
                exhausted = True
                return
            if whole_batches:
                pending.append(pool.submit(self._prepare_and_classify, chunk))
            else:
                pending.append([pool.submit(self._prepare_path, p) for p in chunk])

        try:
            while len(pending) < in_flight and not exhausted:
                submit_next()
            while pending:
                if cancel is not None:
                    cancel.raise_if_cancelled()
                head = pending.popleft()
                submit_next()  # keep the workers busy while this batch is finished
                if whole_batches:
                    yield from head.result()
                else:
                    yield from self._classify_prepared([f.result() for f in head])
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _prepare_and_classify(self, chunk: Sequence[str | Path]) -> list[ImageResult]:
        return self._classify_prepared([self._prepare_path(p) for p in chunk])

    def classify_arrays(self, images: Sequence[np.ndarray], names: Sequence[str] | None = None, *,
                        batch_size: int = 32) -> list[ImageResult]:
        """Classify in-memory (H, W, 3) uint8 RGB images; ``names`` fill the ``path`` field."""
        names = list(names) if names is not None else [f"image_{i}" for i in range(len(images))]
        if len(names) != len(images):
            raise ConfigError(f"{len(images)} images but {len(names)} names")
        results: list[ImageResult] = []
        for start in range(0, len(images), max(1, batch_size)):
            batch = []
            for name, rgb in zip(names[start:start + batch_size], images[start:start + batch_size]):
                try:
                    batch.append(self._prepare_rgb(name, np.asarray(rgb)))
                except Exception as exc:  # e.g. a wrong shape: an error result, not a crash
                    log.debug("cannot process %s", name, exc_info=True)
                    batch.append(_Prepared(name, error=f"could not be processed ({exc})"))
            results.extend(self._classify_prepared(batch))
        return results

    def heatmap(self, image: str | Path | np.ndarray, class_index: int | str | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Grad-CAM for one image: (resized original (S,S,3) uint8, heat (S,S) 0..1, overlay).

        ``class_index`` (an index or a class id) defaults to the predicted class.
        """
        from engine.gradcam import gradcam, overlay

        import torch

        rgb = load_image(image) if isinstance(image, (str, Path)) else np.asarray(image)
        stages = preprocess(rgb, self.card.preprocess)
        net, device = self._torch_network()
        x = torch.from_numpy(to_chw_float(stages.model_input, self.card.preprocess)[None]).to(device)
        if isinstance(class_index, str):
            if class_index not in self.classes:
                raise ConfigError(f"unknown class {class_index!r}; the model has {', '.join(self.classes)}")
            class_index = self.classes.index(class_index)
        heat = gradcam(net, self.arch, x, class_index)
        return stages.original, heat, overlay(stages.original, heat)

    def _torch_network(self):
        """The torch network (Grad-CAM needs gradients): the torch backend's own, or loaded on
        first use beside the ONNX Runtime session."""
        if isinstance(self.backend, TorchBackend):
            return self.backend.net, self.backend.device
        with self._torch_lock:
            if self._loaded is None:
                self._loaded = load_model(self.card)
            return self._loaded.net.to(self.device).eval(), self.device
