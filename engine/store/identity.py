"""What the result store knows of an image file: its sha256 and the identity (size, mtime) that
tells when to hash it again.

Only regular files are read, never more than :data:`MAX_HASHED_FILE_BYTES`: a pipe, a device or a
link to one is recorded without a hash and never blocks (:func:`file_state`). The store compares
:func:`file_identity` with what it stored to decide whether a file must be hashed again, so a file
is hashed once per content, not once per run.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass

from engine.io.images import MAX_FILE_BYTES

#: The largest image file the store hashes: the image loader's own file-size limit
#: (:data:`engine.io.images.MAX_FILE_BYTES`, ``$ALLSIGHT_MAX_IMAGE_MB``), so that a file is hashed
#: exactly when it is small enough to be classified. A larger one is recorded with no hash, like an
#: unreadable one (its classification fails for its size anyway), and is not read at all.
MAX_HASHED_FILE_BYTES: int = MAX_FILE_BYTES

_CHUNK = 1 << 20
# O_NONBLOCK: opening a FIFO that replaced the file between stat and open must not wait for a
# writer. It changes nothing for a regular file. (Windows has neither FIFOs nor the flag.)
_O_READ = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)


@dataclass(frozen=True)
class FileState:
    """What the store keeps of a file: its sha256 and the identity (size, mtime in ns) that tells
    when to hash it again. All ``None`` for a file that is missing or not a regular file; only
    ``sha256`` is ``None`` for a regular file that cannot be read or is too large."""

    sha256: str | None = None
    size: int | None = None
    mtime_ns: int | None = None


def _stat(path: str | os.PathLike[str]) -> os.stat_result | None:
    try:
        return os.stat(path)  # follows links: a link to an image is that image
    except (OSError, ValueError):  # ValueError: a NUL in the name
        return None


def file_identity(path: str | os.PathLike[str]) -> tuple[int | None, int | None]:
    """``(size, mtime_ns)`` of a regular file, ``(None, None)`` for anything else: compared
    with the stored values to decide whether the file must be hashed again."""
    st = _stat(path)
    if st is None or not stat.S_ISREG(st.st_mode):
        return None, None
    return st.st_size, st.st_mtime_ns


def file_state(path: str | os.PathLike[str], max_bytes: int = MAX_HASHED_FILE_BYTES) -> FileState:
    """The file's sha256 and identity. Only a regular file is opened (checked before opening, and
    again on the open descriptor), and only one of at most ``max_bytes``: a FIFO, a device (or a
    link to ``/dev/zero``) or a folder is never read, so this never blocks nor reads without end."""
    st = _stat(path)
    if st is None or not stat.S_ISREG(st.st_mode):
        return FileState()
    if st.st_size > max_bytes:
        return FileState(None, st.st_size, st.st_mtime_ns)
    try:
        fd = os.open(path, _O_READ)
    except OSError:
        return FileState(None, st.st_size, st.st_mtime_ns)
    with open(fd, "rb", buffering=0) as f:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):  # swapped for something else between stat and open
            return FileState()
        identity = (fst.st_size, fst.st_mtime_ns)
        if fst.st_size > max_bytes:
            return FileState(None, *identity)
        digest, total = hashlib.sha256(), 0
        try:
            while chunk := f.read(min(_CHUNK, max_bytes + 1 - total)):
                total += len(chunk)
                if total > max_bytes:  # grew while being read
                    return FileState(None, *identity)
                digest.update(chunk)
        except OSError:
            return FileState(None, *identity)
    # The identity is the one from before reading: a file changed while it was read has another
    # size or mtime by now, so the next run hashes it again.
    return FileState(digest.hexdigest(), *identity)


def hash_file(path: str | os.PathLike[str], max_bytes: int = MAX_HASHED_FILE_BYTES) -> str | None:
    """sha256 (hex) of a file's content, read in 1 MiB chunks; ``None`` if it cannot be read, is
    not a regular file (a FIFO, a device, a folder: never opened) or is larger than ``max_bytes``."""
    return file_state(path, max_bytes).sha256


__all__ = ["MAX_HASHED_FILE_BYTES", "FileState", "file_identity", "file_state", "hash_file"]
