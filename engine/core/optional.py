"""What the lean install lacks, said in one line.

The lean install (``pip install .``, the default executable) classifies, reviews, signs off
and reports with ONNX Runtime; PyTorch comes with the ``train`` extra and is needed only to
train, for the retraining wizard, to export a new model's ONNX graph, for ``--backend torch``
and for GPUs. Code that needs it calls :func:`require_torch` first, so the user reads what to
install instead of a ``ModuleNotFoundError`` traceback.
"""

from __future__ import annotations

import importlib.util

from engine.core.errors import MissingExtraError

#: What to install for everything the lean install lacks.
TRAIN_EXTRA = "pip install 'allsight[train]'"


def torch_available() -> bool:
    """Whether PyTorch (and torchvision) can be imported, without importing them."""
    try:
        return importlib.util.find_spec("torch") is not None and importlib.util.find_spec("torchvision") is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules (the tests' lean simulation)
        return False


def require_torch(purpose: str) -> None:
    """Raise :class:`MissingExtraError` naming ``purpose`` unless PyTorch is installed."""
    if not torch_available():
        raise MissingExtraError(f"{purpose} needs PyTorch, which this installation does not include "
                                f"(the lean, classify-only install); install the training extra: {TRAIN_EXTRA}")
