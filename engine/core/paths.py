"""The per-user folders ALLSight writes to, one lookup for all of them.

Each folder is the platform's own (``platformdirs``: ``~/.config/ALLSight`` and the like on
Linux, ``%LOCALAPPDATA%\\ALLSight`` on Windows, ``~/Library/...`` on macOS) unless an environment
variable names another; tests, benchmarks and locked-down lab machines use the variables. Nothing
is created here, and nothing ever goes into the install folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

APP_NAME = "ALLSight"

UserFolder = Literal["config", "data", "cache", "log"]

#: folder -> (environment variable that overrides it, platformdirs function)
_FOLDERS: dict[str, tuple[str, str]] = {
    "config": ("ALLSIGHT_CONFIG_DIR", "user_config_dir"),  # settings.json
    "data": ("ALLSIGHT_DATA_DIR", "user_data_dir"),  # the result database
    "cache": ("ALLSIGHT_CACHE_DIR", "user_cache_dir"),  # exported ONNX graphs
    "log": ("ALLSIGHT_LOG_DIR", "user_log_dir"),  # allsight.log
}


def user_dir(kind: UserFolder) -> Path:
    """The folder for ``kind``: ``$ALLSIGHT_<KIND>_DIR`` when set and not empty, else the
    platform's per-user folder for ALLSight."""
    variable, function = _FOLDERS[kind]
    override = os.environ.get(variable)
    if override:
        return Path(override)
    import platformdirs

    return Path(getattr(platformdirs, function)(APP_NAME, appauthor=False))
