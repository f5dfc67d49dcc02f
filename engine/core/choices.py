"""The closed sets of names the engine and both front ends share, as ``StrEnum``s: a member is
its string (``ClassId.PRE == "Pre"``), so cards, CSV files and databases written with the plain
strings read back unchanged, and a typo is an error where the name is parsed.
"""

from __future__ import annotations

from enum import StrEnum


class ClassId(StrEnum):
    """The four classes, in the order of the network's outputs (``engine.CLASS_IDS``)."""

    BENIGN = "Benign"
    EARLY = "Early"
    PRE = "Pre"
    PRO = "Pro"


class BackendName(StrEnum):
    """What runs the network: ``auto`` = ONNX Runtime on the CPU, torch on a GPU."""

    AUTO = "auto"
    ONNX = "onnx"
    TORCH = "torch"


class DeviceName(StrEnum):
    """Where the network runs, as a person or a setting names it (``cuda:1`` is also accepted
    where a device is resolved: :func:`engine.inference.runtime.resolve_device`)."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"


class PrecisionName(StrEnum):
    """Which graph runs the network on the CPU: ``auto`` = INT8 with its fp32 check where the
    model has an INT8 graph and it measures faster on this CPU, else fp32
    (:mod:`engine.inference.precision`)."""

    AUTO = "auto"
    FP32 = "fp32"
    INT8 = "int8"


__all__ = ["BackendName", "ClassId", "DeviceName", "PrecisionName"]
