"""The ``preview`` command and ``--version``, run as a user would: ``python main.py ...``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import engine
from engine.imaging.preprocess import STAGE_NAMES, PreprocessConfig, preprocess
from engine.io.images import load_image
from tests.conftest import synthetic_smear, write_image

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["ALLSIGHT_LOG_DIR"] = str(tmp_path / "logs")  # keep the user's log folder clean
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run(
        [sys.executable, str(REPO / "main.py"), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, path: Path) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:"), lines[0]
    assert str(path) in lines[0]
    assert "unexpected" not in lines[0]  # a known failure, not the bug handler
    return lines[0]


def default_preprocessing() -> PreprocessConfig:
    """What ``preview`` uses without ``--model``: the default model's preprocessing, if installed."""
    from engine.core.errors import ModelError
    from engine.models.resolve import resolve_model_card

    try:
        return resolve_model_card(None).preprocess
    except ModelError:
        return PreprocessConfig()


def test_preview_without_model_shows_what_the_default_model_sees(tmp_path):
    image = write_image(tmp_path / "s.png", synthetic_smear(1, 200, seed=2))
    proc = run_cli("preview", str(image), "--out", str(tmp_path / "out"), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    size = default_preprocessing().image_size
    assert load_image(stage_files(tmp_path / "out")["original"]).shape == (size, size, 3)
    expected = "preprocessing of model resnet18" if size != 224 else "no model installed"
    assert expected in proc.stderr


def stage_files(out: Path) -> dict[str, Path]:
    files = sorted(out.glob("*.png"))
    found = {}
    for name in STAGE_NAMES:
        matches = [f for f in files if f.stem.endswith(f"_{name}")]
        assert len(matches) == 1, (name, files)
        found[name] = matches[0]
    return found


def test_preview_writes_every_stage(tmp_path):
    image = write_image(tmp_path / "in" / "smear 1.png", synthetic_smear(2, 96, seed=4)[:, :80])
    out = tmp_path / "out" / "nested"  # created as needed
    proc = run_cli("preview", str(image), "--out", str(out), "--image-size", "64", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr

    files = stage_files(out)
    assert len(list(out.glob("*.png"))) == 5
    # the command lists what it wrote
    assert sorted(Path(line) for line in proc.stdout.split("\n") if line.strip()) == sorted(files.values())

    # The PNGs hold exactly what preprocess computes in-process (the default model's
    # preprocessing at the size asked for, RGB order kept).
    expected = preprocess(load_image(image), default_preprocessing().replace(image_size=64)).as_dict()
    for name, path in files.items():
        with Image.open(path) as img:
            arr = np.asarray(img)
        if name == "mask":
            assert arr.shape == (64, 64)
            assert set(np.unique(arr)) <= {0, 255}
        else:
            assert arr.shape == (64, 64, 3), name
        assert np.array_equal(arr, expected[name]), f"{name} stage differs from preprocess()"
        assert load_image(path).shape == (64, 64, 3)  # and it loads through the normal path


def test_preview_keeps_colours_rgb(tmp_path):
    image = write_image(tmp_path / "red.png", np.full((40, 40, 3), (255, 0, 0), np.uint8))
    out = tmp_path / "out"
    proc = run_cli("preview", str(image), "--out", str(out), "--image-size", "32", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    arr = load_image(stage_files(out)["original"])
    assert tuple(arr[16, 16]) == (255, 0, 0)


def test_preview_exif_rotated_input_is_upright(tmp_path):
    # Upright: 64 tall x 32 wide, top half red, bottom half blue. Stored rotated, EXIF says 6.
    upright = np.zeros((64, 32, 3), np.uint8)
    upright[:32] = (255, 0, 0)
    upright[32:] = (0, 0, 255)
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # 32 tall x 64 wide: red on the left
    exif = Image.Exif()
    exif[0x0112] = 6
    image = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(image, exif=exif, quality=95, subsampling=0)

    out = tmp_path / "out"
    proc = run_cli("preview", str(image), "--out", str(out), "--image-size", "32", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    original = load_image(stage_files(out)["original"])  # centre 32x32 of the upright image
    assert original.shape == (32, 32, 3)
    top, bottom = original[4, 16].astype(int), original[-5, 16].astype(int)
    assert top[0] > 200 and top[2] < 60, f"top should be red: {top}"
    assert bottom[2] > 200 and bottom[0] < 60, f"bottom should be blue: {bottom}"
    # left and right of the same row agree (a sideways image would split left/right)
    assert np.abs(original[4, 3].astype(int) - original[4, -4].astype(int)).max() < 40


def test_preview_broken_file_one_line_error(tmp_path):
    image = tmp_path / "broken.jpg"
    image.write_text("this is not a JPEG", encoding="utf-8")
    out = tmp_path / "out"
    proc = run_cli("preview", str(image), "--out", str(out), tmp_path=tmp_path)
    line = assert_one_line_error(proc, image)
    assert "not an image" in line
    assert proc.stdout == ""
    assert not out.exists()  # nothing half-written


def test_preview_truncated_file_one_line_error(tmp_path):
    good = write_image(tmp_path / "good.jpg", synthetic_smear(0, 64), quality=90)
    image = tmp_path / "cut.jpg"
    image.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    proc = run_cli("preview", str(image), "--out", str(tmp_path / "out"), tmp_path=tmp_path)
    assert "truncated" in assert_one_line_error(proc, image)


def test_preview_missing_file_one_line_error(tmp_path):
    image = tmp_path / "does_not_exist.png"
    proc = run_cli("preview", str(image), "--out", str(tmp_path / "out"), tmp_path=tmp_path)
    line = assert_one_line_error(proc, image)
    assert "not found" in line


def test_preview_unwritable_output_one_line_error(tmp_path):
    image = write_image(tmp_path / "ok.png", synthetic_smear(1, 48))
    blocker = tmp_path / "out_is_a_file"
    blocker.write_text("x", encoding="utf-8")
    proc = run_cli("preview", str(image), "--out", str(blocker), tmp_path=tmp_path)
    line = assert_one_line_error(proc, blocker)
    assert "output folder" in line


def test_version():
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), "--version"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"ALLSight {engine.__version__}"
    assert engine.__version__.count(".") >= 2


@pytest.mark.parametrize("args", [["preview"], ["preview", "x.png"]])
def test_preview_usage_errors_are_one_error_line(tmp_path, args):
    proc = run_cli(*args, tmp_path=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr


def test_help_lists_every_command():
    run = subprocess.run([sys.executable, "main.py", "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 0
    for command in ("preview", "train", "evaluate", "classify"):
        assert command in run.stdout
