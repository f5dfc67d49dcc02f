"""Which graph runs the network on the CPU: fp32, or INT8 with its fp32 check.

``auto`` (the default; ``$ALLSIGHT_PRECISION`` or ``--precision`` choose otherwise) takes INT8
(:class:`engine.inference.cascade.CascadeBackend`) where the model's card lists an INT8 graph
**and** INT8 measures faster than fp32 on this CPU, counting the share of images its fp32 check
runs again (the card's ``graphs.int8.agreement.fp32_rerun_fraction``). The timing is short
(both single-threaded sessions on a few synthetic batches, ~0.3 s for the ResNet18), done once
per CPU model, ONNX Runtime version and pair of graphs, and remembered in the user cache folder
(``precision.json``): on a CPU without fast 8-bit dot products INT8 can be slower, and then fp32
runs without anyone having to know. ``fp32`` always runs the fp32 graph alone; ``int8`` insists
on the INT8 graph and is an error for a model without one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from engine.core.choices import PrecisionName
from engine.core.errors import ConfigError
from engine.core.fsutil import atomic_write_bytes
from engine.core.paths import user_dir
from engine.inference.cascade import CascadeBackend, Fp32Check
from engine.inference.runtime import OnnxBackend
from engine.models.card import ModelCard
from engine.models.graphs import read_graph

log = logging.getLogger(__name__)

#: INT8 (with its share of fp32 checks) must take at most this fraction of fp32's time to be
#: chosen by ``auto``: a gain inside the timing's noise is not worth numbers that differ.
REQUIRED_TIME_FRACTION = 0.9
#: Share of images assumed to go through the fp32 check when a card does not say.
DEFAULT_RERUN_FRACTION = 0.1
_PROBE_IMAGES, _PROBE_REPEATS = 8, 2


def requested_precision(pref: str | None) -> PrecisionName:
    """``pref`` (``None``: ``$ALLSIGHT_PRECISION``, else auto) as a :class:`PrecisionName`."""
    text = (pref or "auto").strip().lower()
    if text == PrecisionName.AUTO:
        text = os.environ.get("ALLSIGHT_PRECISION", "auto").strip().lower() or "auto"
    try:
        return PrecisionName(text)
    except ValueError:
        raise ConfigError(f"unknown precision {text!r}; use {', '.join(p.value for p in PrecisionName)}") from None


def cache_file() -> Path:
    return user_dir("cache") / "precision.json"


def cpu_identity() -> str:
    """The CPU's model name (what decides INT8's speed), as the OS reports it."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _seconds_per_batch(backend: OnnxBackend, images: np.ndarray) -> float:
    backend.run(images)  # the first call allocates
    best = float("inf")
    for _ in range(_PROBE_REPEATS):
        started = time.perf_counter()
        backend.run(images)
        best = min(best, time.perf_counter() - started)
    return best


def int8_time_fraction(card: ModelCard, int8: OnnxBackend, fp32: OnnxBackend) -> float:
    """INT8's time per image on this CPU, its fp32 checks included, as a fraction of fp32's
    (below 1: faster). Measured once per CPU and pair of graphs, then read from the cache."""
    import onnxruntime

    entry = card.graphs["int8"]
    key = hashlib.sha256("|".join((cpu_identity(), onnxruntime.__version__, str(entry["sha256"]),
                                   str(card.graphs["fp32"]["sha256"]))).encode()).hexdigest()
    path = cache_file()
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    if isinstance(known.get(key), dict) and isinstance(known[key].get("time_fraction"), (int, float)):
        return float(known[key]["time_fraction"])
    size = card.image_size
    images = np.random.default_rng(0).integers(0, 256, (_PROBE_IMAGES, size, size, 3), dtype=np.uint8)
    t_int8, t_fp32 = _seconds_per_batch(int8, images), _seconds_per_batch(fp32, images)
    rerun = float(entry.get("agreement", {}).get("fp32_rerun_fraction", DEFAULT_RERUN_FRACTION))
    fraction = (t_int8 + rerun * t_fp32) / t_fp32
    log.info("%s %s: INT8 with its fp32 check takes %.2f of fp32's time on this CPU (%s)",
             card.id, card.version, fraction, cpu_identity())
    known[key] = {"time_fraction": fraction, "int8_over_fp32": t_fp32 / t_int8, "cpu": cpu_identity(),
                  "model": f"{card.id} {card.version}", "measured": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, (json.dumps(known, indent=2) + "\n").encode())
    except OSError as exc:  # a read-only cache only means measuring again next time
        log.debug("could not remember the precision timing in %s: %s", path, exc)
    return fraction


def int8_measures_faster(card: ModelCard, int8: OnnxBackend, fp32: OnnxBackend) -> bool:
    return int8_time_fraction(card, int8, fp32) <= REQUIRED_TIME_FRACTION


def cpu_backend(card: ModelCard, fp32_graph: bytes, pref: PrecisionName,
                rule: Callable[[Fp32Check], Callable[[np.ndarray, np.ndarray], np.ndarray]],
                ) -> tuple[OnnxBackend | CascadeBackend, PrecisionName]:
    """The ONNX Runtime backend for ``pref``: the fp32 session alone, or INT8 with the fp32
    session as its check (``rule`` builds the classifier's check from the card's bands)."""
    fp32 = OnnxBackend(fp32_graph, 1)
    if pref == PrecisionName.FP32:
        return fp32, PrecisionName.FP32
    int8_graph = read_graph(card, "int8") if "int8" in card.graphs else None
    if int8_graph is None:
        if pref == PrecisionName.INT8:
            raise ConfigError(f"{card.id} {card.version} has no INT8 graph made from its fp32 graph; "
                             "use precision fp32 or auto")
        return fp32, PrecisionName.FP32
    int8 = OnnxBackend(int8_graph, 1)
    if pref == PrecisionName.AUTO and not int8_measures_faster(card, int8, fp32):
        log.info("%s %s: INT8 is not faster on this CPU; running fp32", card.id, card.version)
        return fp32, PrecisionName.FP32
    return CascadeBackend(int8, fp32, rule(Fp32Check.from_entry(card.graphs["int8"]))), PrecisionName.INT8


__all__ = ["DEFAULT_RERUN_FRACTION", "REQUIRED_TIME_FRACTION", "cache_file", "cpu_backend", "cpu_identity",
           "int8_measures_faster", "int8_time_fraction", "requested_precision"]
