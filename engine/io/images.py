"""Reading images and scanning folders: the one way every path in ALLSight gets pixels.

``load_image`` turns anything a lab folder may hold (JPEG, PNG, TIFF, BMP, WebP, GIF; any mode,
any bit depth, any EXIF orientation) into an upright 8-bit RGB ``numpy`` array, or raises
:class:`~engine.core.errors.ImageLoadError` naming the file and the reason. Pillow does the decoding:
it applies EXIF orientation, reads every mode and format listed, and is well maintained.

One shortcut: a *plain* JPEG — complete (ends with its end-of-image marker), 8-bit, gray or
YCbCr, Huffman-coded, no EXIF block and no Adobe colour transform — is decoded by OpenCV's
libjpeg-turbo instead, in ~0.4 ms instead of Pillow's ~0.75 ms for a 224 x 224 field. Both run
libjpeg-turbo with the same settings, and the pixels are identical (checked on every image of the
training set and by ``tests/engine/io/test_images.py``); anything else, and any file OpenCV cannot
decode, goes through Pillow, which also words every error.

One check Pillow lacks: a PNG whose compressed data ends cleanly before its last row decodes
with the missing rows black; :func:`png_missing_bytes` catches it and the file is reported
as truncated.

Two limits refuse a file before it costs minutes and gigabytes: its size on disk
(:data:`MAX_FILE_BYTES`, 64 MB unless ``$ALLSIGHT_MAX_IMAGE_MB`` says otherwise; checked before
a byte is read) and its pixel count (:data:`DEFAULT_MAX_PIXELS`, checked from the header before
decoding).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.core.errors import ImageLoadError, ImageTooLargeError

#: File name extensions (lower case) treated as images.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif"}
)

#: Default pixel-count limit. Whole-field microscope cameras go to ~20-50 MP (and stitched
#: tiles beyond); 150 MP admits those while refusing decompression bombs of gigapixel size.
DEFAULT_MAX_PIXELS = 150_000_000

#: Default file-size limit in MB (2**20 bytes). The largest realistic smear field image is a
#: few MB (a 20 MP camera's JPEG ~10 MB, its 8-bit TIFF ~60 MB); a bigger file is refused before
#: it is read.
DEFAULT_MAX_IMAGE_MB = 64
#: The environment variable that sets the file-size limit in MB (read once, at import).
MAX_IMAGE_MB_ENV = "ALLSIGHT_MAX_IMAGE_MB"

_MB = 1 << 20
log = logging.getLogger(__name__)


def _max_file_bytes_from_env() -> int:
    text = os.environ.get(MAX_IMAGE_MB_ENV, "").strip()
    if text:
        try:
            value = float(text)
        except ValueError:
            value = 0.0
        if value > 0 and value * _MB < 2**62:
            return int(value * _MB)
        log.warning("%s=%r is not a positive number of MB; the limit stays %d MB", MAX_IMAGE_MB_ENV, text,
                    DEFAULT_MAX_IMAGE_MB)
    return DEFAULT_MAX_IMAGE_MB * _MB


#: File-size limit of :func:`load_image` in bytes: ``$ALLSIGHT_MAX_IMAGE_MB`` MB, else
#: :data:`DEFAULT_MAX_IMAGE_MB` MB.
MAX_FILE_BYTES: int = _max_file_bytes_from_env()


def _megabytes(n: int) -> str:
    if n < _MB:
        return f"{n:,} bytes"
    mb = n / _MB
    return f"{mb:,.0f} MB" if mb == int(mb) else f"{mb:,.1f} MB"


# Our own guard replaces Pillow's global one, which would otherwise warn at ~89 MP and refuse at
# ~179 MP regardless of the configured limit.
Image.MAX_IMAGE_PIXELS = None


def is_image_path(path: str | Path) -> bool:
    """True when the file name has an image extension (any case)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _check_file(path: Path, max_bytes: int) -> None:
    """Raise a specific ImageLoadError for the file-system level problems, and for a file larger
    than ``max_bytes``; nothing of the file is read."""
    try:
        st = os.stat(path)  # follows links: reports dangling and looping links
    except FileNotFoundError:
        if os.path.islink(path):
            raise ImageLoadError(path, "broken link: the file it points to does not exist") from None
        raise ImageLoadError(path, "file not found") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageLoadError(path, "symbolic link loop: the link points back to itself") from None
        raise ImageLoadError(path, f"cannot access file ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageLoadError(path, "is a folder, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise ImageLoadError(path, "not a regular file")
    if st.st_size == 0:
        raise ImageLoadError(path, "empty file (0 bytes)")
    if st.st_size > max_bytes:
        raise ImageLoadError(path, _too_big(st.st_size, max_bytes))


def _too_big(size: int, max_bytes: int) -> str:
    return (f"file is {_megabytes(size)}, larger than the {_megabytes(max_bytes)} limit for an image file "
            f"(not read; {MAX_IMAGE_MB_ENV} sets the limit)")


def _to_rgb8(img: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to an 8-bit RGB array, scaling high bit depths (not clipping)."""
    mode = img.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # Composite on white: slides are bright-field, so transparent means "background".
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img).astype(np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0  # 65535 -> 255
        elif mode == "I":
            # 32-bit integer images come from 16-bit sources in practice.
            arr = arr / 257.0 if arr.max(initial=0) > 255 else arr
        else:  # float: assume 0..1 when it looks like it, else 0..255
            arr = arr * 255.0 if arr.max(initial=0) <= 1.0 else arr
        gray = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.stack([gray] * 3, axis=-1))
    if mode != "RGB":
        img = img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV
    return np.asarray(img)


def load_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int | None = None) -> np.ndarray:
    """Read ``path`` into an upright ``(H, W, 3)`` uint8 RGB array.

    A file larger than ``max_bytes`` (default :data:`MAX_FILE_BYTES`) is refused before it is
    read; an image of more than ``max_pixels`` pixels before it is decoded.
    Raises :class:`ImageLoadError` (or :class:`ImageTooLargeError`) with the file and the reason
    for every file that cannot be used; it never returns a partial image.
    """
    path = Path(path)
    limit = MAX_FILE_BYTES if max_bytes is None else max_bytes
    _check_file(path, limit)
    data = _read_jpeg_or_png(path, limit)
    if data is not None and data.startswith(_JPEG_SOI):
        rgb = _decode_plain_jpeg(data, max_pixels)
        if rgb is not None:
            return rgb
    return _decode_with_pillow(path, max_pixels, data)


_JPEG_SOI = b"\xff\xd8\xff"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _read_jpeg_or_png(path: Path, max_bytes: int) -> bytes | None:
    """The file's bytes when it starts like a JPEG or a PNG, the two formats checked here
    before or after Pillow; ``None`` for any other format (so it is read once, by Pillow) and
    for a file that cannot be read (Pillow's path words why). Never more than ``max_bytes``:
    a file that has grown past it since it was checked is refused."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_PNG_SIGNATURE))
            if not head.startswith(_JPEG_SOI) and head != _PNG_SIGNATURE:
                return None
            data = head + f.read(max(0, max_bytes + 1 - len(head)))
    except OSError:
        return None
    if len(data) > max_bytes:
        try:
            size = max(len(data), os.path.getsize(path))
        except OSError:
            size = len(data)
        raise ImageLoadError(path, _too_big(size, max_bytes))
    return data


#: Start-of-frame markers of the Huffman-coded JPEG processes libjpeg-turbo decodes identically
#: for OpenCV and Pillow: baseline, extended sequential, progressive.
_HUFFMAN_SOF = (0xC0, 0xC1, 0xC2)
#: Other start-of-frame markers (lossless, hierarchical, arithmetic-coded): left to Pillow.
_OTHER_SOF = (0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)


def plain_jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` if ``data`` is a plain JPEG (see the module docstring), else ``None``.

    Reads only the marker segments before the scan; a file that does not end with the
    end-of-image marker (e.g. a truncated one) is not plain, so Pillow reports it.
    """
    if len(data) < 8 or not data.startswith(_JPEG_SOI) or data[-2:] != b"\xff\xd9":
        return None
    size: tuple[int, int] | None = None
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if length < 2 or i + 2 + length > n:
            return None
        segment = data[i + 4:i + 2 + length]
        if marker in _HUFFMAN_SOF:
            if len(segment) < 6:
                return None
            precision, components = segment[0], segment[5]
            height, width = int.from_bytes(segment[1:3], "big"), int.from_bytes(segment[3:5], "big")
            if precision != 8 or components not in (1, 3) or width == 0 or height == 0:
                return None
            size = (width, height)
        elif marker in _OTHER_SOF:
            return None
        elif marker == 0xE1 and segment.startswith(b"Exif"):
            return None  # orientation: Pillow's exif_transpose
        elif marker == 0xEE and segment.startswith(b"Adobe"):
            return None  # Adobe colour transform flags
        elif marker == 0xDA:  # start of scan: the headers are over
            return size
        i += 2 + length
    return None


def _decode_plain_jpeg(data: bytes, max_pixels: int) -> np.ndarray | None:
    """RGB pixels of a plain JPEG decoded by OpenCV, or ``None`` to use Pillow."""
    size = plain_jpeg_size(data)
    if size is None or size[0] * size[1] > max_pixels:
        return None
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.shape != (size[1], size[0], 3) or bgr.dtype != np.uint8:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


#: PNG colour type -> samples per pixel.
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: Adam7 passes: (first column, first row, column step, row step).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def png_missing_bytes(data: bytes) -> int:
    """How many bytes of filtered pixel data a PNG lacks for its declared size (0: complete).

    Pillow decodes a PNG whose compressed data ends cleanly before the last row without a word,
    leaving the missing rows black; libpng calls it "not enough image data". This inflates the
    IDAT stream (without keeping it) and compares its length with what the header promises.
    Files it cannot parse return 0 and are left to the decoder.
    """
    if not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR" or len(data) < 33:
        return 0
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    depth, colour, interlace = data[24], data[25], data[28]
    samples = _PNG_SAMPLES.get(colour)
    if samples is None:
        return 0
    passes = _ADAM7 if interlace == 1 else ((0, 0, 1, 1),)
    expected = 0
    for x0, y0, dx, dy in passes:
        cols, rows = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if cols > 0 and rows > 0:
            expected += rows * (1 + -(-(cols * samples * depth) // 8))
    inflater = zlib.decompressobj()
    got, i = 0, 8
    while i + 8 <= len(data) and got < expected:
        length = int.from_bytes(data[i:i + 4], "big")
        kind = data[i + 4:i + 8]
        if kind == b"IDAT":
            try:
                # max_length: never inflate much more than the image needs (zip bombs)
                got += len(inflater.decompress(data[i + 8:i + 8 + length], expected - got + 1))
                while inflater.unconsumed_tail and got < expected:
                    got += len(inflater.decompress(inflater.unconsumed_tail, expected - got + 1))
            except zlib.error:
                return 0  # corrupt data: the decoder's own error says so
        elif kind == b"IEND":
            break
        i += 12 + length
    return max(0, expected - got)


def _check_png_rows(path: Path, data: bytes | None) -> None:
    missing = png_missing_bytes(path.read_bytes() if data is None else data)
    if missing:
        raise ImageLoadError(path, "truncated or incomplete image data (the PNG's pixel data ends "
                                   f"{missing:,} bytes before its last row)")


def _decode_with_pillow(path: Path, max_pixels: int, data: bytes | None = None) -> np.ndarray:
    """Pillow's decoding of ``path``; ``data``, when given, is the file's content (read already)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Possibly corrupt EXIF data": not fatal
            with Image.open(path) as img:
                width, height = img.size
                if width <= 0 or height <= 0:
                    raise ImageLoadError(path, f"invalid image size {width}x{height}")
                if width * height > max_pixels:
                    raise ImageTooLargeError(
                        path,
                        f"image is {width}x{height} = {width * height:,} pixels "
                        f"({width * height / 1e6:.1f} megapixels), over the limit of {max_pixels:,} pixels",
                    )
                img.seek(0)  # GIF/TIFF/WebP animations: the first frame
                img.load()  # decode now so truncation is detected here, not later
                if img.format == "PNG":
                    _check_png_rows(path, data)
                oriented = ImageOps.exif_transpose(img)
                rgb = _to_rgb8(oriented)
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(path, "not an image, or an unsupported image format") from None
    except PermissionError:
        raise ImageLoadError(path, "permission denied: the file cannot be read") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        text = str(exc) or type(exc).__name__
        if "truncated" in text.lower() or isinstance(exc, EOFError):
            reason = f"truncated or incomplete image data ({text})"
        else:
            reason = f"corrupt or unreadable image data ({text})"
        raise ImageLoadError(path, reason) from None
    except MemoryError:
        raise ImageLoadError(path, "not enough memory to decode this image") from None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageLoadError(path, f"unexpected decoded layout {rgb.shape} {rgb.dtype}")
    # A private, writable copy: Pillow-backed arrays are read-only and callers may draw on them.
    return np.array(rgb, dtype=np.uint8, order="C", copy=True)


_DIGITS = re.compile(r"(\d+)")


def natural_key(path: Path) -> tuple:
    """Sort key so that img2 comes before img10, stable across platforms (case-folded)."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part.casefold())
        for part in _DIGITS.split(str(path))
    )


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str


@dataclass(frozen=True)
class ScanResult:
    """Result of scanning folders: image files in stable order, and what was passed over."""

    images: tuple[Path, ...]
    skipped: tuple[SkippedFile, ...]


def scan_paths(paths: list[str | Path] | tuple[str | Path, ...]) -> ScanResult:
    """Expand files and folders (recursively) into image files.

    Folders are walked recursively following links, surviving link loops; hidden files and
    folders (name starting with '.') are skipped; files whose extension is not an image type are
    reported in ``skipped`` rather than failing. Explicitly named files are always kept when
    they look like images, even if broken, so that the caller reports them per file.
    """
    images: list[Path] = []
    skipped: list[SkippedFile] = []
    seen_files: set[Path] = set()

    def add_file(p: Path) -> None:
        if p in seen_files:
            return
        seen_files.add(p)
        if is_image_path(p):
            images.append(p)
        else:
            skipped.append(SkippedFile(p, f"not an image file type ({p.suffix or 'no extension'})"))

    for raw in paths:
        root = Path(raw)
        if os.path.isdir(root):
            folder_images: list[Path] = []
            _walk(root, folder_images, skipped)
            for p in sorted(folder_images, key=natural_key):
                add_file(p)
        elif os.path.lexists(root):
            add_file(root)
        else:
            skipped.append(SkippedFile(root, "no such file or folder"))
    return ScanResult(tuple(images), tuple(skipped))


def _walk(root: Path, out: list[Path], skipped: list[SkippedFile]) -> None:
    visited: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as exc:
            skipped.append(SkippedFile(folder, f"folder cannot be read ({exc.strerror})"))
            continue
        key = (st.st_dev, st.st_ino)
        if key in visited:
            continue  # a link loop, or the same folder reached twice
        visited.add(key)
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            skipped.append(SkippedFile(folder, f"folder cannot be read ({exc.strerror})"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False  # looping links: treat as a (broken) file below
            if is_dir:
                stack.append(path)
            elif is_image_path(path):
                out.append(path)  # broken links etc. are reported when loaded
            else:
                skipped.append(SkippedFile(path, f"not an image file type ({path.suffix or 'no extension'})"))
