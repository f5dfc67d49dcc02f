"""cli.outputs: which outputs a command refuses before it starts (OutputGuard, check_writable),
and the heat-map names planned before the run (cli.classify_plan.heatmap_targets)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.classify_plan import heatmap_targets
from cli.outputs import Output, OutputGuard, check_writable, model_files
from engine.core.errors import AllSightError
from engine.store.naming import image_key

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sample(tmp_path) -> tuple[Path, list[Path]]:
    folder = tmp_path / "S-1"
    folder.mkdir()
    images = []
    for name in ("a.jpg", "b.png"):
        (folder / name).write_bytes(b"\xff\xd8\xff image")
        images.append(folder / name)
    return folder, images


def guard_for(folder: Path, images: list[Path], **kw) -> OutputGuard:
    return OutputGuard(images=images, folders=[folder], **kw)


def test_an_output_onto_an_input_image_by_name_link_or_hard_link(tmp_path, sample):
    folder, images = sample
    guard = guard_for(folder, images)
    link = tmp_path / "link.csv"
    link.symlink_to(images[0])
    hard = tmp_path / "hard.csv"
    os.link(images[1], hard)
    for path, victim in ((images[0], images[0]), (folder / "x" / ".." / "a.jpg", images[0]), (link, images[0]),
                         (hard, images[1])):
        with pytest.raises(AllSightError) as info:
            guard.check([Output("--out", path)])
        assert str(info.value) == f"--out {path} would overwrite the input image {victim}; choose another path"


def test_outputs_onto_each_other(tmp_path, sample):
    folder, images = sample
    guard = guard_for(folder, images)
    out = tmp_path / "r.csv"
    with pytest.raises(AllSightError, match="--out .* and --json .* are the same path"):
        guard.check([Output("--out", out), Output("--json", tmp_path / "." / "r.csv")])
    with pytest.raises(AllSightError, match="--report would write .* twice"):
        guard.check([Output("--report", tmp_path / "r.pdf"), Output("--report", tmp_path / "r.pdf")])
    with pytest.raises(AllSightError, match="--out .* and --heatmaps .* are the same path"):
        guard.check([Output("--out", tmp_path / "heat"), Output("--heatmaps", tmp_path / "heat", folder=True)])
    guard.check([Output("--out", out), Output("--json", tmp_path / "r.json"), Output("--report", tmp_path / "r.pdf")])


def test_image_named_outputs_and_heat_map_folders_inside_an_input_folder(tmp_path, sample):
    folder, images = sample
    guard = guard_for(folder, images)
    for path in (folder / "new.png", folder / "deep" / "er" / "x.JPG"):
        with pytest.raises(AllSightError, match=f"has an image file name inside the input folder {folder}"):
            guard.check([Output("--out", path)])
    for heat in (folder, folder / "heat"):
        with pytest.raises(AllSightError, match=f"--heatmaps {heat} is inside the input folder {folder}"):
            guard.check([Output("--heatmaps", heat, folder=True)])
    with pytest.raises(AllSightError, match="would overwrite the input folder"):
        guard.check([Output("--out", folder)])
    # other files may go into the folder; image files next to it are fine
    guard.check([Output("--out", folder / "results.csv"), Output("--report", folder / "report.pdf"),
                 Output("--out", tmp_path / "S-10" / "x.png"), Output("--heatmaps", tmp_path / "heat", folder=True)])


def test_protected_files_and_named_inputs(tmp_path, sample):
    folder, images = sample
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    db = tmp_path / "db.sqlite3"
    guard = guard_for(folder, images, files=[notes], protected=[("the result database", db)])
    with pytest.raises(AllSightError, match=f"would overwrite the input file {notes}"):
        guard.check([Output("--json", notes)])
    with pytest.raises(AllSightError, match=f"would overwrite the result database {db}"):
        guard.check([Output("--out", db)])  # even before it exists


def test_special_files_may_take_several_outputs(sample):
    folder, images = sample
    if not os.path.exists("/dev/null"):
        pytest.skip("needs /dev/null")
    guard_for(folder, images).check([Output("--out", Path("/dev/null")), Output("--json", Path("/dev/null"))])


def test_model_files(tmp_path):
    weights = tmp_path / "m.safetensors"
    weights.write_bytes(b"x")
    assert {p for _, p in model_files(str(weights))} == {weights, tmp_path / "m.json"}
    assert model_files("resnet18") == [] and model_files(None) == []


def test_check_writable(tmp_path):
    check_writable(tmp_path / "r.csv", "CSV file", create_folders=False)
    check_writable(tmp_path / "new" / "deeper" / "r.pdf", "PDF report")  # the writer will create them
    assert not (tmp_path / "new").exists() and os.listdir(tmp_path) == []
    with pytest.raises(AllSightError, match=f"cannot write the CSV file {tmp_path / 'no' / 'r.csv'}: the folder"):
        check_writable(tmp_path / "no" / "r.csv", "CSV file", create_folders=False)
    with pytest.raises(AllSightError, match="that path is a folder"):
        check_writable(tmp_path, "CSV file")
    (tmp_path / "plain").write_text("x")
    with pytest.raises(AllSightError, match="a part of the path is a file"):
        check_writable(tmp_path / "plain" / "r.json", "JSON file")
    with pytest.raises(AllSightError, match="that path is a file, not a folder"):
        check_writable(tmp_path / "plain", "heat-map folder", folder=True)
    check_writable(tmp_path / "heat", "heat-map folder", folder=True)
    assert sorted(os.listdir(tmp_path)) == ["plain"]


def test_heat_map_names_are_planned_in_scan_order_for_every_image(tmp_path):
    paths = [tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.png", tmp_path / "c" / "X.tif", tmp_path / "y.jpg"]
    targets = heatmap_targets(tmp_path / "heat", paths)
    assert [targets[image_key(p)].name for p in paths] == ["x_gradcam.png", "x_2_gradcam.png", "X_3_gradcam.png",
                                                           "y_gradcam.png"]


def test_evaluate_refuses_a_json_onto_its_inputs(tmp_path):
    data = tmp_path / "data"
    (data / "Benign").mkdir(parents=True)
    image = data / "Benign" / "a.jpg"
    image.write_bytes(b"\xff\xd8\xff")
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"weights")
    env = {**os.environ, "ALLSIGHT_LOG_DIR": str(tmp_path / "logs")}
    for target, words in ((image, "has an image file name inside the input folder"),
                          (data, "would overwrite the input folder"),
                          (model, "would overwrite the model file"),
                          (model.with_suffix(".json"), "would overwrite the model file")):
        proc = subprocess.run([sys.executable, "main.py", "evaluate", str(data), "--model", str(model), "--json",
                               str(target)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith(f"error: --json {target} ")
        assert words in proc.stderr and "Traceback" not in proc.stderr
    assert image.read_bytes() == b"\xff\xd8\xff" and model.read_bytes() == b"weights"
    assert not model.with_suffix(".json").exists()
