"""The shipped ResNet18's INT8 graph with its fp32 check, on the test split of the ALL set it was
scored on (needs the data set): the calls agree with fp32's on all but at most 0.2 % of the images
(issue #17), the flags as the card records, and the card's figures are what a run gives."""

from __future__ import annotations

import pytest

from engine.inference.classifier import Classifier
from engine.models.resolve import SHIPPED_MODELS_DIR

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def test_split():
    from engine.models.checkpoint import read_card
    from engine.training.data import split_samples
    from tests.conftest import real_data_dir

    root = real_data_dir()
    if root is None:
        pytest.skip("the ALL image set is not present ($ALLSIGHT_DATA or ../shared/data/aria-all)")
    card = read_card(SHIPPED_MODELS_DIR / "resnet18.json")
    return card, [s.path for s in split_samples(card, root, "test")]


def test_int8_with_its_check_takes_fp32s_calls_and_flags_on_the_test_split(test_split):
    card, paths = test_split
    fp32 = list(Classifier(card, device="cpu", precision="fp32").classify_paths(paths))
    int8_classifier = Classifier(card, device="cpu", precision="int8")
    int8 = list(int8_classifier.classify_paths(paths))
    calls = sum(a.predicted_class == b.predicted_class for a, b in zip(fp32, int8, strict=True)) / len(paths)
    flags = sum(a.needs_review == b.needs_review for a, b in zip(fp32, int8, strict=True)) / len(paths)
    recorded = card.graphs["int8"]["agreement"]
    assert calls >= 0.998
    assert calls == pytest.approx(recorded["call_agreement"]) and flags == pytest.approx(recorded["flag_agreement"])
    checked = int8_classifier.backend.images_checked / len(paths)
    assert checked == pytest.approx(recorded["fp32_rerun_fraction"], abs=0.01)


def test_the_shipped_models_carry_their_int8_graph_and_say_how_it_was_made():
    for model in ("resnet18", "baseline"):
        entry = Classifier(model, device="cpu", precision="fp32").card.graphs["int8"]
        assert entry["calibration"]["split"] == "train" and entry["agreement"]["check_picked_on"] == "val"
        assert entry["agreement"]["call_agreement"] >= 0.998
