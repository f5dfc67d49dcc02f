"""The Compare step's figures on tiny synthetic data: both models on the same images, the
background-swap check on the reference set, and what counts as a regression."""

from __future__ import annotations

from engine.models.resolve import load_model
from engine.training.compare import compare_models, regressions, swap_pairs
from engine.training.data import Sample
from tests.conftest import save_tiny_model, synthetic_smear, write_image


def samples(tmp_path, n_per_class: int = 4) -> list[Sample]:
    out = []
    for label in range(4):
        for i in range(n_per_class):
            out.append(Sample(write_image(tmp_path / f"c{label}-{i}.png", synthetic_smear(label, 64, 10 * label + i)),
                              label))
    return out


def test_both_models_are_measured_on_the_same_images_with_a_swap_check_on_the_reference(tmp_path):
    a = load_model(save_tiny_model(tmp_path / "a", model_id="a").weights_path)
    b = load_model(save_tiny_model(tmp_path / "b", model_id="b", image_size=32).weights_path)
    ref = samples(tmp_path / "ref")
    report = compare_models(a, b, {"lab_validation": ref[:8], "reference": ref, "empty": []})
    assert set(report) == {"lab_validation", "reference", "models"}  # an empty set is left out
    for who in ("candidate", "current"):
        assert report["reference"][who]["n"] == 16 and "background_swap" in report["reference"][who]
        assert "background_swap" not in report["lab_validation"][who]
        swap = report["reference"][who]["background_swap"]
        assert swap["n"] == len(swap_pairs(ref)) and 0 <= swap["follows_cells"] <= 1
    assert report["models"]["candidate"]["id"] == "a"


def test_pairs_are_of_different_classes_and_seeded():
    refs = [Sample(__file__, i % 4) for i in range(20)]  # paths are not read
    pairs = swap_pairs(refs, n=10)
    assert pairs == swap_pairs(refs, n=10) and all(refs[a].label != refs[b].label for a, b in pairs)


def test_a_candidate_that_learnt_the_background_is_called_out():
    def figures(acc, cells):
        return {"accuracy": acc, "recall": {"Pre": acc}, "per_class": {"Pre": {"support": 3}}, "ece": 0.05,
                "flagged_fraction": 0.2, "background_swap": {"follows_cells": cells, "follows_background": 0.1}}

    worse = regressions(figures(0.95, 0.78), figures(0.90, 0.88))
    assert worse and "follows the white cell in 78 %" in worse[0] and "learnt the background" in worse[0]
    assert regressions(figures(0.95, 0.88), figures(0.90, 0.88)) == []
