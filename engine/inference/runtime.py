"""Inference runtimes behind :class:`engine.inference.classifier.Classifier`.

Two backends run the same network and return the same numbers (a test holds them to 1e-4):

* :class:`OnnxBackend` — ONNX Runtime on the CPU, from the cached ONNX copy of the model
  (:mod:`engine.inference.onnx_export`). The default on the CPU: measured 1.5 × torch's throughput
  for the 128-px ResNet18 on the 2-core build machine (`benchmarks/inference.py`), and it
  starts without importing torch.
* :class:`TorchBackend` — PyTorch, for CUDA and Apple MPS, and on the CPU when ONNX Runtime is
  not installed, the export fails, or ``ALLSIGHT_BACKEND=torch`` asks for it.

Both take preprocessed images as uint8 ``(N, S, S, 3)`` RGB arrays and return
``(logits (N, C) float32, pooled features (N, D) float32)``.

Device selection avoids importing torch when no GPU can be present (no NVIDIA device node on
Linux, no ``nvcuda.dll`` on Windows, not Apple silicon): ``auto`` is then simply the CPU.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine.core.choices import BackendName
from engine.core.errors import ConfigError, ModelError
from engine.core.optional import require_torch
from engine.models.graphs import CLASS_MAPS, OUTPUT_NAMES

log = logging.getLogger(__name__)

#: Accepted values of the ``backend`` argument and of ``$ALLSIGHT_BACKEND``.
BACKENDS = tuple(b.value for b in BackendName)


class Backend(Protocol):
    name: str  # "onnxruntime" or "torch"
    device: str  # "cpu", "cuda", "cuda:1", "mps"

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


# ------------------------------------------------------------------------------------ threads
_threads_lock = threading.Lock()
_threads_configured: int | None = None


def configure_threads(n: int | None = None) -> int:
    """Fix the number of compute threads once per process (later calls change nothing).

    ``n`` defaults to ``ALLSIGHT_THREADS`` or the number of CPU cores. Both backends use it;
    torch's own setting is applied when torch is first used. Returns the count in use.
    """
    global _threads_configured
    with _threads_lock:
        if _threads_configured is None:
            if n is None:
                env = os.environ.get("ALLSIGHT_THREADS", "")
                n = int(env) if env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)
            _threads_configured = max(1, int(n))
            if sys.modules.get("torch") is not None:  # imported (a None entry marks it absent)
                _apply_torch_threads()
        return _threads_configured


def limit_numpy_blas_threads() -> None:
    """Run NumPy's BLAS on one thread from now on.

    Classification already spreads images over one worker per core; a BLAS call made from a
    worker (the Mahalanobis product) that starts its own threads only competes with the other
    worker, and OpenBLAS's threads spin while they wait. Measured with ``main.py classify`` on
    500 images on 2 cores: 6.3 → 5.7 CPU-seconds, 3.3 → 3.05 s wall clock. Only libraries
    loaded at the time of the call are limited (threadpoolctl), so torch, if imported later for
    Grad-CAM or training, keeps its own settings.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a declared dependency; without it BLAS keeps its threads
        log.debug("threadpoolctl is not installed; NumPy's BLAS threads are left as they are")
        return
    threadpool_limits(limits=1, user_api="blas")


def _apply_torch_threads() -> None:
    import torch

    if _threads_configured is not None and torch.get_num_threads() != _threads_configured:
        torch.set_num_threads(_threads_configured)


# ------------------------------------------------------------------------------------ devices
def gpu_may_be_present() -> bool:
    """False only when this machine certainly has no GPU torch could use (cheap: no torch)."""
    if sys.platform == "darwin":
        return platform.machine() == "arm64"  # Apple silicon: MPS
    if sys.platform.startswith("linux"):
        dev = Path("/dev")
        return (dev / "nvidiactl").exists() or any(dev.glob("nvidia[0-9]*")) or (dev / "dxg").exists() \
            or (dev / "kfd").exists()  # NVIDIA, WSL2's GPU bridge, AMD ROCm
    if sys.platform == "win32":
        system = Path(os.environ.get("SYSTEMROOT", r"C:\Windows")) / "System32"  # names are case-insensitive there
        return (system / "nvcuda.dll").exists()
    return True


def select_device(pref: Any = "auto") -> Any:
    """A ``torch.device``. ``auto``: CUDA if available, else Apple MPS, else CPU. An explicit GPU
    that is not available raises :class:`ModelError` instead of silently falling back."""
    import torch

    if isinstance(pref, torch.device):
        pref = str(pref)
    pref = (pref or "auto").strip().lower()
    mps_ok = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_ok:
            return torch.device("mps")
        return torch.device("cpu")
    if pref == "cpu":
        return torch.device("cpu")
    if pref == "cuda" or pref.startswith("cuda:"):
        if not torch.cuda.is_available():
            build = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise ModelError(f"device {pref!r} was requested but PyTorch sees no usable CUDA GPU "
                             f"(torch {torch.__version__}, {build}); use --device cpu or auto")
        index = int(pref.split(":", 1)[1]) if ":" in pref else 0
        if index >= torch.cuda.device_count():
            raise ModelError(f"device {pref!r} was requested but only {torch.cuda.device_count()} "
                             f"CUDA GPU(s) are available")
        return torch.device(pref)
    if pref == "mps":
        if not mps_ok:
            raise ModelError("device 'mps' was requested but Apple Metal (MPS) is not available to "
                             "PyTorch on this machine; use --device cpu or auto")
        return torch.device("mps")
    raise ConfigError(f"unknown device {pref!r}; use auto, cpu, cuda or mps")


def resolve_device(pref: Any = "auto") -> str:
    """The device name for ``pref``; imports torch only when a GPU could be involved."""
    from engine.core.optional import torch_available

    text = str(pref or "auto").strip().lower()
    if text == "cpu" or (text == "auto" and not (gpu_may_be_present() and torch_available())):
        return "cpu"  # without torch (the lean install) a GPU cannot be used: auto is the CPU
    if text not in ("auto", "cuda", "mps") and not text.startswith("cuda:"):
        raise ConfigError(f"unknown device {pref!r}; use auto, cpu, cuda or mps")
    require_torch(f"running the network on the GPU ({text})")
    return str(select_device(text))


def resolve_backend(pref: str | None, device: str) -> BackendName:
    """``onnx`` or ``torch`` for ``pref`` (``auto`` if None; ``$ALLSIGHT_BACKEND`` overrides auto)."""
    text = (pref or "auto").strip().lower()
    if text == "auto":
        text = os.environ.get("ALLSIGHT_BACKEND", "auto").strip().lower() or "auto"
    if text not in BACKENDS:
        raise ConfigError(f"unknown backend {text!r}; use {', '.join(BACKENDS)}")
    if text == "onnx" and device != "cpu":
        raise ConfigError(f"the ONNX Runtime backend runs on the CPU only, not on {device}")
    if text == BackendName.AUTO:
        return BackendName.ONNX if device == "cpu" and onnxruntime_available() else BackendName.TORCH
    return BackendName(text)


def onnxruntime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def describe_runtime(device: Any, backend: str = "", precision: str = "fp32") -> str:
    """What runs the network, for people: "CPU (ONNX Runtime)", "CPU (ONNX Runtime, INT8)",
    "CPU (torch)", "CUDA (<GPU name>)", "MPS (Apple GPU)". ``backend`` is a backend's ``name``;
    ``precision`` "int8" means the INT8 graph with its fp32 check (engine.inference.cascade)."""
    kind = getattr(device, "type", str(device).split(":")[0]).lower()
    if backend == "onnxruntime":
        return f"{kind.upper()} (ONNX Runtime{', INT8' if precision == 'int8' else ''})"
    if kind == "cuda":
        try:
            import torch

            return f"CUDA ({torch.cuda.get_device_name(device)})"
        except Exception:  # noqa: BLE001 - a label only
            return "CUDA"
    if kind == "mps":
        return "MPS (Apple GPU)"
    return f"{kind.upper()} (torch)" if backend == "torch" else kind.upper()


# ----------------------------------------------------------------------------------- backends
class OnnxBackend:
    """ONNX Runtime on the CPU, from an exported graph (see :mod:`engine.inference.onnx_export`)."""

    name = "onnxruntime"
    device = "cpu"

    def __init__(self, graph: bytes, threads: int) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - resolve_backend checks first
            raise ModelError(f"ONNX Runtime is not installed ({exc})") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initialisers are noise here
        # Idle compute threads sleep instead of spinning, so the decoding threads get the cores
        # between batches.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types
            raise ModelError(f"ONNX Runtime cannot load the model graph ({type(exc).__name__}: {exc})") from None
        self._input = self.session.get_inputs()[0].name
        self.threads = options.intra_op_num_threads
        #: Whether the graph returns the class maps Grad-CAM is made from (engine.models.graphs).
        self.has_class_maps = CLASS_MAPS in {o.name for o in self.session.get_outputs()}

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, features = self.session.run(list(OUTPUT_NAMES), {self._input: np.ascontiguousarray(images, np.uint8)})
        return np.asarray(logits, np.float32), np.asarray(features, np.float32)

    def class_maps(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(logits (N, C), class maps (N, C, h, w))``; only for a graph that has them."""
        if not self.has_class_maps:
            raise ModelError("this model's ONNX graph has no class maps (its head is not linear)")
        logits, maps = self.session.run(["logits", CLASS_MAPS], {self._input: np.ascontiguousarray(images, np.uint8)})
        return np.asarray(logits, np.float32), np.asarray(maps, np.float32)


class TorchBackend:
    """PyTorch on any device; channels-last on the CPU (measured 28 % faster there for ResNet18)."""

    name = "torch"

    def __init__(self, loaded: Any, device: str) -> None:
        require_torch("the torch backend")
        import torch

        from engine.inference.ood import feature_layers_of
        from engine.models.registry import get_spec

        _apply_torch_threads()
        self._torch = torch
        self.device = device
        self.card = loaded.card
        self.net = loaded.net.to(device).eval()
        self.channels_last = device == "cpu"
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        names = feature_layers_of(self.card.ood, get_spec(self.card.architecture).feature_layer)
        self.feature_layers = [self.net.get_submodule(n) for n in names]

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from engine.imaging.preprocess import to_chw_float
        from engine.inference.predict import pooled_features

        torch = self._torch
        x = torch.from_numpy(to_chw_float(np.asarray(images, np.uint8), self.card.preprocess)).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            with pooled_features(self.net, self.feature_layers) as store:
                logits = self.net(x)
            features = store[0].cpu().numpy()
        return logits.float().cpu().numpy(), features.astype(np.float32)
