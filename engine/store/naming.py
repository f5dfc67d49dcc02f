"""How a set of image files becomes a named sample, for both front ends.

A folder opened or named on the command line is one sample named after the folder; image files
picked one by one form one sample named after their common folder, or :data:`LOOSE_SAMPLE_ID`
when they lie in several folders. Which stored sample that is, and the ``name (2)`` of a second
folder with the same name, is :meth:`engine.store.results.ResultStore.register_sample`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

#: The name of a sample of image files from several folders.
LOOSE_SAMPLE_ID = "loose-files"


def image_key(path: str | os.PathLike[str]) -> str:
    """The key the result store files a path (image or folder) under: absolute, normalised,
    symbolic links left alone (so a link and its target are two images)."""
    return os.path.abspath(os.fspath(path))


def storable(path: str | os.PathLike[str]) -> bool:
    """Whether the store can file ``path`` under its name: SQLite keeps text as UTF-8, and a
    file name with bytes that are not UTF-8 (Python holds them as lone surrogates) has no UTF-8
    spelling that leads back to the same file."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def loose_files_folder(paths: Iterable[str | os.PathLike[str]]) -> str:
    """The one folder that holds all of ``paths`` directly (absolute), or "" when there are several."""
    parents = {os.path.dirname(os.path.abspath(os.fspath(p))) for p in paths}
    return parents.pop() if len(parents) == 1 else ""


def sample_name(folder: str | os.PathLike[str]) -> str:
    """The name of the sample of ``folder`` ("" -> :data:`LOOSE_SAMPLE_ID`)."""
    text = os.fspath(folder)
    return (Path(text).name or text) if text else LOOSE_SAMPLE_ID


__all__ = ["LOOSE_SAMPLE_ID", "image_key", "loose_files_folder", "sample_name", "storable"]
