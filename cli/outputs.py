"""What a command writes, checked before it reads or writes anything else.

The rules (``classify`` and ``evaluate``; a breach is a usage error: one ``error:`` line naming
both paths, exit 2, nothing written):

* no output may be an input: an image found in the inputs, a file named as an input, an input
  folder, the result database (``--db``) or the model's files;
* no two outputs may be the same file (``--out`` and ``--json``, a per-sample PDF, a heat map);
* an output with an image file name (``.png``, ``.jpg``... :data:`engine.io.images.IMAGE_EXTENSIONS`)
  may not lie inside an input folder, where the next run would take it for an image of the
  sample; a ``--heatmaps`` folder may not lie inside an input folder at all. Other files
  (``results.csv``, ``report.pdf``) may.

Paths are compared after resolving symbolic links and ``..``, and by file identity (device and
inode, as :func:`os.path.samefile`) where the file exists, so a link or a hard link to an input
counts as that input.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.core.errors import AllSightError


@dataclass(frozen=True)
class Output:
    """One path a command will write: the option that names it, and whether it is a folder."""

    option: str
    path: Path
    folder: bool = False


def _key(path: str | os.PathLike[str]) -> str:
    return os.path.normcase(os.path.realpath(path))


def _identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino)


def _inside(key: str, folder_key: str) -> bool:
    try:
        return os.path.commonpath([key, folder_key]) == folder_key
    except ValueError:  # different drives
        return False


class OutputGuard:
    """The inputs of one run; :meth:`check` refuses outputs that would replace one of them or
    each other (the module's rules)."""

    def __init__(self, *, images: Iterable[Path] = (), files: Iterable[Path] = (), folders: Iterable[Path] = (),
                 protected: Iterable[tuple[str, Path]] = ()) -> None:
        self._by_key: dict[str, str] = {}
        self._by_identity: dict[tuple[int, int], str] = {}
        self._folders: list[tuple[str, Path]] = []

        def add(what: str, path: Path) -> None:
            self._by_key.setdefault(_key(path), what)
            ident = _identity(path)
            if ident is not None:
                self._by_identity.setdefault(ident, what)

        for path in images:
            add(f"the input image {path}", path)
        for path in files:
            add(f"the input file {path}", path)
        for path in folders:
            add(f"the input folder {path}", path)
            self._folders.append((_key(path), path))
        for what, path in protected:
            add(f"{what} {path}", path)

    def _folder_holding(self, key: str) -> Path | None:
        return next((folder for fkey, folder in self._folders if _inside(key, fkey)), None)

    def check(self, outputs: Iterable[Output]) -> None:
        """Raise :class:`AllSightError` at the first output that breaks a rule."""
        from engine.io.images import is_image_path
        from engine.reports.files import written_in_place

        seen: dict[str, Output] = {}
        seen_identity: dict[tuple[int, int], Output] = {}
        for out in outputs:
            key, ident = _key(out.path), _identity(out.path)
            special = not out.folder and written_in_place(out.path)
            if out.folder:
                holder = self._folder_holding(key)
                if holder is not None:
                    raise AllSightError(
                        f"{out.option} {out.path} is inside the input folder {holder}: the next run would classify "
                        "the images written there as part of the sample; choose a folder outside the inputs")
            hit = self._by_key.get(key) or (self._by_identity.get(ident) if ident is not None else None)
            if hit is not None:
                raise AllSightError(f"{out.option} {out.path} would overwrite {hit}; choose another path")
            if special:
                continue  # a terminal, a pipe, /dev/null: written, never replaced; may take several outputs
            other = seen.get(key) or (seen_identity.get(ident) if ident is not None else None)
            if other is not None:
                if other.option == out.option:
                    raise AllSightError(f"{out.option} would write {out.path} twice (also as {other.path})")
                raise AllSightError(f"{other.option} {other.path} and {out.option} {out.path} are the same path; "
                                    "each output needs its own")
            if not out.folder and is_image_path(out.path):
                holder = self._folder_holding(key)
                if holder is not None:
                    raise AllSightError(
                        f"{out.option} {out.path} has an image file name inside the input folder {holder}: the next "
                        "run would classify it as part of the sample; write it outside the input folders")
            seen.setdefault(key, out)
            if ident is not None:
                seen_identity.setdefault(ident, out)


def model_files(model: str | None) -> list[tuple[str, Path]]:
    """The model's weights and card when ``model`` names files (a shipped model's id names none)."""
    if not model:
        return []
    path = Path(model)
    if not path.exists():
        return []
    return [("the model file", p) for p in dict.fromkeys((path, path.with_suffix(".safetensors"),
                                                            path.with_suffix(".json")))]


def check_writable(path: Path, what: str, *, folder: bool = False, create_folders: bool = True) -> None:
    """Fail now (:class:`AllSightError`) when ``path`` (a file, or a folder with ``folder=True``)
    could not be written; nothing is left behind. With ``create_folders`` missing folders are
    fine when the nearest existing one is writable (the writer creates them); without, the
    file's folder must exist."""

    def fail(reason: str) -> AllSightError:
        return AllSightError(f"cannot write the {what} {path}: {reason}")

    from engine.reports.files import os_reason, written_in_place

    if not folder and written_in_place(path):  # a terminal, a pipe, /dev/null, /dev/stdout: opened as it is
        if not os.access(path, os.W_OK):
            raise fail("permission denied")
        return
    real = Path(os.path.realpath(path))
    try:
        st: os.stat_result | None = os.stat(real)
    except OSError:
        st = None
    if folder:
        if st is not None and not stat.S_ISDIR(st.st_mode):
            raise fail("that path is a file, not a folder")
        parent = real
    else:
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise fail("that path is a folder")
        if st is not None and not os.access(real, os.W_OK):
            raise fail("the file is read-only")
        parent = real.parent
    if not parent.is_dir():
        ancestor = parent
        while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise fail("a part of the path is a file, not a folder")
        if not create_folders:
            raise fail(f"the folder {parent} does not exist")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise fail(f"permission denied (the folder {ancestor} is not writable)")
        return  # the writer creates the missing folders; do not create them yet
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".allsight-check.", suffix=".tmp")
    except OSError as exc:
        raise fail(os_reason(exc)) from None
    os.close(fd)
    os.unlink(tmp)
