"""The active model: a classifier process for the batch queue, an in-process one for Grad-CAM.

:class:`ModelHost` is Qt-free and thread-safe and loads nothing at start-up.

* :meth:`ModelHost.batch_classifier` starts an :class:`engine.inference.process.ClassifierProcess`
  for the current :class:`ModelSpec` (from the batch thread, or the warm-up a second after
  launch) and keeps it while the spec is unchanged. Classification runs there, not in this
  process: its many short NumPy calls would otherwise share the GIL with the event loop and
  stall the window (docs/performance.md).
* :meth:`ModelHost.get` loads the same model in this process, on request, for Grad-CAM. On the
  CPU that is ONNX Runtime with the model's graph, whose class maps give Grad-CAM without torch
  (:func:`engine.models.gradcam.heat_from_class_map`); torch is loaded only for a GPU or a graph
  without class maps. Native libraries are mapped first with the GIL released
  (:func:`preload_onnxruntime_library`, :func:`preload_torch_libraries`), so the GUI thread keeps
  running meanwhile.

Changing the settings that define the model (model, device, review threshold override) retires
both: a process still running a job finishes it and is closed at the next request.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.core.progress import CancelToken

log = logging.getLogger("allsight.gui.model_host")


#: The classifier process runs at a lower CPU priority than the app (Unix ``nice``), so the event
#: loop gets a core first on a machine with few of them.
CLASSIFIER_NICENESS = 10


@dataclass(frozen=True)
class ModelSpec:
    """What defines the loaded model: the settings it came from."""

    model: str
    device: str = "auto"
    review_threshold: float | None = None
    #: "auto", "fp32" or "int8" (engine.inference.precision).
    precision: str = "auto"


def default_thread_count() -> int:
    """Compute threads for the GUI's model: every core but one (the event loop keeps a core),
    unless ``ALLSIGHT_THREADS`` says otherwise."""
    env = os.environ.get("ALLSIGHT_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 1) - 1)


def classifier_process_threads() -> int:
    """Compute threads for the classifier process: every core (``ALLSIGHT_THREADS`` overrides).

    It runs at :data:`CLASSIFIER_NICENESS`, so the scheduler gives the event loop a core the
    moment it wants one; a core held back from it (as :func:`default_thread_count` does for work
    in the app's own process) only left the batch at half the CLI's speed on two cores
    (docs/performance.md, issue #17)."""
    env = os.environ.get("ALLSIGHT_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, os.cpu_count() or 1)


class ModelHost:
    """Loads the classifier for a :class:`ModelSpec` on first use (thread-safe)."""

    def __init__(self, spec: ModelSpec):
        self._spec = spec
        self._lock = threading.Lock()  # guards the fields below; never held while loading
        self._load_lock = threading.Lock()  # one load at a time (held for seconds: never in the GUI thread)
        self.infer_lock = threading.Lock()  # one Grad-CAM pass on the in-process network at a time
        self._classifier = None
        self._loaded_spec: ModelSpec | None = None
        self._process = None  # engine.inference.process.ClassifierProcess
        self._process_spec: ModelSpec | None = None
        self._retired: list = []  # processes of an older spec, closed once their job ends
        self._warm_up: threading.Thread | None = None
        self._warm_up_cancel: CancelToken | None = None

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    def configure(self, spec: ModelSpec) -> bool:
        """Use ``spec`` from the next request on (a running batch keeps its classifier).
        Returns True when it differs from the loaded one."""
        with self._lock:
            self._spec = spec
            stale_classifier = spec != self._loaded_spec
            stale_process = self._process is not None and spec != self._process_spec
            if stale_classifier:
                self._classifier = None  # released when the last user drops it
                self._loaded_spec = None
            if stale_process:
                self._retired.append(self._process)
                self._process, self._process_spec = None, None
            return stale_classifier or stale_process

    def loaded(self):
        """The batch classifier process if running for the current spec, else the in-process
        classifier if loaded for it, else None (never loads)."""
        with self._lock:
            if self._process is not None and self._process_spec == self._spec and self._process.alive:
                return self._process
            return self._classifier if self._loaded_spec == self._spec else None

    def expected_weights_sha256(self) -> str | None:
        """The sha256 of the current spec's weights as its card states it, read without loading
        anything (a few ms), or None when the card cannot be read (loading then says why). The
        classifier checks the weights against it when it loads; the batch thread uses it to plan
        a job while the classifier process starts."""
        from engine.core.errors import AllSightError
        from engine.models.resolve import resolve_model_card

        spec = self.spec
        try:
            return resolve_model_card(spec.model).weights_sha256 or None
        except (AllSightError, OSError, ValueError):
            return None

    def batch_classifier(self, cancel=None):
        """The classifier process for the current spec, started if needed (call in a worker
        thread: starting one takes seconds). Raises the engine's
        :class:`~engine.core.errors.ModelError` (no such model, corrupt weights, device unavailable,
        the process died...) for the caller's error path; ``cancel`` (a CancelToken) stops a start
        in progress with :class:`~engine.core.errors.Cancelled`."""
        from engine.inference.process import ClassifierProcess

        with self._load_lock:
            with self._lock:
                self._close_retired()
                if self._process is not None and self._process_spec == self._spec and self._process.alive:
                    return self._process
                if self._process is not None:  # died: start a fresh one
                    self._retired.append(self._process)
                    self._process = None
                spec = self._spec
            log.info("starting the classifier process for model %s on %s", spec.model, spec.device)
            process = ClassifierProcess(spec.model, spec.device, review_threshold=spec.review_threshold,
                                        threads=classifier_process_threads(), nice=CLASSIFIER_NICENESS, cancel=cancel,
                                        precision=spec.precision)
            log.info("model %s %s loaded on %s (review threshold %.3f)", process.card.id, process.card.version,
                     process.runtime, process.card.review_threshold)
            with self._lock:
                if self._spec == spec:  # still wanted (the settings may have changed meanwhile)
                    self._process, self._process_spec = process, spec
                else:
                    self._retired.append(process)
            return process

    def warm_up(self) -> None:
        """Start the classifier process for the current spec in a thread of its own and return
        at once (the app calls it as its window shows, so the first Classify finds the model
        loaded: issue #17). A failure is only logged: the batch's own request reports it.
        :meth:`release` stops a warm-up still loading."""
        from engine.core.progress import CancelToken

        with self._lock:
            if self._warm_up is not None and self._warm_up.is_alive():
                return
            if self._process is not None and self._process_spec == self._spec and self._process.alive:
                return
            token = CancelToken()
            thread = threading.Thread(target=self._run_warm_up, args=(token,), name="allsight-model-warm-up")
            self._warm_up, self._warm_up_cancel = thread, token
        thread.start()

    def _run_warm_up(self, cancel: CancelToken) -> None:
        from engine.core.errors import AllSightError, Cancelled

        try:
            self.batch_classifier(cancel=cancel)
        except Cancelled:
            log.info("model warm-up stopped")
        except AllSightError as exc:
            log.info("model warm-up failed: %s", exc)
        except Exception:
            log.exception("model warm-up failed unexpectedly")

    def _close_retired(self) -> None:
        """Close retired processes that are not running a job (caller holds ``_lock``)."""
        keep = []
        for process in self._retired:
            if process.busy:
                keep.append(process)
            else:
                process.close()
        self._retired = keep

    def get(self):
        """The in-process classifier for the current spec, loading it if needed (worker thread;
        Grad-CAM uses it).

        Raises the engine's :class:`~engine.core.errors.ModelError` (no such model, corrupt weights,
        device unavailable...) for the caller's error path.
        """
        with self._load_lock:
            with self._lock:
                if self._classifier is not None and self._loaded_spec == self._spec:
                    return self._classifier
                spec = self._spec
            from engine.inference.classifier import Classifier, configure_threads
            from engine.inference.runtime import resolve_backend, resolve_device

            configure_threads(default_thread_count())
            # Native libraries mapped with the GIL released: keeps the GUI thread from
            # freezing while they load.
            if resolve_backend("auto", resolve_device(spec.device)) == "torch":
                preload_torch_libraries()
            else:
                preload_onnxruntime_library()
            log.info("loading model %s on %s in the app process", spec.model, spec.device)
            # A model's ONNX copy is exported in a child process: importing torch here would
            # hold the GIL long enough to freeze the window.
            classifier = Classifier(spec.model, spec.device, isolate_export=True, precision=spec.precision)
            if spec.review_threshold is not None:
                classifier.card = dataclasses.replace(classifier.card, review_threshold=float(spec.review_threshold))
            with self._lock:
                if self._spec == spec:  # still wanted (the settings may have changed meanwhile)
                    self._classifier, self._loaded_spec = classifier, spec
            return classifier

    def heatmap(self, path: str | Path, class_id: str | None = None):
        """Grad-CAM of one image: ``(resized original, heat, overlay)`` (worker thread)."""
        classifier = self.get()
        with self.infer_lock:
            return classifier.heatmap(path, class_id)

    def release(self) -> None:
        """Drop the in-process classifier and close every classifier process (the batch queue
        has been shut down first). A warm-up still loading is stopped and waited for (its cancel
        is seen within a poll of the child's pipe); any other load in progress is not."""
        with self._lock:
            warm_up, cancel = self._warm_up, self._warm_up_cancel
            self._warm_up = self._warm_up_cancel = None
        if warm_up is not None and cancel is not None:
            cancel.cancel()
            warm_up.join(10)
        with self._lock:
            self._classifier = None
            self._loaded_spec = None
            processes = [p for p in [self._process, *self._retired] if p is not None]
            self._process, self._process_spec, self._retired = None, None, []
        for process in processes:
            process.close()


def _dlopen_without_gil(files: list[tuple[Path, int]]) -> bool:
    """``dlopen`` each (path, flags) through ctypes, which releases the GIL for the call."""
    import ctypes

    libc = ctypes.CDLL(None)
    dlopen = libc.dlopen
    dlopen.restype = ctypes.c_void_p
    dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    for path, flags in files:
        if not dlopen(str(path).encode(), flags):  # a foreign call: the GIL is released meanwhile
            log.debug("preloading %s failed; it will be loaded by its import", path)
            return False
    return True


def _package_root(name: str) -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def preload_torch_libraries() -> bool:
    """Map torch's native libraries into the process with the GIL released (Linux).

    ``import torch`` loads several hundred MB of shared libraries; Python's import machinery
    does that while holding the GIL, which froze the GUI thread for about a quarter of a second
    when the batch thread first imported torch. Calling the C library's ``dlopen`` through ctypes
    releases the GIL for the call, so loading the same files first, with the same flags torch and
    Python use (``libtorch_global_deps`` global, the ``_C`` extension local, both immediate),
    leaves ``import torch`` only the module initialisation. Best effort: returns False and
    changes nothing where it does not apply.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux") or "torch" in sys.modules:
        return False
    try:
        root = _package_root("torch")
        if root is None:
            return False
        global_deps = root / "lib" / "libtorch_global_deps.so"
        extensions = sorted(root.glob("_C.*.so"))
        if not global_deps.is_file() or len(extensions) != 1:
            return False
        rtld_now = 2
        return _dlopen_without_gil([(global_deps, rtld_now | ctypes.RTLD_GLOBAL),
                                    (extensions[0], rtld_now | ctypes.RTLD_LOCAL)])
    except Exception:
        log.debug("preloading torch's libraries failed", exc_info=True)
        return False


def preload_onnxruntime_library() -> bool:
    """The same for ONNX Runtime's extension module (~30 MB of native code): on a cold disk
    cache its first import stalled the GUI thread for up to ~0.14 s."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux") or "onnxruntime" in sys.modules:
        return False
    try:
        root = _package_root("onnxruntime")
        extensions = sorted((root / "capi").glob("onnxruntime_pybind11_state*.so")) if root else []
        if len(extensions) != 1:
            return False
        return _dlopen_without_gil([(extensions[0], 2 | ctypes.RTLD_LOCAL)])
    except Exception:
        log.debug("preloading ONNX Runtime's library failed", exc_info=True)
        return False
