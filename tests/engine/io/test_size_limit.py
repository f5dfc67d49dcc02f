"""engine.io.images: a file larger than the size limit is refused before a byte is read."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.core.errors import ImageLoadError
from engine.io import images
from engine.io.images import DEFAULT_MAX_IMAGE_MB, MAX_FILE_BYTES, load_image
from tests.conftest import synthetic_smear, write_image

ROOT = Path(__file__).resolve().parents[3]


def sparse_jpeg(path: Path, size: int, tmp_path: Path) -> Path:
    head = write_image(tmp_path / "head.jpg", synthetic_smear(0, 40, 0), quality=92).read_bytes()
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return path


def test_the_default_limit_is_64_mb():
    if "ALLSIGHT_MAX_IMAGE_MB" not in os.environ:
        assert MAX_FILE_BYTES == DEFAULT_MAX_IMAGE_MB * 2**20 == 64 * 2**20


def test_a_sparse_3_gb_jpeg_is_refused_fast_without_reading_it(tmp_path, monkeypatch):
    huge = sparse_jpeg(tmp_path / "huge.jpg", 3 * 2**30, tmp_path)
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    start = time.monotonic()
    with pytest.raises(ImageLoadError) as info:
        load_image(huge)
    assert time.monotonic() - start < 5
    assert info.value.path == huge
    assert info.value.reason.startswith("file is 3,072 MB, larger than the 64 MB limit for an image file")
    assert "ALLSIGHT_MAX_IMAGE_MB" in info.value.reason
    assert opened == []  # refused from its size alone


def test_the_limit_is_a_keyword_argument(tmp_path):
    path = write_image(tmp_path / "a.png", synthetic_smear(1, 48, 0))
    size = path.stat().st_size
    assert load_image(path, max_bytes=size).shape == (48, 48, 3)  # exactly the limit is fine
    with pytest.raises(ImageLoadError, match=f"file is {size:,} bytes, larger than the {size - 1:,} bytes limit"):
        load_image(path, max_bytes=size - 1)
    big = sparse_jpeg(tmp_path / "b.jpg", 5 * 2**20 + 2**19, tmp_path)
    with pytest.raises(ImageLoadError, match=r"file is 5\.5 MB, larger than the 2 MB limit"):
        load_image(big, max_bytes=2 * 2**20)


def test_a_file_that_grew_after_the_check_is_refused_too(tmp_path, monkeypatch):
    path = write_image(tmp_path / "a.jpg", synthetic_smear(1, 48, 0), quality=90)
    monkeypatch.setattr(images, "_check_file", lambda p, m: None)  # as if it had been small when checked
    with pytest.raises(ImageLoadError, match="larger than the 100 bytes limit"):
        load_image(path, max_bytes=100)


@pytest.mark.parametrize(("value", "expected"), [("2", 2 * 2**20), ("0.5", 2**19), ("nonsense", 64 * 2**20),
                                                 ("-1", 64 * 2**20), ("0", 64 * 2**20), ("", 64 * 2**20)])
def test_the_environment_variable_sets_the_limit_once(value, expected):
    env = {**os.environ, "ALLSIGHT_MAX_IMAGE_MB": value}
    code = "from engine.io.images import MAX_FILE_BYTES; print(MAX_FILE_BYTES)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True, timeout=60)
    assert int(out.stdout) == expected
