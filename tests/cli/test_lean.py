"""The lean install (no ``train`` extra): classify, explain, evaluate and manage models with no
torch at all, and one line saying what to install where torch is needed.

Each command runs in a child Python in which ``torch``, ``torchvision`` and ``onnx`` cannot be
imported (a ``sitecustomize`` on ``PYTHONPATH`` marks them absent, for its own children too), as
on a workstation installed with ``pip install .`` or ``sh packaging/bootstrap.sh lean``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.core.optional import TRAIN_EXTRA
from engine.inference import onnx_export
from tests.conftest import save_tiny_model, synthetic_smear, write_image

ROOT = Path(__file__).resolve().parents[2]
BLOCK = "import sys\nfor _name in ('torch', 'torchvision', 'onnx'):\n    sys.modules[_name] = None\n"


@pytest.fixture
def lean_env(tmp_path) -> dict[str, str]:
    site = tmp_path / "lean-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK)
    # a cache of its own, to see that nothing is exported into it
    return {**os.environ, "PYTHONPATH": str(site), "ALLSIGHT_CACHE_DIR": str(tmp_path / "lean-cache")}


@pytest.fixture
def lean(lean_env):
    def run(*args, timeout=240) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "main.py", *map(str, args)], cwd=ROOT, env=lean_env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    return run


def test_the_simulation_really_has_no_torch(lean_env):
    for name in ("torch", "torchvision", "onnx"):
        proc = subprocess.run([sys.executable, "-c", f"import {name}"], env=lean_env, capture_output=True, text=True,
                              check=False)
        assert proc.returncode == 1 and "ModuleNotFoundError" in proc.stderr or "ImportError" in proc.stderr


def test_classify_explains_and_flags_without_torch(lean, lean_env, tmp_path):
    folder = tmp_path / "in"
    for i in range(3):
        write_image(folder / f"field{i}.png", synthetic_smear(i, 160, i))
    (folder / "broken.jpg").write_text("not an image")
    out, heat = tmp_path / "results.csv", tmp_path / "heat"
    proc = lean("classify", folder, "--out", out, "--json", tmp_path / "r.json", "--heatmaps", heat)
    assert proc.returncode == 3, proc.stderr  # one broken file
    assert "Traceback" not in proc.stderr and "torch" not in proc.stderr
    rows = list(csv.DictReader(out.open()))
    assert sorted(r["status"] for r in rows) == ["error", "ok", "ok", "ok"]
    assert sorted(p.name for p in heat.iterdir()) == [f"field{i}_gradcam.png" for i in range(3)]
    assert json.loads((tmp_path / "r.json").read_text())["results"]
    # the shipped model's own graph ran: nothing was exported (which would need torch)
    cache = Path(lean_env["ALLSIGHT_CACHE_DIR"])
    assert not cache.exists() or not any(cache.rglob("*.onnx"))


def test_evaluate_and_preview_work_without_torch(lean, class_dataset, tmp_path):
    proc = lean("evaluate", class_dataset, "--model", "baseline", "--json", tmp_path / "m.json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "m.json").read_text())["n"] == 48
    image = write_image(tmp_path / "one.png", synthetic_smear(1, 96, 0))
    assert lean("preview", image, "--out", tmp_path / "stages").returncode == 0


@pytest.mark.parametrize("args", [["train", "DATA"], ["refit", "resnet18", "DATA", "--out", "OUT"],
                                  ["classify", "IMAGE", "--backend", "torch"], ["classify", "IMAGE", "--device", "cuda"]])
def test_what_needs_torch_says_what_to_install_in_one_line(lean, tmp_path, class_dataset, args):
    image = write_image(tmp_path / "one.png", synthetic_smear(1, 96, 0))
    subst = {"DATA": class_dataset, "OUT": tmp_path / "out", "IMAGE": image}
    proc = lean(*[subst.get(a, a) for a in args])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and TRAIN_EXTRA in lines[0] and "Traceback" not in proc.stderr, proc.stderr


def test_models_import_a_model_with_its_graph_and_refuse_one_without(lean, tmp_path):
    with_graph = onnx_export.attach_graph(save_tiny_model(tmp_path / "a", model_id="with-graph"))
    without = save_tiny_model(tmp_path / "b", model_id="no-graph")
    assert lean("models", "import", with_graph.weights_path).returncode == 0
    proc = lean("models", "import", without.weights_path)
    assert proc.returncode != 0 and TRAIN_EXTRA in proc.stderr and "Traceback" not in proc.stderr
    listing = lean("models", "list")
    assert listing.returncode == 0 and "with-graph" in listing.stdout and "no-graph" not in listing.stdout
