"""Shared fixtures: synthetic smear-like images, class-folder datasets and tiny models.

No test depends on the real data set except those marked ``realdata`` (skipped when absent).
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Exported ONNX graphs go to a throw-away cache, never the user's (shared by the whole run: the
# tiny test models are deterministic, so their graphs are reused across tests).
os.environ["ALLSIGHT_CACHE_DIR"] = tempfile.mkdtemp(prefix="allsight-test-cache-")

#: The person's own ALLSight folders, which no test may write to (checked at the end of the run).
_USER_FOLDERS = ("config", "data", "log")


def _real_user_folders() -> dict[str, Path]:
    import platformdirs

    return {k: Path(getattr(platformdirs, f"user_{k}_dir")("ALLSight", appauthor=False)) for k in _USER_FOLDERS}


def _snapshot(folders: dict[str, Path]) -> dict[str, tuple[int, int]]:
    out = {}
    for folder in folders.values():
        if folder.is_dir():
            for p in folder.rglob("*"):
                if p.is_file():
                    st = p.stat()
                    out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


def pytest_sessionstart(session):
    session.config._allsight_user_files = _snapshot(_real_user_folders())


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_allsight_user_files", None)
    if before is None:
        return
    after = _snapshot(_real_user_folders())
    touched = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    if touched:  # a test wrote to the person's own settings, database or log
        print(f"\nERROR: the tests changed the user's own ALLSight files: {touched[:5]}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def private_user_folders(tmp_path_factory, monkeypatch):
    """Settings, database and log of every test (and of the commands it runs) in its own
    temporary folders, never the person's (``engine.core.paths``)."""
    base = tmp_path_factory.mktemp("user-folders")
    for kind in _USER_FOLDERS:
        monkeypatch.setenv(f"ALLSIGHT_{kind.upper()}_DIR", str(base / kind))

REAL_DATA_CANDIDATES = [
    os.environ.get("ALLSIGHT_DATA", ""),
    str(Path(__file__).resolve().parents[2] / "shared" / "data" / "aria-all"),
]


def real_data_dir() -> Path | None:
    for candidate in REAL_DATA_CANDIDATES:
        if candidate and (Path(candidate) / "Benign").is_dir():
            return Path(candidate)
    return None


@pytest.fixture
def real_data() -> Path:
    path = real_data_dir()
    if path is None:
        pytest.skip("real ALL data set not found: set ALLSIGHT_DATA or place it at ../shared/data/aria-all")
    return path


# Class-specific synthetic "smears": a pale background with purple blobs whose size and count
# depend on the class, so a tiny model can learn them in a few steps.
_CLASS_STYLE = {0: (3, 6), 1: (6, 9), 2: (2, 14), 3: (9, 4)}


def synthetic_smear(label: int = 0, size: int = 64, seed: int = 0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng([label, seed])
    img = np.full((size, size, 3), (236, 226, 232), np.uint8)
    img = np.clip(img.astype(np.int16) + rng.integers(-8, 8, img.shape), 0, 255).astype(np.uint8)
    count, radius = _CLASS_STYLE[label % 4]
    for _ in range(count):
        c = tuple(int(v) for v in rng.integers(radius, size - radius, 2))
        r = max(2, int(radius * size / 64 * rng.uniform(0.7, 1.3)))
        cv2.circle(img, c, r, (120 + 10 * label, 60, 170), -1)
    return img


def synthetic_field_without_white_cell(size: int = 64, seed: int = 0) -> np.ndarray:
    """A field like :func:`synthetic_smear` with red cells only (pink-red discs, no violet):
    stained, in focus, not blank, and nothing :mod:`engine.imaging.cells` calls a white cell."""
    import cv2

    rng = np.random.default_rng([99, seed])
    img = np.full((size, size, 3), (236, 226, 232), np.uint8)
    img = np.clip(img.astype(np.int16) + rng.integers(-8, 8, img.shape), 0, 255).astype(np.uint8)
    radius = max(3, size // 13)
    for _ in range(12):
        c = tuple(int(v) for v in rng.integers(radius, size - radius, 2))
        cv2.circle(img, c, radius, (215, 120, 130), -1)
    return img


@pytest.fixture
def make_smear():
    return synthetic_smear


def read_terminal(master: int) -> str:
    """Everything a child process wrote to a pseudo-terminal (after its side was closed), decoded;
    closes ``master``."""
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other end is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return b"".join(chunks).decode("utf-8", "replace")


def fake_image_files(folder: Path, n: int, stem: str = "img", text: str = "fake image") -> list[Path]:
    """``n`` small files named like images (``<stem>00.jpg``...), each with different bytes: for
    store tests, which hash files but never decode them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}{i:02d}.jpg" for i in range(n)]
    for i, path in enumerate(paths):
        path.write_bytes(f"{text} {i}".encode())
    return paths


def write_image(path: Path, rgb: np.ndarray, **save_kwargs) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, **save_kwargs)
    return path


@pytest.fixture
def class_dataset(tmp_path) -> Path:
    """A tiny class-folder dataset: 12 images per class, numbered like the real one."""
    root = tmp_path / "dataset"
    for label, name in enumerate(("Benign", "Early", "Pre", "Pro")):
        for i in range(12):
            write_image(root / name / f"WBC-{name}-{i + 1:03d}.jpg", synthetic_smear(label, 48, i), quality=95)
    return root


def save_tiny_model(out_dir: Path, arch: str = "baseline", image_size: int = 32, model_id: str = "tiny",
                    ood_threshold: float = 1e9):
    """A randomly initialised but complete model (card, weights, OOD tensors) for fast tests.
    ``ood_threshold=0`` makes every image "unlike the training images" (scores are > 0)."""
    import torch

    from engine.imaging.preprocess import PreprocessConfig
    from engine.models.card import ModelCard
    from engine.models.checkpoint import save_model
    from engine.models.registry import build_model

    torch.manual_seed(0)
    net = build_model(arch, image_size=image_size)
    feat_dim = {"baseline": 10, "resnet18": 512}[arch]
    card = ModelCard(
        id=model_id, version="0.0.1", architecture=arch,
        preprocess=PreprocessConfig(image_size=image_size),
        temperature=1.0, review_threshold=0.5,
        ood={"method": "mahalanobis", "threshold": ood_threshold, "tensors": ["ood.means", "ood.precision"]},
        weights_dtype="float32",
    )
    tensors = {f"net.{k}": v for k, v in net.state_dict().items()}
    tensors["ood.means"] = torch.zeros(4, feat_dim)
    tensors["ood.precision"] = torch.eye(feat_dim)
    return save_model(tensors, card, out_dir, model_id)


def save_tiny_int8_model(root: Path):
    """A tiny model with its fp32 and INT8 graphs (engine.training.int8), made from a tiny
    class-folder set of synthetic smears under ``root``; returns ``(card, data folder)``."""
    from engine.inference.onnx_export import attach_graph
    from engine.training.int8 import attach_int8_graph

    data = root / "dataset"
    for label, name in enumerate(("Benign", "Early", "Pre", "Pro")):
        for i in range(10):
            write_image(data / name / f"WBC-{name}-{i + 1:03d}.jpg", synthetic_smear(label, 48, i), quality=95)
    card = attach_graph(save_tiny_model(root / "m"))
    return attach_int8_graph(card, data, calibration_images=16, speed_images=8), data


@pytest.fixture
def tiny_model(tmp_path) -> Path:
    """Path to a tiny baseline model's .safetensors file."""
    return save_tiny_model(tmp_path / "models").weights_path


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail any test that leaves a Python thread running (workers must be joined)."""
    before = set(threading.enumerate())
    yield
    import time

    deadline = time.time() + 2.0
    while time.time() < deadline:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
        if not leaked:
            return
        time.sleep(0.05)
    pytest.fail(f"test leaked threads: {[t.name for t in leaked]}")
from tests.pg_fixtures import lab_accounts, own_pg_server, pg_server, pg_url  # noqa: E402,F401 - a real PostgreSQL for the store's tests
