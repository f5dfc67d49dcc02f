"""Writing report files atomically: each file is written next to its target under a temporary
name and renamed into place, so a failure (full disk, cancellation, a bug) never leaves half a
file and never damages an existing report of the same name. File-system failures are raised as
:class:`~engine.reports.sample.ReportError` naming the path and the reason.

:func:`atomic_write` writes a file in one call; :class:`AtomicFile` is the streaming variant
(write as you go, :meth:`~AtomicFile.commit` at the end, :meth:`~AtomicFile.abort` on failure).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO, cast

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
    """Run ``write(fileobj)`` into a temporary file beside ``path``, then rename it into place
    (missing folders are created; a link is followed, a device written directly: :class:`AtomicFile`)."""
    sink = AtomicFile(path, what, binary=True)
    try:
        write(cast(BinaryIO, sink.handle))
        sink.commit()
    except BaseException as exc:
        sink.abort()
        if isinstance(exc, OSError):
            raise sink.error(exc) from exc
        raise
    return Path(path)


#: Folders of special files (devices, a process's open files: ``/dev/stdout``, ``/dev/fd/1``):
#: a target there is never replaced by a rename, only written.
_SPECIAL_FOLDERS = ("/dev", "/proc")


def written_in_place(path: str | Path) -> bool:
    """True when ``path`` is a special file that is written directly, never replaced: it exists
    and is not a regular file or a folder (a terminal, a pipe, ``/dev/null``), or it lies in
    ``/dev`` or ``/proc`` (``/dev/stdout`` of a shell's ``> file`` is a link to that file)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return False
    if stat.S_ISDIR(st.st_mode):
        return False
    if not stat.S_ISREG(st.st_mode):
        return True
    absolute = os.path.abspath(path)
    return os.name == "posix" and any(absolute.startswith(f + "/") for f in _SPECIAL_FOLDERS)


def _shareable(path: str) -> None:
    umask = os.umask(0)  # mkstemp makes 0600 files; outputs are meant to be shared
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


class AtomicFile:
    """A file (text, or bytes with ``binary=True``) written under a temporary name beside its
    target and renamed into place by :meth:`commit`: until then an existing file at the target is
    untouched, and :meth:`abort` (or any failed write) removes the temporary file. Every
    file-system failure is a :class:`~engine.reports.sample.ReportError` naming the target and
    the reason.

    A symbolic link is followed: the file it points to is replaced, the link stays. A special
    file (a terminal, a pipe, ``/dev/null``, ``/dev/stdout``: :func:`written_in_place`) cannot be
    renamed over: it is written directly (:attr:`direct`).

    Use it as a context manager (commit on success, abort on an exception) or, to put several
    files in place together, call :meth:`prepare` on each (everything written, flushed and
    synced: where a full disk shows) and then :meth:`commit` on each; :meth:`abort` the rest.
    """

    def __init__(self, path: str | Path, what: str = "report", *, encoding: str = "utf-8", newline: str = "",
                 create_folders: bool = True, binary: bool = False) -> None:
        self.path = Path(path)
        self.what = what
        self.direct = False
        self._tmp: str | None = None
        self._closed = self._done = self._aborted = False
        real = os.path.realpath(self.path)
        self._target = real
        try:
            if os.path.isdir(self.path):
                raise ReportError(f"Cannot write the {what} to {self.path}: that path is a folder")
            mode, enc, nl = ("wb", None, None) if binary else ("w", encoding, newline)
            if written_in_place(self.path):
                self.direct = True
                self._fh: IO[Any] = open(self.path, mode, encoding=enc, newline=nl)  # noqa: SIM115
                return
            folder = os.path.dirname(real)
            if create_folders:
                os.makedirs(folder, exist_ok=True)
            fd, self._tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(real)[:40]}.", suffix=".tmp")
            self._fh = os.fdopen(fd, mode, encoding=enc, newline=nl)
        except OSError as exc:
            self.abort()
            raise self.error(exc) from exc

    def error(self, exc: OSError) -> ReportError:
        """The error naming this file and ``exc``'s reason in words."""
        return ReportError(f"Cannot write the {self.what} to {self.path}: {os_reason(exc)}")

    @property
    def handle(self) -> IO[Any]:
        """The open file (text, or bytes with ``binary=True``); its OSErrors are not translated."""
        return self._fh

    @property
    def temporary_path(self) -> Path | None:
        """Where the content is until :meth:`commit` (``None`` when written directly)."""
        return Path(self._tmp) if self._tmp else None

    def write(self, text: Any) -> int:
        try:
            return self._fh.write(text)
        except OSError as exc:
            self.abort()
            raise self.error(exc) from exc

    def flush(self) -> None:
        try:
            self._fh.flush()
        except OSError as exc:
            self.abort()
            raise self.error(exc) from exc

    def prepare(self) -> None:
        """Write out, sync and close the file (not yet in place): a full disk fails here."""
        if self._closed:
            return
        try:
            self._fh.flush()
            if not self.direct:
                os.fsync(self._fh.fileno())
            self._closed = True
            self._fh.close()
        except OSError as exc:
            self.abort()
            raise self.error(exc) from exc

    def commit(self) -> Path:
        """Put the file in place (:meth:`prepare` first if needed); returns the target."""
        if self._aborted:
            raise ReportError(f"Cannot write the {self.what} to {self.path}: it was abandoned after an error")
        if self._done:
            return self.path
        self.prepare()
        if self._tmp is not None:
            try:
                _shareable(self._tmp)
                os.replace(self._tmp, self._target)
            except OSError as exc:
                self.abort()
                raise self.error(exc) from exc
            self._tmp = None
        self._done = True
        return self.path

    def abort(self) -> None:
        """Drop what was written: the temporary file is removed, the target left as it was."""
        if self._done:
            return  # committed already, or aborted
        self._done = self._aborted = True
        if not self._closed and hasattr(self, "_fh"):
            self._closed = True
            with contextlib.suppress(OSError, ValueError):
                self._fh.close()  # may fail again to flush its buffer: nothing of it is kept
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
            self._tmp = None

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


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
