"""Logging to a rotating file in the user's log folder; tracebacks go there, not to the user."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from engine.core.paths import user_dir

_configured = False


def log_dir() -> Path:
    return user_dir("log")


def setup_logging(level: int = logging.INFO) -> Path | None:
    """Configure the root logger once; returns the log file path (None if it cannot be made)."""
    global _configured
    path = log_dir() / "allsight.log"
    if _configured:
        return path
    _configured = True
    root = logging.getLogger()
    root.setLevel(level)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    root.addHandler(handler)
    return path
