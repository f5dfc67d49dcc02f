import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.core.errors import Cancelled, DataLayoutError
from engine.core.progress import CancelToken
from engine.models.resolve import load_model
from engine.training.train import TrainConfig, train
from tests.conftest import synthetic_smear, write_image

REPO = Path(__file__).resolve().parents[3]


def quick_config(data_dir, out_dir, **changes):
    base = dict(data_dir=str(data_dir), arch="baseline", epochs=3, image_size=32, batch_size=8,
                out_dir=str(out_dir), model_id="quick", fp16_weights=False, workers=1)
    base.update(changes)
    return TrainConfig(**base)


def run_to_end(cfg, **kwargs):
    records = list(train(cfg, **kwargs))
    assert records[-1].phase == "done"
    return records


def test_training_writes_a_complete_verified_model(class_dataset, tmp_path):
    records = run_to_end(quick_config(class_dataset, tmp_path / "out"))
    phases = {r.phase for r in records}
    assert {"loading images", "train", "validate", "calibrate", "test", "done"} <= phases
    assert all(r.step <= r.total for r in records)
    model = load_model(records[-1].metrics["model_path"])
    card = json.loads(model.card.path.read_text())
    assert card["architecture"] == "baseline" and card["training"]["seed"] == 0
    assert card["preprocess"]["image_size"] == 32
    assert card["data_fingerprint"]["n_images"] == 48
    # and its ONNX graph, so a lean (torch-free) install can run it
    from engine.models.graphs import read_graph

    assert read_graph(model.card) is not None
    # and its INT8 graph, quantised on its training images, the check picked on validation
    assert read_graph(model.card, "int8") is not None
    assert card["graphs"]["int8"]["agreement"]["images"] == 12 and card["graphs"]["int8"]["calibration"]["images"] == 28
    assert card["data_fingerprint"]["split_sizes"] == {"train": 28, "val": 8, "test": 12}
    assert card["calibration"]["temperature"] > 0
    assert "test_random" in card["metrics"] and card["metrics"]["test_random"]["n"] == 12
    assert card["ood"]["method"] == "mahalanobis-multilayer" and "threshold" in card["ood"]
    assert card["ood"]["feature_layers"] == ["features.1", "features.4"]  # the registry's OOD layers
    assert set(model.extras) == {f"ood.{layer}.{part}" for layer in ("features.1", "features.4")
                                 for part in ("means", "precision")}
    assert card["ood"]["feature_layer"] == "features.4"  # the registry's layer name, not a class name


def test_a_float16_model_gets_the_graph_of_the_numbers_its_weights_file_holds(class_dataset, tmp_path):
    """Weights saved in float16 are rounded; the graph is made from the file, not from the float32
    network still in memory (which ran other numbers, and made a graph twice the size)."""
    import onnx

    from engine.models.graphs import read_graph

    records = run_to_end(quick_config(class_dataset, tmp_path / "out", fp16_weights=True, epochs=1))
    card = load_model(records[-1].metrics["model_path"]).card
    graph = onnx.load_from_string(read_graph(card))
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in graph.graph.initializer)


def test_same_seed_gives_identical_weights(class_dataset, tmp_path):
    a = run_to_end(quick_config(class_dataset, tmp_path / "a"))[-1].metrics["model_path"]
    b = run_to_end(quick_config(class_dataset, tmp_path / "b"))[-1].metrics["model_path"]
    assert load_model(a).card.weights_sha256 == load_model(b).card.weights_sha256


def test_resume_after_interruption_matches_an_uninterrupted_run(class_dataset, tmp_path):
    whole = run_to_end(quick_config(class_dataset, tmp_path / "whole"))[-1].metrics["model_path"]
    cancel = CancelToken()
    cfg = quick_config(class_dataset, tmp_path / "cut")
    with pytest.raises(Cancelled):
        for record in train(cfg, cancel=cancel):
            if record.phase == "validate" and record.metrics["epoch"] == 1:
                cancel.cancel()
    assert (tmp_path / "cut" / "quick.resume.safetensors").is_file()
    records = run_to_end(cfg, resume=True)
    assert records[0].phase != "loading images" or any(r.phase == "resumed" for r in records)
    resumed = records[-1].metrics["model_path"]
    assert load_model(resumed).card.weights_sha256 == load_model(whole).card.weights_sha256
    # the card's training time covers the epochs of the interrupted session too
    training = load_model(resumed).card.training
    assert len(training["history"]) == cfg.epochs
    assert training["train_seconds"] == pytest.approx(sum(h["seconds"] for h in training["history"]), abs=0.051)


def test_split_kinds_are_stratified_and_disjoint(class_dataset):
    from engine.training.data import discover_dataset, split_dataset

    ds = discover_dataset(class_dataset)
    for kind in ("random", "block"):
        parts = split_dataset(ds, kind, seed=3)
        paths = [s.path for name in parts for s in parts[name]]
        assert len(paths) == len(set(paths)) == 48
        for name in parts:
            assert {s.label for s in parts[name]} == {0, 1, 2, 3}


def test_block_split_keeps_neighbouring_numbers_together(class_dataset):
    from engine.training.data import discover_dataset, split_dataset

    parts = split_dataset(discover_dataset(class_dataset), "block", seed=0, n_blocks=4)
    for label in range(4):
        for name, members in parts.items():
            numbers = sorted(s.number for s in members if s.label == label)
            # 12 images in 4 blocks of 3: every split's numbers come in whole runs of 3
            runs = [numbers[i:i + 3] for i in range(0, len(numbers), 3)]
            assert all(r == list(range(r[0], r[0] + 3)) for r in runs), (name, numbers)


@pytest.mark.parametrize("layout, message", [
    ("missing", "not a folder"),
    ("empty", "no images found"),
    ("one_class", "1 class(es) only"),
    ("unknown", "unknown class folder"),
])
def test_bad_layouts_are_explained_before_training(tmp_path, layout, message):
    root = tmp_path / "data"
    if layout != "missing":
        root.mkdir()
    if layout == "one_class":
        for i in range(5):
            write_image(root / "Pre" / f"p{i}.png", synthetic_smear(2, 32, i))
    if layout == "unknown":
        write_image(root / "Benign" / "b.png", synthetic_smear(0, 32))
        write_image(root / "Leukemia" / "x.png", synthetic_smear(1, 32))
    with pytest.raises(DataLayoutError, match=re.escape(message)):
        next(iter(train(quick_config(root, tmp_path / "out"))))


def test_broken_images_are_listed_and_skipped_only_on_request(class_dataset, tmp_path):
    broken = class_dataset / "Early" / "WBC-Early-999.jpg"
    broken.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataLayoutError) as info:
        list(train(quick_config(class_dataset, tmp_path / "out")))
    assert "WBC-Early-999.jpg" in str(info.value) and "--skip-broken" in str(info.value)
    records = run_to_end(quick_config(class_dataset, tmp_path / "out2", skip_broken=True))
    assert any(r.metrics.get("skipped_broken") == 1 for r in records)


def test_cli_train_and_evaluate_end_to_end(class_dataset, tmp_path):
    out = tmp_path / "cli"
    run = subprocess.run(
        [sys.executable, "main.py", "train", str(class_dataset), "--arch", "baseline", "--init", "scratch",
         "--epochs", "2", "--image-size", "32", "--batch-size", "8", "--out", str(out), "--id", "cli"],
        cwd=REPO, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    assert "test accuracy" in run.stdout
    metrics = tmp_path / "m.json"
    run = subprocess.run(
        [sys.executable, "main.py", "evaluate", str(class_dataset), "--model", str(out / "cli.safetensors"),
         "--json", str(metrics)], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    data = json.loads(metrics.read_text())
    assert set(data) == {"n", "accuracy", "macro_f1", "ece", "classes", "per_class", "confusion_matrix", "model"}
    assert data["n"] == 48 and data["classes"] == ["Benign", "Early", "Pre", "Pro"]
    assert set(data["per_class"]["Pre"]) == {"precision", "recall", "f1", "support"}
    assert sum(map(sum, data["confusion_matrix"])) == 48
    assert set(data["model"]) == {"id", "version", "sha256"}
    assert "confusion matrix" in run.stdout


def test_cli_train_without_imagenet_weights_says_so_in_one_line(class_dataset, tmp_path, monkeypatch):
    run = subprocess.run(
        [sys.executable, "main.py", "train", str(class_dataset), "--arch", "resnet18", "--init", "imagenet",
         "--epochs", "1", "--out", str(tmp_path / "x")],
        cwd=REPO, capture_output=True, text=True, timeout=240,
        env={**__import__("os").environ, "TORCH_HOME": str(tmp_path / "torch-home"),
             "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"})
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "ImageNet weights for resnet18 are not available" in errors[0]
    assert "Traceback" not in run.stderr


def test_cli_train_bad_layout_is_one_line_and_creates_no_output_folder(tmp_path):
    # run from an empty folder with the default --out (runs/model): a refused run must not leave
    # it behind (it once did, in the repository, from this very test)
    run = subprocess.run([sys.executable, str(REPO / "main.py"), "train", str(tmp_path / "nowhere")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().startswith("error:") and "not a folder" in run.stderr
    assert "Traceback" not in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_precise_batchnorm_uses_exact_statistics_of_clean_images():
    import numpy as np
    import torch

    from engine.imaging.preprocess import PreprocessConfig
    from engine.training.train import recompute_batchnorm

    net = torch.nn.Sequential(torch.nn.BatchNorm2d(3))
    pp = PreprocessConfig(image_size=16, model_input="original", mean=(0, 0, 0), std=(1, 1, 1))
    images = np.stack([np.full((16, 16, 3), v, np.uint8) for v in (0, 51, 102, 153)])
    net[0].running_mean.fill_(7.0)
    recompute_batchnorm(net, images, pp, batch_size=2)
    expected = images.astype(np.float32).mean() / 255.0
    assert torch.allclose(net[0].running_mean, torch.full((3,), expected), atol=1e-5)
    assert net[0].momentum == 0.1 and not net.training

