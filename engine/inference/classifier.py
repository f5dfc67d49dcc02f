"""Batch inference: classify image files (or in-memory images) with a shipped or trained model.

:class:`Classifier` holds one loaded model on one device. :meth:`Classifier.classify_paths` is a
generator that streams :class:`ImageResult` records in input order, one batch at a time, while a
small thread pool decodes and preprocesses the next batches (Pillow, OpenCV and ONNX Runtime
release the GIL). Only a few batches are in flight ahead of the one being yielded, and paths are
pulled from the input lazily, so memory stays bounded however many files are given. The network
runs in ONNX Runtime on the CPU and in torch on a GPU (:mod:`engine.inference.runtime`).

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
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.choices import BackendName, PrecisionName
from engine.core.errors import ConfigError, ImageLoadError, MissingExtraError, ModelError, ModelIntegrityError
from engine.core.flags import FlagReason, is_out_of_distribution
from engine.core.optional import require_torch
from engine.core.progress import CancelToken
from engine.core.records import ImageResult, ImageStatus
from engine.imaging.preprocess import model_input_only, preprocess, to_chw_float
from engine.inference.cascade import CascadeBackend, Fp32Check
from engine.inference.image_checks import (  # noqa: F401 - part of this module's API since 1.0
    FOCUS_ANALYSIS_SIZE,
    FOCUS_MIN_SHARPNESS,
    image_level_flags,
    image_level_ood,
    sharpness,
)
from engine.inference.ood import OodDetector
from engine.inference.precision import cpu_backend, requested_precision
from engine.inference.runtime import (  # noqa: F401 - select_device/configure_threads are part of this API
    Backend,
    OnnxBackend,
    TorchBackend,
    configure_threads,
    describe_runtime,
    limit_numpy_blas_threads,
    resolve_backend,
    resolve_device,
    select_device,
)
from engine.inference.scoring import softmax
from engine.io.images import load_image
from engine.models.card import ModelCard
from engine.models.checkpoint import load_arrays
from engine.models.resolve import LoadedModel, load_model, resolve_model_card

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class _Prepared:
    """A preprocessed image ready for the network, or the reason it is not."""

    path: str
    pixels: np.ndarray | None = None  # (S, S, 3) uint8 model input
    image_flags: tuple[FlagReason, ...] = ()  # image-level reasons (before the network)
    error: str | None = None


# --------------------------------------------------------------------------------- classifier
class Classifier:
    """One model on one device: classify files or arrays, explain with Grad-CAM.

    ``model`` is a shipped model id, a path to a ``.safetensors``/``.json`` model, a
    :class:`ModelCard`, a :class:`LoadedModel`, or ``None`` for the default model.

    ``backend`` is ``auto`` (ONNX Runtime on the CPU when installed, else torch), ``onnx`` or
    ``torch`` (see :mod:`engine.inference.runtime`). With ONNX Runtime, torch is imported only if the
    model's ONNX copy is not cached yet (``isolate_export=True`` exports it in a child process
    instead, for the desktop app) and for Grad-CAM. If the ONNX path fails for any reason but
    corrupt weights, ``auto`` falls back to torch and logs why.

    ``background=True`` returns as soon as the model card is read and loads the network in a
    thread (verifying the weights, creating the session); :meth:`classify_paths` starts decoding
    at once and runs the network when it is ready. A load error is then raised where the
    backend is first needed (:meth:`wait_ready`, :attr:`backend`, the first result).
    """

    def __init__(self, model: str | Path | ModelCard | LoadedModel | None = None,
                 device: Any = "auto", backend: str = "auto", *, isolate_export: bool = False,
                 background: bool = False, precision: str | None = None) -> None:
        self.device: str = resolve_device(device)
        self._threads = configure_threads() if self.device == "cpu" else 1
        self._loaded: LoadedModel | None = model if isinstance(model, LoadedModel) else None
        if isinstance(model, LoadedModel):
            card = model.card
        else:
            card = model if isinstance(model, ModelCard) else resolve_model_card(model)
        self.card: ModelCard = card
        self.arch = card.architecture
        self._torch_lock = threading.Lock()
        #: How many batches may run through the network at once (1: the network is not
        #: re-entrant or uses every core by itself).
        self.parallel_batches = 1
        self._network_slots = threading.BoundedSemaphore(1)
        #: The out-of-distribution detector (engine.inference.ood), set once the model is loaded.
        self.ood: OodDetector | None = None
        self._backend_pref = backend
        self._isolate_export = isolate_export
        kind = resolve_backend(backend, self.device)  # a bad name fails here, not in the background
        self._precision_pref = requested_precision(precision)
        if self._precision_pref == PrecisionName.INT8 and kind != BackendName.ONNX:
            raise ConfigError(f"INT8 runs in ONNX Runtime on the CPU, not in {kind} on {self.device}; "
                              "use precision fp32 or auto")
        #: The graph that runs the network (fp32, or INT8 with its fp32 check), once loaded.
        self.precision: PrecisionName = PrecisionName.FP32
        self._ready: Future[Backend] = Future()
        self._ready.set_running_or_notify_cancel()
        if background:
            # Verifying the weights and creating the session (~0.3 s) overlap with the decoding
            # of the first batches (see classify_paths); errors surface where the backend is used.
            threading.Thread(target=self._load_backend, args=(kind,), name="allsight-model-load").start()
        else:
            self._load_backend(kind)
            self._ready.result()  # raise a load error here, as before

    def _load_backend(self, kind: str) -> None:
        """Build the backend (in the caller's or the loader thread); the outcome goes to
        ``self._ready``."""
        try:
            backend: Backend | None = None
            extras: dict[str, np.ndarray] = {}
            if kind == "onnx":
                try:
                    extras = self._loaded_extras() if self._loaded is not None else load_arrays(self.card, "ood.")
                    from engine.inference.onnx_export import ensure_cached, ensure_cached_isolated

                    graph = (ensure_cached_isolated(self.card) if self._isolate_export and self._loaded is None
                             else ensure_cached(self.card, self._loaded))
                    # One compute thread per session call, and up to ``threads`` batches in
                    # flight at once (see classify_paths): measured 183 vs 150 images/s end to
                    # end on 2 cores, as no core idles while another decodes.
                    backend = self._onnx_backend(graph)
                    self.parallel_batches = self._threads
                    if self.parallel_batches > 1:
                        limit_numpy_blas_threads()
                except (ModelIntegrityError, MissingExtraError):
                    raise
                except ModelError as exc:
                    if (self._backend_pref or "auto").strip().lower() == "onnx":
                        raise
                    log.warning("ONNX Runtime cannot run %s (%s); using torch instead", self.card.id, exc)
            if backend is None:
                if self._loaded is None:
                    self._loaded = load_model(self.card)
                extras = self._loaded_extras()
                backend = TorchBackend(self._loaded, self.device)
                self.parallel_batches = 1  # one torch call uses every core (or the GPU)
            self._network_slots = threading.BoundedSemaphore(self.parallel_batches)
            self.ood = OodDetector.from_card(self.card.ood, extras)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever needs the backend
            self._ready.set_exception(exc)
        else:
            assert backend is not None  # the torch fallback always sets one
            self._ready.set_result(backend)

    def _onnx_backend(self, fp32_graph: bytes) -> Backend:
        backend, self.precision = cpu_backend(self.card, fp32_graph, self._precision_pref, self._needs_fp32_rule)
        return backend

    def _needs_fp32_rule(self, check: Fp32Check):
        """The rule :class:`CascadeBackend` asks: which of INT8's rows lie near a boundary the
        product decides on (the call, the review threshold, the detector's threshold)."""
        def needs_fp32(logits: np.ndarray, features: np.ndarray) -> np.ndarray:
            probs = softmax(logits.astype(np.float64), self.card.temperature)
            detector = self.ood
            scores = None if detector is None else detector.score(features)
            return check.needs_fp32(probs, self.card.review_threshold, scores,
                                    None if detector is None else detector.threshold)
        return needs_fp32

    def wait_ready(self) -> Backend:
        """Wait until the model is loaded (see ``background``); raise why it could not be."""
        return self._ready.result()

    @property
    def backend(self) -> Backend:
        """The runtime running the network; waits for a background load, and raises its error."""
        return self.wait_ready()

    @property
    def ready(self) -> bool:
        """True once loading has finished (successfully or not): using it no longer waits."""
        return self._ready.done()

    def _loaded_extras(self) -> dict[str, np.ndarray]:
        assert self._loaded is not None
        return {k: v.detach().cpu().double().numpy() for k, v in self._loaded.extras.items()}

    @property
    def ood_threshold(self) -> float | None:
        """The detector's score threshold (``None`` without a detector); waits for the load."""
        self.wait_ready()
        return None if self.ood is None else self.ood.threshold

    @property
    def classes(self) -> tuple[str, ...]:
        return self.card.classes

    @property
    def runtime(self) -> str:
        """What runs the network, for people: "CPU (ONNX Runtime)", "CPU (ONNX Runtime, INT8)",
        "CUDA (<GPU name>)"."""
        return describe_runtime(self.device, self.backend.name, self.precision)

    # ----------------------------------------------------------------------- preprocessing
    def _prepare_rgb(self, name: str, rgb: np.ndarray) -> _Prepared:
        original, model_input = model_input_only(rgb, self.card.preprocess)
        return _Prepared(name, model_input, tuple(image_level_flags(original)))

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
            pixels = np.stack([p.pixels for p in good if p.pixels is not None])  # set whenever error is None
            backend = self.backend
            with self._network_slots:  # torch's network (and its feature hook) is not re-entrant
                logits, feats = backend.run(pixels)
            probs = softmax(logits.astype(np.float64), self.card.temperature)
            detector = self.ood
            scores = detector.score(feats) if detector is not None else None
            for i, p in enumerate(good):
                k = int(probs[i].argmax())
                conf = float(probs[i, k])
                reasons = list(p.image_flags)
                score = None if scores is None else float(scores[i])
                if score is not None and detector is not None and score > detector.threshold:
                    reasons.append(FlagReason.UNLIKE_TRAINING)
                if conf < self.card.review_threshold:
                    reasons.append(FlagReason.LOW_CONFIDENCE)
                by_id[id(p)] = ImageResult(
                    path=p.path, status=ImageStatus.OK, predicted_class=self.classes[k], confidence=conf,
                    probabilities={c: float(v) for c, v in zip(self.classes, probs[i], strict=False)},
                    needs_review=bool(reasons), out_of_distribution=is_out_of_distribution(reasons),
                    ood_score=score, flags=tuple(reasons),
                )
        return [by_id[id(p)] if p.error is None else ImageResult(p.path, ImageStatus.ERROR, error=p.error)
                for p in batch]

    # ------------------------------------------------------------------------------ public
    def classify_paths(
        self, paths: Iterable[str | Path], *, batch_size: int = 64, workers: int = 2,
        cancel: CancelToken | None = None, prefetch: int = 2, preload_batches: int = 8,
    ) -> Iterator[ImageResult]:
        """Yield one :class:`ImageResult` per path, in input order, as each batch finishes.

        ``paths`` may be any iterable, consumed lazily: once the model is loaded, at most
        ``max(workers, prefetch)`` batches are pulled ahead of the batch being yielded (while a
        ``background`` load is still running, up to ``preload_batches``, so that decoding
        overlaps the load). ``cancel`` is checked between batches and raises
        :class:`~engine.core.errors.Cancelled`. Closing the generator early stops the workers.

        ``workers`` threads share two kinds of job: decoding and preprocessing a batch, and
        running a decoded batch through the network (up to :attr:`parallel_batches` at once:
        ONNX Runtime's single-threaded sessions are re-entrant; torch uses every core, or the
        GPU, by itself). A worker runs the network whenever the next batch in order is decoded
        and a slot is free, and decodes otherwise, so neither core idles while the other decodes.
        """
        if batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        n_workers = max(1, int(workers))
        if cancel is not None:
            cancel.raise_if_cancelled()
        pipeline = _Pipeline(self, iter(paths), batch_size, n_workers,
                             ahead=max(n_workers, prefetch, 1), preload=max(n_workers, prefetch, preload_batches, 1))
        try:
            index = 0
            while True:
                results = pipeline.take(index)
                if results is None:
                    return
                if cancel is not None:
                    cancel.raise_if_cancelled()
                yield from results
                index += 1
        finally:
            pipeline.close()

    def classify_arrays(self, images: Sequence[np.ndarray], names: Sequence[str] | None = None, *,
                        batch_size: int = 32) -> list[ImageResult]:
        """Classify in-memory (H, W, 3) uint8 RGB images; ``names`` fill the ``path`` field."""
        names = list(names) if names is not None else [f"image_{i}" for i in range(len(images))]
        if len(names) != len(images):
            raise ConfigError(f"{len(images)} images but {len(names)} names")
        results: list[ImageResult] = []
        for start in range(0, len(images), max(1, batch_size)):
            batch = []
            for name, rgb in zip(names[start:start + batch_size], images[start:start + batch_size], strict=False):
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

        ``class_index`` (an index or a class id) defaults to the predicted class. With ONNX
        Runtime it comes from the graph's class maps (no torch, no autograd:
        :func:`engine.models.gradcam.heat_from_class_map`); else from torch's autograd.
        """
        from engine.models.gradcam import heat_from_class_map, overlay

        rgb = load_image(image) if isinstance(image, (str, Path)) else np.asarray(image)
        stages = preprocess(rgb, self.card.preprocess)
        if isinstance(class_index, str):
            if class_index not in self.classes:
                raise ConfigError(f"unknown class {class_index!r}; the model has {', '.join(self.classes)}")
            class_index = self.classes.index(class_index)
        if class_index is not None and not 0 <= int(class_index) < len(self.classes):
            raise ConfigError(f"class index {class_index} out of range for {len(self.classes)} classes")
        backend = self.backend
        if isinstance(backend, (OnnxBackend, CascadeBackend)) and backend.has_class_maps:
            logits, maps = backend.class_maps(stages.model_input[None])
            index = int(logits[0].argmax()) if class_index is None else int(class_index)
            heat = heat_from_class_map(maps[0, index], self.card.image_size)
        else:
            heat = self._torch_heatmap(stages.model_input, class_index)
        return stages.original, heat, overlay(stages.original, heat)

    def _torch_heatmap(self, model_input: np.ndarray, class_index: int | None) -> np.ndarray:
        require_torch("Grad-CAM for a model whose ONNX graph has no class maps")
        import torch

        from engine.models.gradcam import gradcam

        net, device = self._torch_network()
        x = torch.from_numpy(to_chw_float(model_input, self.card.preprocess)[None]).to(device)
        # Grad-CAM hooks the network: no batch may run through the same network meanwhile.
        guard = self._network_slots if isinstance(self.backend, TorchBackend) else self._torch_lock
        with guard:
            return gradcam(net, self.arch, x, class_index)

    def _torch_network(self):
        """The torch network (Grad-CAM needs gradients): the torch backend's own, or loaded on
        first use beside the ONNX Runtime session."""
        backend = self.backend
        if isinstance(backend, TorchBackend):
            return backend.net, backend.device
        with self._torch_lock:
            if self._loaded is None:
                self._loaded = load_model(self.card)
            return self._loaded.net.to(self.device).eval(), self.device


class _Pipeline:
    """The worker threads behind :meth:`Classifier.classify_paths`.

    Batch ``i`` goes through two jobs, each done by whichever worker is free: *decode*
    (read and preprocess its files) and *network* (run the decoded batch, score it). Network
    jobs are taken in input order, as soon as the model is ready and a network slot is free;
    otherwise a free worker decodes the next batch, if the look-ahead allows one more. The
    consumer (:meth:`take`) collects finished batches in order.
    """

    def __init__(self, classifier: Classifier, source: Iterator[str | Path], batch_size: int,
                 workers: int, ahead: int, preload: int) -> None:
        self._clf = classifier
        self._source = source
        self._batch_size = batch_size
        self._ahead, self._preload = ahead, preload
        self._cond = threading.Condition()
        self._taken = 0  # batches pulled from the source
        self._released = 0  # batches handed to the consumer and finished with
        self._exhausted = False
        self._decoded: dict[int, list[_Prepared]] = {}
        self._next_network = 0
        self._networks_running = 0
        self._done: dict[int, list[ImageResult]] = {}
        self._error: BaseException | None = None
        self._stop = False
        classifier._ready.add_done_callback(lambda _: self._wake())
        self._threads = [threading.Thread(target=self._work, name=f"allsight-classify-{i}")
                         for i in range(workers)]
        for t in self._threads:
            t.start()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _next_job(self) -> tuple[str, int, Any] | None:
        """Under the lock: the next job for a free worker, ``None`` to stop, or wait."""
        while True:
            if self._stop or self._error is not None:
                return None
            ready = self._clf.ready
            if (ready and self._next_network in self._decoded
                    and self._networks_running < self._clf.parallel_batches):
                i = self._next_network
                self._next_network += 1
                self._networks_running += 1
                return "network", i, self._decoded.pop(i)
            limit = self._ahead + 1 if ready else self._preload
            if not self._exhausted and self._taken - self._released < limit:
                chunk = list(islice(self._source, self._batch_size))
                if chunk:
                    self._taken += 1
                    return "decode", self._taken - 1, chunk
                self._exhausted = True
                self._cond.notify_all()  # the consumer may be waiting for the end
                continue
            if self._exhausted and self._next_network >= self._taken:
                return None  # nothing left to decode or to run
            self._cond.wait()

    def _work(self) -> None:
        while True:
            with self._cond:
                try:
                    job = self._next_job()
                except BaseException as exc:  # noqa: BLE001 - the caller's path iterable failed
                    self._error = exc
                    self._cond.notify_all()
                    return
            if job is None:
                return
            kind, index, payload = job
            try:
                if kind == "decode":
                    decoded = [self._clf._prepare_path(p) for p in payload]
                    with self._cond:
                        self._decoded[index] = decoded
                        self._cond.notify_all()
                else:
                    results = self._clf._classify_prepared(payload)
                    with self._cond:
                        self._done[index] = results
                        self._networks_running -= 1
                        self._cond.notify_all()
            except BaseException as exc:  # noqa: BLE001 - e.g. a model that failed to load
                with self._cond:
                    if self._error is None:
                        self._error = exc
                    self._cond.notify_all()
                return

    def take(self, index: int) -> list[ImageResult] | None:
        """Batch ``index``'s results (batches before it are finished with), or ``None`` at the end."""
        with self._cond:
            self._released = index
            self._cond.notify_all()
            while index not in self._done:
                if self._error is not None:
                    raise self._error
                if self._exhausted and index >= self._taken:
                    return None
                self._cond.wait()
            return self._done.pop(index)

    def close(self) -> None:
        """Stop taking jobs and wait for the running ones (at most one batch each)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        for t in self._threads:
            t.join()
