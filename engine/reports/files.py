"""Writing report files atomically: each file is written next to its target under a temporary
name and renamed into place, so a failure (full disk, cancellation, a bug) never leaves half a
file and never damages an existing report of the same name. File-system failures are raised as
:class:`~engine.reports.sample.ReportError` naming the path and the reason.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from engine.core.errors import Cancelled
from engine.reports.sample import ReportError

log = logging.getLogger(__name__)


# ============================================================================ atomic writing
_OS_REASONS = {
    errno.ENOSPC: "the disk is full (no space left on device)",
    errno.EACCES: "permission denied (the folder is not writable)",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "the disk or folder is read-only",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "the path is a folder",
    errno.EEXIST: "a file of that name is in the way",
    errno.ENOENT: "the folder does not exist",
}
if hasattr(errno, "EDQUOT"):
    _OS_REASONS[errno.EDQUOT] = "the disk quota is exceeded"


def os_reason(exc: OSError) -> str:
    return _OS_REASONS.get(exc.errno or -1) or exc.strerror or str(exc) or type(exc).__name__


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object], what: str = "report") -> Path:
    """Run ``write(fileobj)`` into a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    try:
        if path.is_dir():
            raise ReportError(f"Cannot write the {what} to {path}: that path is a folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:40]}.", suffix=".tmp")
    except OSError as exc:
        raise ReportError(f"Cannot write the {what} to {path}: {os_reason(exc)}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)  # mkstemp makes 0600 files; reports are meant to be shared
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ReportError(f"Cannot write the {what} to {path}: {os_reason(exc)}") from exc
        raise
    return path


def cancel_check(cancel: Any) -> Callable[[], None]:
    """Accept a CancelToken (``raise_if_cancelled``), a callable returning True, or None."""
    if cancel is None:
        return lambda: None
    if hasattr(cancel, "raise_if_cancelled"):
        return cancel.raise_if_cancelled

    def check() -> None:
        if cancel():
            raise Cancelled()

    return check
