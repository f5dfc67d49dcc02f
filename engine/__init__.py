"""ALLSight engine: image loading, preprocessing, models, training, evaluation and inference.

A plain Python library. It never imports Qt, so the CLI, the tests and the GUI all share it;
``cli/`` and ``gui/`` import ``engine/``, never the reverse (the import-linter contracts in
pyproject.toml, checked by ``tests/test_architecture.py``).
"""

from engine._version import __version__
from engine.core.choices import ClassId

CLASS_IDS: tuple[str, ...] = tuple(c.value for c in ClassId)
CLASS_DISPLAY_NAMES: dict[str, str] = {
    "Benign": "Benign (hematogones)",
    "Early": "Early pre-B ALL",
    "Pre": "Pre-B ALL",
    "Pro": "Pro-B ALL",
}

__all__ = ["__version__", "CLASS_IDS", "CLASS_DISPLAY_NAMES"]
