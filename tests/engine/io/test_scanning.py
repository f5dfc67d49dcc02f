"""scan_paths: recursive, naturally ordered, hidden entries skipped, link loops survived,
non-images reported, unicode names, and broken images listed for per-file reporting."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

from engine.core.errors import ImageLoadError
from engine.io.images import ScanResult, load_image, natural_key, scan_paths
from tests.conftest import write_image


def solid(rgb=(200, 100, 50), size=8) -> np.ndarray:
    return np.full((size, size, 3), rgb, np.uint8)


def rel(paths, root: Path) -> list[str]:
    return [Path(p).relative_to(root).as_posix() for p in paths]


def test_natural_order_not_lexicographic(tmp_path):
    names = ["img10.png", "img2.png", "img1.png", "img100.png", "img20.png", "IMG3.png"]
    random.Random(0).shuffle(names)  # creation order must not matter
    for name in names:
        write_image(tmp_path / name, solid())
    result = scan_paths([tmp_path])
    assert isinstance(result, ScanResult)
    assert rel(result.images, tmp_path) == [
        "img1.png", "img2.png", "IMG3.png", "img10.png", "img20.png", "img100.png",
    ]
    assert result.skipped == ()


def test_natural_key_sorts_numbers_by_value():
    paths = [Path("a/img10.png"), Path("a/img2.png"), Path("a/img1.png")]
    assert [p.name for p in sorted(paths, key=natural_key)] == ["img1.png", "img2.png", "img10.png"]


def test_recursive_and_stable(tmp_path):
    write_image(tmp_path / "b" / "img2.jpg", solid())
    write_image(tmp_path / "a" / "deep" / "er" / "img1.tif", solid())
    write_image(tmp_path / "a" / "img10.bmp", solid())
    write_image(tmp_path / "a" / "img9.PNG", solid())
    write_image(tmp_path / "top.webp", solid(), lossless=True)
    first = scan_paths([tmp_path])
    assert rel(first.images, tmp_path) == [
        "a/deep/er/img1.tif", "a/img9.PNG", "a/img10.bmp", "b/img2.jpg", "top.webp",
    ]
    assert scan_paths([tmp_path]) == first  # same answer every time
    assert scan_paths([str(tmp_path)]) == first  # str paths too


def test_hidden_files_and_folders_skipped(tmp_path):
    write_image(tmp_path / "visible.png", solid())
    write_image(tmp_path / ".hidden.png", solid())
    write_image(tmp_path / ".thumbs" / "cache1.png", solid())
    write_image(tmp_path / "sub" / ".DS_Store.png", solid())
    (tmp_path / "sub" / "._resource").write_bytes(b"\x00\x05\x16\x07")  # macOS AppleDouble
    result = scan_paths([tmp_path])
    assert rel(result.images, tmp_path) == ["visible.png"]
    skipped = [s.path.name for s in result.skipped]
    assert "._resource" not in skipped and "cache1.png" not in skipped


@pytest.mark.timeout(30)
def test_symlink_loop_folder_does_not_hang_or_duplicate(tmp_path):
    root = tmp_path / "root"
    write_image(root / "img1.png", solid())
    write_image(root / "sub" / "img2.png", solid())
    os.symlink("..", root / "sub" / "loop")  # sub/loop -> root
    os.symlink(root / "sub", root / "sub" / "self")  # a second loop, absolute
    result = scan_paths([root])
    names = [p.name for p in result.images]
    assert sorted(names) == ["img1.png", "img2.png"]  # each file once
    assert len({p.resolve() for p in result.images}) == len(result.images)


def test_linked_folder_outside_root_is_followed(tmp_path):
    outside = tmp_path / "elsewhere"
    write_image(outside / "linked.png", solid())
    root = tmp_path / "root"
    write_image(root / "own.png", solid())
    os.symlink(outside, root / "link")
    assert sorted(p.name for p in scan_paths([root]).images) == ["linked.png", "own.png"]


def test_same_input_twice_not_duplicated(tmp_path):
    a = write_image(tmp_path / "a.png", solid())
    write_image(tmp_path / "b.png", solid())
    result = scan_paths([tmp_path, tmp_path, a])
    assert rel(result.images, tmp_path) == ["a.png", "b.png"]


def test_non_images_reported_as_skipped_with_reason(tmp_path):
    write_image(tmp_path / "img1.png", solid())
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    (tmp_path / "README").write_text("no extension", encoding="utf-8")
    result = scan_paths([tmp_path])
    assert rel(result.images, tmp_path) == ["img1.png"]
    by_name = {s.path.name: s.reason for s in result.skipped}
    assert set(by_name) == {"notes.txt", "README"}
    assert "not an image" in by_name["notes.txt"] and ".txt" in by_name["notes.txt"]
    assert "no extension" in by_name["README"]
    assert all(s.path.parent == tmp_path for s in result.skipped)


def test_explicit_non_image_file_is_skipped(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("x", encoding="utf-8")
    result = scan_paths([notes])
    assert result.images == ()
    assert [s.path for s in result.skipped] == [notes]


def test_nonexistent_path_reported(tmp_path):
    good = write_image(tmp_path / "good.png", solid())
    missing = tmp_path / "no_such_folder"
    result = scan_paths([missing, good])
    assert result.images == (good,)
    assert len(result.skipped) == 1
    assert result.skipped[0].path == missing
    assert "no such file" in result.skipped[0].reason


def test_unicode_and_spaces_end_to_end(tmp_path):
    path = write_image(tmp_path / "Probe ü 1" / "ímg 1.png", solid((10, 200, 30)))
    write_image(tmp_path / "日本語 フォルダ" / "細胞 2.jpg", solid((200, 10, 30)), quality=95)
    result = scan_paths([tmp_path])
    assert rel(result.images, tmp_path) == ["Probe ü 1/ímg 1.png", "日本語 フォルダ/細胞 2.jpg"]
    assert result.images[0] == path
    arrays = [load_image(p) for p in result.images]
    assert tuple(arrays[0][4, 4]) == (10, 200, 30)
    assert arrays[1][4, 4, 0] > 180
    # naming the unicode folder directly works as well
    assert scan_paths([tmp_path / "Probe ü 1"]).images == (path,)


def test_broken_image_is_listed_and_batch_carries_on(tmp_path):
    write_image(tmp_path / "img1.png", solid((255, 0, 0)))
    (tmp_path / "img2.jpg").write_bytes(b"")  # empty
    (tmp_path / "img3.png").write_text("not really a png", encoding="utf-8")
    write_image(tmp_path / "img10.png", solid((0, 0, 255)))
    os.symlink(tmp_path / "vanished.png", tmp_path / "img4.png")  # dangling link
    result = scan_paths([tmp_path])
    assert rel(result.images, tmp_path) == ["img1.png", "img2.jpg", "img3.png", "img4.png", "img10.png"]

    loaded, failed = {}, {}
    for path in result.images:  # the batch loop every caller runs
        try:
            loaded[path.name] = load_image(path)
        except ImageLoadError as err:
            failed[path.name] = err.reason
    assert list(loaded) == ["img1.png", "img10.png"]
    assert list(failed) == ["img2.jpg", "img3.png", "img4.png"]
    assert "empty" in failed["img2.jpg"]
    assert "not an image" in failed["img3.png"]
    assert "broken link" in failed["img4.png"]
    assert tuple(loaded["img10.png"][0, 0]) == (0, 0, 255)


def test_explicit_broken_file_is_kept_for_per_file_report(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"")
    result = scan_paths([broken])
    assert result.images == (broken,)
    with pytest.raises(ImageLoadError):
        load_image(result.images[0])


def test_looping_file_link_does_not_break_scan(tmp_path):
    write_image(tmp_path / "ok.png", solid())
    os.symlink(tmp_path / "b.png", tmp_path / "a.png")
    os.symlink(tmp_path / "a.png", tmp_path / "b.png")
    result = scan_paths([tmp_path])
    names = [p.name for p in result.images]
    assert "ok.png" in names
    for name in ("a.png", "b.png"):  # listed, then reported per file when loaded
        assert name in names
        with pytest.raises(ImageLoadError, match="loop"):
            load_image(tmp_path / name)
