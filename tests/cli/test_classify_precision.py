"""`classify --precision`: INT8 with its fp32 check where the model has it, fp32 on request, and a
clear error where INT8 is asked of a model without an INT8 graph."""

from __future__ import annotations

import json

from tests.cli.test_classify import classify, smear_folder
from tests.conftest import save_tiny_int8_model


def test_int8_runs_with_its_fp32_check_and_says_so(tmp_path):
    card, _ = save_tiny_int8_model(tmp_path / "model")
    smear_folder(tmp_path / "in", 4)
    js = tmp_path / "r.json"
    proc = classify(tmp_path / "in", "--model", card.path, "--out", tmp_path / "r.csv", "--json", js,
                    "--device", "cpu", "--precision", "int8")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(js.read_text())
    assert doc["precision"] == "int8" and 0 <= doc["fp32_checked"] <= 4
    assert "ONNX Runtime, INT8" in proc.stderr


def test_fp32_on_request_runs_the_fp32_graph(tmp_path):
    card, _ = save_tiny_int8_model(tmp_path / "model")
    smear_folder(tmp_path / "in", 2)
    js = tmp_path / "r.json"
    proc = classify(tmp_path / "in", "--model", card.path, "--out", tmp_path / "r.csv", "--json", js,
                    "--device", "cpu", "--precision", "fp32")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(js.read_text())
    assert doc["precision"] == "fp32" and "fp32_checked" not in doc


def test_int8_asked_of_a_model_without_one_is_one_clear_line_and_no_output(tmp_path, tiny_model):
    smear_folder(tmp_path / "in", 2)
    out = tmp_path / "r.csv"
    proc = classify(tmp_path / "in", "--model", tiny_model, "--out", out, "--device", "cpu", "--precision", "int8")
    assert proc.returncode == 2
    assert "has no INT8 graph" in proc.stderr and "use precision fp32 or auto" in proc.stderr
    assert not out.exists()
