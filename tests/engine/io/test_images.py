"""load_image: every format and mode a lab folder may hold, EXIF orientation, the pixel guard and
the broken-file corpus (each failure names the file and gives a specific, readable reason)."""

from __future__ import annotations

import errno
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.core.errors import AllSightError, ImageLoadError, ImageTooLargeError
from engine.io import images as imageio
from engine.io.images import DEFAULT_MAX_PIXELS, load_image
from tests.conftest import write_image

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
WHITE, BLACK = (255, 255, 255), (0, 0, 0)


def assert_rgb(arr: np.ndarray, shape: tuple[int, int] | None = None) -> None:
    assert isinstance(arr, np.ndarray)
    assert arr.dtype == np.uint8
    assert arr.ndim == 3 and arr.shape[2] == 3
    if shape is not None:
        assert arr.shape[:2] == shape


def assert_color(pixel, expected, tol: int = 0) -> None:
    diff = np.abs(np.asarray(pixel, int) - np.asarray(expected, int))
    assert diff.max() <= tol, f"pixel {tuple(int(v) for v in pixel)} != expected {expected} (tol {tol})"


def quadrants(block: int = 16) -> np.ndarray:
    """A (2*block, 2*block) RGB image: red | green over blue | yellow (channel order check)."""
    img = np.zeros((2 * block, 2 * block, 3), np.uint8)
    img[:block, :block] = RED
    img[:block, block:] = GREEN
    img[block:, :block] = BLUE
    img[block:, block:] = YELLOW
    return img


def assert_quadrants(arr: np.ndarray, block: int = 16, tol: int = 0) -> None:
    assert_rgb(arr, (2 * block, 2 * block))
    c = block // 2
    assert_color(arr[c, c], RED, tol)
    assert_color(arr[c, block + c], GREEN, tol)
    assert_color(arr[block + c, c], BLUE, tol)
    assert_color(arr[block + c, block + c], YELLOW, tol)


# ------------------------------------------------------------------------------------- formats
LOSSLESS_FORMATS = [
    ("img.png", {}),
    ("img.Png", {}),
    ("img.PNG", {}),
    ("img.tif", {}),
    ("img.tiff", {}),
    ("img.TIF", {}),
    ("img.bmp", {}),
    ("img.webp", {"lossless": True}),
    ("img.gif", {}),
]


@pytest.mark.parametrize("name,kwargs", LOSSLESS_FORMATS)
def test_lossless_formats_keep_exact_colours(tmp_path, name, kwargs):
    path = write_image(tmp_path / name, quadrants(), **kwargs)
    assert_quadrants(load_image(path), tol=0)


@pytest.mark.parametrize("name", ["img.jpg", "img.jpeg", "img.JPG", "img.Jpeg", "img.jpe"])
def test_jpeg_any_extension_case(tmp_path, name):
    path = write_image(tmp_path / name, quadrants(), format="JPEG", quality=95, subsampling=0)
    assert_quadrants(load_image(path), tol=12)


def test_lossy_webp(tmp_path):
    path = write_image(tmp_path / "img.webp", quadrants(), quality=95)
    assert_quadrants(load_image(path), tol=40)


def test_red_image_stays_red_not_bgr(tmp_path):
    for name in ("red.png", "red.jpg", "red.bmp", "red.tif"):
        path = write_image(tmp_path / name, np.full((16, 16, 3), RED, np.uint8))
        arr = load_image(path)
        assert_rgb(arr, (16, 16))
        assert arr[8, 8, 0] > 240 and arr[8, 8, 2] < 15, f"{name}: channels swapped: {arr[8, 8]}"


def test_content_decides_format_not_extension(tmp_path):
    # Labs rename files; a PNG saved under a .jpg name still loads.
    path = tmp_path / "actually_png.jpg"
    Image.fromarray(quadrants()).save(path, format="PNG")
    assert_quadrants(load_image(path), tol=0)


def test_animated_gif_gives_first_frame(tmp_path):
    first = Image.new("RGB", (12, 10), RED)
    second = Image.new("RGB", (12, 10), BLUE)
    path = tmp_path / "anim.gif"
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    with Image.open(path) as check:
        assert check.n_frames == 2  # the file really is animated with differing frames
    arr = load_image(path)
    assert_rgb(arr, (10, 12))
    assert_color(arr[5, 6], RED)
    assert_color(arr[0, 0], RED)


def test_animated_gif_second_frame_differs_proves_first_is_chosen(tmp_path):
    # Same as above with the colours the other way round, so "always red" cannot pass both.
    first = Image.new("RGB", (8, 8), BLUE)
    second = Image.new("RGB", (8, 8), RED)
    path = tmp_path / "anim2.gif"
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    assert_color(load_image(path)[4, 4], BLUE)


def test_accepts_str_and_path(tmp_path):
    path = write_image(tmp_path / "q.png", quadrants())
    assert np.array_equal(load_image(str(path)), load_image(path))


# ---------------------------------------------------------------------------------------- EXIF
def _upright_marked(h: int = 48, w: int = 24) -> np.ndarray:
    """Tall upright image with distinct corner markers (rotation and mirroring both show)."""
    img = np.full((h, w, 3), 128, np.uint8)
    img[:8, :8] = RED  # top-left
    img[:8, -8:] = BLUE  # top-right
    img[-8:, :8] = GREEN  # bottom-left
    return img


# orientation -> how the stored pixels relate to the upright picture (numpy rot90 is CCW)
_STORED_FROM_UPRIGHT = {
    3: lambda u: np.rot90(u, 2),  # display = stored rotated 180
    6: lambda u: np.rot90(u, 1),  # display = stored rotated 90 clockwise
    8: lambda u: np.rot90(u, -1),  # display = stored rotated 90 counter-clockwise
}


@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_exif_orientation_is_applied(tmp_path, orientation):
    upright = _upright_marked()
    stored = np.ascontiguousarray(_STORED_FROM_UPRIGHT[orientation](upright))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"rot{orientation}.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95, subsampling=0)
    with Image.open(path) as raw:
        assert raw.size == (stored.shape[1], stored.shape[0])  # file holds the rotated pixels
        assert raw.getexif().get(0x0112) == orientation

    arr = load_image(path)
    assert_rgb(arr, upright.shape[:2])  # 48 tall x 24 wide, as an upright viewer shows it
    assert_color(arr[3, 3], RED, tol=20)  # marker at the top-left, where the upright image has it
    assert_color(arr[3, -4], BLUE, tol=20)
    assert_color(arr[-4, 3], GREEN, tol=20)
    assert_color(arr[-4, -4], (128, 128, 128), tol=20)
    assert np.abs(arr.astype(int) - upright.astype(int)).mean() < 6


def test_no_exif_means_no_rotation(tmp_path):
    stored = np.ascontiguousarray(np.rot90(_upright_marked(), 1))
    path = write_image(tmp_path / "plain.jpg", stored, quality=95, subsampling=0)
    assert load_image(path).shape[:2] == stored.shape[:2]


# ---------------------------------------------------------------------------------------- modes
def test_grayscale_L(tmp_path):
    img = Image.new("L", (6, 4), 77)
    img.putpixel((0, 0), 200)
    img.save(tmp_path / "g.png")
    arr = load_image(tmp_path / "g.png")
    assert_rgb(arr, (4, 6))
    assert_color(arr[0, 0], (200, 200, 200))
    assert_color(arr[2, 3], (77, 77, 77))


def _gray16() -> np.ndarray:
    a = np.full((6, 8), 32768, np.uint16)
    a[0, 0] = 65535
    a[0, 1] = 0
    a[0, 2] = 1000  # 1000/65535 of full scale -> ~4, not 255 (clipping) and not 0 (truncation)
    return a


def _check_gray16(arr: np.ndarray) -> None:
    assert_rgb(arr, (6, 8))
    assert_color(arr[3, 3], (128, 128, 128), tol=1)  # scaled, not clipped to 255
    assert_color(arr[0, 0], WHITE)
    assert_color(arr[0, 1], BLACK)
    assert_color(arr[0, 2], (4, 4, 4), tol=1)


def test_16bit_gray_png_via_pillow_is_scaled(tmp_path):
    Image.fromarray(_gray16()).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as raw:
        assert raw.mode.startswith("I")  # really 16-bit on disk
    _check_gray16(load_image(tmp_path / "g16.png"))


@pytest.mark.parametrize("name", ["g16cv.png", "g16cv.tif"])
def test_16bit_gray_via_cv2_is_scaled(tmp_path, name):
    assert cv2.imwrite(str(tmp_path / name), _gray16())
    _check_gray16(load_image(tmp_path / name))


def test_16bit_rgb_png_is_scaled_and_in_rgb_order(tmp_path):
    bgr = np.zeros((4, 4, 3), np.uint16)
    bgr[..., 2] = 65535  # red
    bgr[..., 1] = 32768  # green
    assert cv2.imwrite(str(tmp_path / "c48.png"), bgr)
    arr = load_image(tmp_path / "c48.png")
    assert_rgb(arr, (4, 4))
    assert_color(arr[1, 1], (255, 128, 0), tol=1)


def test_palette_P(tmp_path):
    img = Image.fromarray(quadrants()).quantize(colors=4)
    assert img.mode == "P"
    img.save(tmp_path / "p.png")
    assert_quadrants(load_image(tmp_path / "p.png"), tol=0)


def test_palette_with_transparency_composited_on_white(tmp_path):
    img = Image.new("P", (4, 4), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    img.putpixel((1, 1), 1)
    img.info["transparency"] = 0
    img.save(tmp_path / "pt.png", transparency=0)
    arr = load_image(tmp_path / "pt.png")
    assert_color(arr[0, 0], WHITE)  # transparent (index 0 is black) -> white, not black
    assert_color(arr[1, 1], RED)


def test_rgba_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black everywhere
    rgba[1, 1] = (255, 0, 0, 255)  # opaque red
    rgba[2, 2] = (0, 0, 0, 128)  # half-transparent black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    arr = load_image(tmp_path / "a.png")
    assert_rgb(arr, (4, 4))
    assert_color(arr[0, 0], WHITE)
    assert_color(arr[1, 1], RED)
    assert_color(arr[2, 2], (127, 127, 127), tol=1)


def test_la_composited_on_white(tmp_path):
    img = Image.new("LA", (4, 4), (100, 255))
    img.putpixel((0, 0), (0, 0))  # transparent black
    img.save(tmp_path / "la.png")
    arr = load_image(tmp_path / "la.png")
    assert_color(arr[0, 0], WHITE)
    assert_color(arr[2, 2], (100, 100, 100))


@pytest.mark.parametrize("name,kwargs", [("c.jpg", {"quality": 95}), ("c.tif", {})])
def test_cmyk(tmp_path, name, kwargs):
    img = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red
    img.paste((255, 0, 0, 0), (8, 0, 16, 16))  # right half cyan
    img.save(tmp_path / name, **kwargs)
    with Image.open(tmp_path / name) as raw:
        assert raw.mode == "CMYK"
    arr = load_image(tmp_path / name)
    assert_rgb(arr, (16, 16))
    assert_color(arr[8, 2], RED, tol=10)
    assert_color(arr[8, 13], (0, 255, 255), tol=10)


@pytest.mark.parametrize("name", ["b.png", "b.bmp", "b.tif"])
def test_one_bit(tmp_path, name):
    img = Image.new("1", (9, 5), 0)
    img.putpixel((0, 0), 1)
    img.save(tmp_path / name)
    arr = load_image(tmp_path / name)
    assert_rgb(arr, (5, 9))
    assert_color(arr[0, 0], WHITE)
    assert_color(arr[3, 4], BLACK)


def test_float_tiff_0_to_1_is_scaled(tmp_path):
    a = np.full((4, 4), 0.5, np.float32)
    a[0, 0] = 1.0
    Image.fromarray(a, "F").save(tmp_path / "f.tif")
    arr = load_image(tmp_path / "f.tif")
    assert_color(arr[0, 0], WHITE)
    assert_color(arr[2, 2], (128, 128, 128), tol=1)


# ------------------------------------------------------------------------------- pixel guard
def test_default_limit_admits_whole_field_camera_images():
    assert DEFAULT_MAX_PIXELS >= 50_000_000


def test_pixel_guard_raises_naming_file(tmp_path):
    path = write_image(tmp_path / "big.png", np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(ImageTooLargeError) as info:
        load_image(path, max_pixels=100)
    err = info.value
    assert isinstance(err, ImageLoadError)
    assert err.path == path
    assert str(path) in str(err)
    assert "20x20" in str(err) and "limit" in str(err)


def test_pixel_guard_boundary_and_message_numbers(tmp_path):
    path = write_image(tmp_path / "edge.png", np.zeros((20, 20, 3), np.uint8))
    assert load_image(path, max_pixels=400).shape == (20, 20, 3)  # exactly at the limit: fine
    with pytest.raises(ImageTooLargeError) as info:
        load_image(path, max_pixels=399)
    # the message must not contradict itself by rounding both numbers to the same value
    assert "400" in info.value.reason and "399" in info.value.reason


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1))) + chunk(b"IEND", b""))


def test_decompression_bomb_refused_before_decoding(tmp_path):
    # A tiny file declaring 100000 x 100000 pixels (10 gigapixels, ~30 GB decoded).
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(100_000, 100_000))
    assert path.stat().st_size < 1000
    with pytest.raises(ImageTooLargeError) as info:
        load_image(path)
    assert str(path) in str(info.value)


# -------------------------------------------------------------------------- broken-file corpus
def _valid_bytes(tmp_path: Path, fmt: str) -> bytes:
    rng = np.random.default_rng(1)
    noisy = rng.integers(0, 256, (64, 64, 3), np.uint8)  # noise: the file is not mostly header
    src = tmp_path / f"valid.{fmt}"
    Image.fromarray(noisy).save(src, quality=90) if fmt == "jpg" else Image.fromarray(noisy).save(src)
    data = src.read_bytes()
    src.unlink()
    return data


def make_broken(tmp_path: Path, case: str) -> Path:
    if case == "empty":
        p = tmp_path / "empty.jpg"
        p.write_bytes(b"")
    elif case == "truncated_jpeg":
        data = _valid_bytes(tmp_path, "jpg")
        p = tmp_path / "half.jpg"
        p.write_bytes(data[: len(data) // 2])
    elif case == "truncated_png":
        data = _valid_bytes(tmp_path, "png")
        p = tmp_path / "half.png"
        p.write_bytes(data[: len(data) // 2])
    elif case == "corrupt_png":
        data = bytearray(_valid_bytes(tmp_path, "png"))
        start = data.find(b"IDAT") + 40
        for i in range(start, start + 20):
            data[i] ^= 0xFF
        p = tmp_path / "corrupt.png"
        p.write_bytes(bytes(data))
    elif case == "text_as_jpg":
        p = tmp_path / "x.jpg"
        p.write_text("Patient notes, not an image.\n" * 5, encoding="utf-8")
    elif case == "random_png":
        p = tmp_path / "random.png"
        p.write_bytes(np.random.default_rng(2).integers(0, 256, 600, np.uint8).tobytes())
    elif case == "directory":
        p = tmp_path / "foo.jpg"
        p.mkdir()
    elif case == "missing":
        p = tmp_path / "missing.jpg"
    elif case == "dangling_link":
        p = tmp_path / "dangling.jpg"
        os.symlink(tmp_path / "gone.jpg", p)
    elif case == "looping_link":
        p = tmp_path / "a.jpg"
        os.symlink(tmp_path / "b.jpg", p)
        os.symlink(p, tmp_path / "b.jpg")
    else:  # pragma: no cover
        raise AssertionError(case)
    return p


# case -> a word the reason must contain (each category has its own)
EXPECTED_REASON = {
    "empty": "empty",
    "truncated_jpeg": "truncated",
    "truncated_png": "truncated",
    "corrupt_png": "corrupt",
    "text_as_jpg": "not an image",
    "random_png": "not an image",
    "directory": "folder",
    "missing": "not found",
    "dangling_link": "broken link",
    "looping_link": "loop",
}
# words that must not appear in another category's reason ("not an image" is left out: a folder
# is also "not an image file", and its own word "folder" already makes it specific)
CATEGORY_WORDS = (set(EXPECTED_REASON.values()) | {"permission"}) - {"not an image"}


def _check_reason(err: ImageLoadError, path: Path, word: str) -> None:
    assert isinstance(err, AllSightError)
    assert err.path == path
    text = str(err)
    assert str(path) in text, text
    assert text == f"{path}: {err.reason}"
    reason = err.reason.lower()
    assert word in reason, f"reason {err.reason!r} lacks {word!r}"
    others = [w for w in CATEGORY_WORDS if w != word and w in reason]
    assert not others, f"reason {err.reason!r} also matches {others}: not specific"
    # human-readable: no exception class names or raw errno codes
    for jargon in ("Error", "Errno", "Traceback", "UnidentifiedImage", "<class"):
        assert jargon not in err.reason, err.reason


@pytest.mark.parametrize("case", list(EXPECTED_REASON))
def test_broken_file_reasons(tmp_path, case):
    path = make_broken(tmp_path, case)
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert not isinstance(info.value, ImageTooLargeError)
    _check_reason(info.value, path, EXPECTED_REASON[case])


def test_broken_file_reasons_are_distinct_per_category(tmp_path):
    reasons: dict[str, set[str]] = {}
    for case, word in EXPECTED_REASON.items():
        folder = tmp_path / case
        folder.mkdir()
        with pytest.raises(ImageLoadError) as info:
            load_image(make_broken(folder, case))
        # strip the decoder's detail in parentheses; the leading reason is what people read
        reasons.setdefault(word, set()).add(info.value.reason.split("(")[0].strip())
    headline = {word: next(iter(texts)) for word, texts in reasons.items()}
    assert len(set(headline.values())) == len(headline), headline


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_chmod(tmp_path):
    path = write_image(tmp_path / "locked.png", quadrants())
    path.chmod(0)
    try:
        with pytest.raises(ImageLoadError) as info:
            load_image(path)
        _check_reason(info.value, path, "permission")
    finally:
        path.chmod(0o644)


def test_permission_denied_reason(tmp_path, monkeypatch):
    # Runs as root too: the open itself is made to fail the way an unreadable file does.
    path = write_image(tmp_path / "locked.png", quadrants())

    def denied(fp, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(fp))

    monkeypatch.setattr(imageio.Image, "open", denied)
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    _check_reason(info.value, path, "permission")


def test_load_error_is_never_a_partial_array(tmp_path):
    # the truncated JPEG must raise, not return a half-grey image
    path = make_broken(tmp_path, "truncated_jpeg")
    with pytest.raises(ImageLoadError):
        load_image(path)


# ---------------------------------------------------------------- plain JPEGs: OpenCV shortcut
def _smear_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients with noise: exercises chroma upsampling and every DCT band."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([120 + 100 * np.sin(x / 7.0), 90 + 80 * np.cos(y / 5.0), 160 + 60 * np.sin((x + y) / 11.0)], -1)
    return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


PLAIN_JPEG_VARIANTS = {
    "420": {"quality": 90, "subsampling": 2},
    "422": {"quality": 85, "subsampling": 1},
    "444": {"quality": 95, "subsampling": 0},
    "progressive": {"quality": 90, "progressive": True},
    "optimized_low_quality": {"quality": 40, "optimize": True},
}


@pytest.mark.parametrize("variant", list(PLAIN_JPEG_VARIANTS))
@pytest.mark.parametrize("shape", [(224, 224), (37, 53), (480, 640)])
def test_plain_jpeg_takes_the_opencv_path_with_pillows_exact_pixels(tmp_path, variant, shape):
    path = write_image(tmp_path / "field.jpg", _smear_like(*shape), **PLAIN_JPEG_VARIANTS[variant])
    assert imageio.plain_jpeg_size(path.read_bytes()) == (shape[1], shape[0])
    fast = load_image(path)
    assert_rgb(fast, shape)
    assert fast.flags.writeable and fast.flags.c_contiguous
    np.testing.assert_array_equal(fast, imageio._decode_with_pillow(path, DEFAULT_MAX_PIXELS))


def test_plain_grayscale_jpeg_matches_pillow(tmp_path):
    gray = _smear_like(40, 48)[..., 1]
    path = write_image(tmp_path / "gray.jpg", gray, quality=90)
    assert imageio.plain_jpeg_size(path.read_bytes()) == (48, 40)
    np.testing.assert_array_equal(load_image(path), imageio._decode_with_pillow(path, DEFAULT_MAX_PIXELS))


def test_jpegs_that_are_not_plain_go_to_pillow(tmp_path):
    rgb = _smear_like(32, 48)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate
    cases = {
        "exif": write_image(tmp_path / "exif.jpg", rgb, exif=exif.tobytes()),
        "cmyk": tmp_path / "cmyk.jpg",
        "truncated": tmp_path / "truncated.jpg",
    }
    Image.fromarray(rgb).convert("CMYK").save(cases["cmyk"])
    whole = write_image(tmp_path / "whole.jpg", rgb).read_bytes()
    cases["truncated"].write_bytes(whole[:-40])
    for name, path in cases.items():
        assert imageio.plain_jpeg_size(path.read_bytes()) is None, name
    assert_rgb(load_image(cases["exif"]), (48, 32))  # rotated upright by Pillow
    assert_rgb(load_image(cases["cmyk"]), (32, 48))
    with pytest.raises(ImageLoadError, match="truncated"):
        load_image(cases["truncated"])


def test_plain_jpeg_size_refuses_malformed_headers():
    assert imageio.plain_jpeg_size(b"") is None
    assert imageio.plain_jpeg_size(b"\xff\xd8\xff\xd9") is None
    # a segment whose length runs past the end of the file
    assert imageio.plain_jpeg_size(b"\xff\xd8\xff\xe0\x7f\xff" + b"\0" * 16 + b"\xff\xd9") is None
    # bytes where a marker should be
    assert imageio.plain_jpeg_size(b"\xff\xd8\xff\xe0\x00\x04ab" + b"xyz" * 8 + b"\xff\xd9") is None


def test_plain_jpeg_over_the_pixel_limit_is_refused_by_the_guard(tmp_path):
    path = write_image(tmp_path / "big.jpg", _smear_like(64, 64))
    assert imageio.plain_jpeg_size(path.read_bytes()) == (64, 64)
    with pytest.raises(ImageTooLargeError):
        load_image(path, max_pixels=64 * 64 - 1)


def test_a_jpeg_opencv_cannot_decode_falls_back_to_pillows_reason(tmp_path, monkeypatch):
    path = write_image(tmp_path / "field.jpg", _smear_like(32, 32))
    monkeypatch.setattr(imageio.cv2, "imdecode", lambda *a, **k: None)
    np.testing.assert_array_equal(load_image(path), imageio._decode_with_pillow(path, DEFAULT_MAX_PIXELS))


# ------------------------------------------------------------- PNGs with rows missing
def _png(width: int, height: int, raw: bytes, *, colour: int = 2, depth: int = 8, interlace: int = 0) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _adam7_raw(rgb: np.ndarray) -> bytes:
    """Filter-0 scanlines of the seven Adam7 passes of an RGB image."""
    out = bytearray()
    for x0, y0, dx, dy in imageio._ADAM7:
        sub = rgb[y0::dy, x0::dx]
        if sub.size:
            for row in sub:
                out += b"\0" + row.tobytes()
    return bytes(out)


def test_png_with_rows_missing_is_truncated_not_black(tmp_path):
    # Pillow would fill the missing rows with black without a word.
    rows = b"".join(b"\0" + bytes([200, 50, 50] * 16) for _ in range(8))  # 8 of 16 rows
    path = tmp_path / "short.png"
    path.write_bytes(_png(16, 16, rows))
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    _check_reason(info.value, path, "truncated")


def test_interlaced_png_complete_and_short(tmp_path):
    rgb = _smear_like(13, 11)
    raw = _adam7_raw(rgb)
    full = tmp_path / "interlaced.png"
    full.write_bytes(_png(11, 13, raw, interlace=1))
    assert imageio.png_missing_bytes(full.read_bytes()) == 0
    np.testing.assert_array_equal(load_image(full), rgb)
    short = tmp_path / "interlaced-short.png"
    short.write_bytes(_png(11, 13, raw[:-20], interlace=1))
    assert imageio.png_missing_bytes(short.read_bytes()) == 20
    with pytest.raises(ImageLoadError, match="truncated"):
        load_image(short)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"])
def test_complete_pngs_of_every_mode_miss_no_bytes(tmp_path, mode):
    img = Image.fromarray(_smear_like(21, 17)).convert("L" if mode == "I;16" else mode)
    if mode == "I;16":
        img = Image.fromarray(np.asarray(img, np.uint16) * 257)
    path = tmp_path / f"{mode.replace(';', '')}.png"
    img.save(path)
    assert imageio.png_missing_bytes(path.read_bytes()) == 0
    assert_rgb(load_image(path), (21, 17))
