"""Engine exception types. Every message is written for a person, and names the file involved.

The worker boundary (CLI or GUI) catches :class:`AllSightError`, shows ``str(err)`` and logs the
traceback; anything else reaching the boundary is a bug.
"""

from __future__ import annotations

from pathlib import Path


class AllSightError(Exception):
    """Base class of every error the engine raises on purpose."""


class ImageLoadError(AllSightError):
    """An image file could not be read. ``path`` and ``reason`` are kept for reports and CSVs."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ImageTooLargeError(ImageLoadError):
    """The image has more pixels than the configured limit (decompression-bomb guard)."""


class ConfigError(AllSightError):
    """A configuration value is invalid."""


class DataLayoutError(AllSightError):
    """A training/evaluation folder does not have the expected class-folder layout."""


class ModelError(AllSightError):
    """A model could not be built, found or loaded."""


class ModelIntegrityError(ModelError):
    """A weights file does not match the sha256 recorded in its model card."""


class MissingExtraError(ModelError):
    """What was asked for needs a part this installation lacks (PyTorch, in the lean install).

    A :class:`ModelError` because the torch-backed model paths raise it where they would have
    loaded a network; the ONNX path's automatic fallback never swallows it."""


class Cancelled(AllSightError):
    """A long operation was cancelled by the user."""

    def __init__(self, message: str = "Cancelled by the user."):
        super().__init__(message)
