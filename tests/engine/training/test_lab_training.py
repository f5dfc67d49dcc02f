"""A lab's fine-tune on tiny synthetic data: store reviews and class folders together, held out by
sample; refused data says every reason; the card names what it was trained on; distillation
and replay run."""

from __future__ import annotations

import pytest

from engine.core.errors import DataLayoutError
from engine.models.resolve import load_model
from engine.store.results import ResultStore
from engine.training.lab_training import lab_training_data, survey
from engine.training.train import TrainConfig, train
from tests.conftest import save_tiny_model
from tests.engine.training.test_lab_data import class_folders, signed_off_sample


def test_store_and_folder_images_train_together_held_out_by_sample(tmp_path):
    folders = class_folders(tmp_path / "labelled", per_class=10)
    with ResultStore.open(tmp_path / "db.sqlite3") as store:
        for s in range(6):  # two samples per reviewed class: one can be held out
            final = ("Pro", "Pre", "Early")[s % 3]
            signed_off_sample(store, tmp_path / "store", f"S-{s}", [final] * 3, label=s % 3, seed=200 + 10 * s)
        data = lab_training_data(folders=[folders], store=store, seed=0)
    assert data.fingerprint["n_images"] == 58 and data.fingerprint["n_samples"] == 6
    assert set(data.fingerprint["sources"]) == {"folder", "store"}
    store_val = {im.path.parent.name for im in data.val if im.path.parent.parent.name == "store"}
    store_train = {im.path.parent.name for im in data.train if im.path.parent.parent.name == "store"}
    assert store_val and not store_val & store_train  # a sample is on one side only
    assert data.replay_train == () and data.reference == ()


def test_data_that_cannot_train_is_refused_with_every_reason(tmp_path):
    folders = class_folders(tmp_path / "labelled", per_class=3, classes=("Benign", "Early", "Pre"))
    (folders / "Others").mkdir()
    (folders / "Benign" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(DataLayoutError) as err:
        lab_training_data(folders=[folders])
    text = str(err.value)
    assert "unknown class folder" in text and "no labelled images of Pro" in text and "too few images" in text
    assert "broken.png" in text and "--skip-broken" in text
    with ResultStore.open(tmp_path / "db.sqlite3") as store, pytest.raises(DataLayoutError, match="no signed-off"):
        lab_training_data(store=store)


def test_a_fine_tune_with_distillation_saves_a_model_whose_card_names_the_lab_data(tmp_path):
    base = save_tiny_model(tmp_path / "base", model_id="base")
    data = lab_training_data(folders=[class_folders(tmp_path / "labelled", per_class=10)], seed=0)
    cfg = TrainConfig(data_dir=str(tmp_path / "labelled"), arch="baseline", init=str(base.weights_path), epochs=2,
                      image_size=32, batch_size=8, out_dir=str(tmp_path / "out"), model_id="lab", distill=1.0,
                      precise_bn_images=0, workers=1)
    phases = [p.phase for p in train(cfg, data=data)]
    assert phases[-1] == "done" and phases.count("validate") == 2
    card = load_model(tmp_path / "out" / "lab.safetensors").card
    assert card.data_fingerprint["sha256"] == data.fingerprint["sha256"]
    assert card.training["recipe"]["distill"] == 1.0
    assert card.metrics["test_random"]["n"] == len(data.val)  # the card's test figure: the lab's held-out images


def test_the_survey_counts_the_reviews_made_in_label_next(tmp_path):
    from engine.core.records import ImageResult
    from tests.conftest import synthetic_smear, write_image

    with ResultStore.open(tmp_path / "db.sqlite3") as store:
        paths = [write_image(tmp_path / "S-9" / f"f{i}.png", synthetic_smear(2, 40, 900 + i)) for i in range(3)]
        store.create_or_get_sample("S-9", tmp_path / "S-9")
        store.add_images("S-9", paths)
        for p in paths:
            store.record_prediction("S-9", p, ImageResult(str(p), "ok", "Pre", 0.5, needs_review=True), "m", "1",
                                    "c" * 64)
        store.record_review("S-9", paths[0], "Pre", "tom", via="label_next")
        store.record_review("S-9", paths[1], "Pre", "tom", via="label_next")
        store.record_review("S-9", paths[1], "Early", "tom")  # reviewed again, elsewhere: its latest review counts
        store.record_review("S-9", paths[2], "Pre", "tom")
        store.sign_off("S-9", "rita", "I approve")
        found = survey(store=store)
    assert [im.via_label_next for im in sorted(found.images, key=lambda im: im.path.name)] == [True, False, False]


def test_a_fine_tune_keeps_the_base_models_augmentation_and_replay_replaces_distillation():
    from engine.imaging.augment import AugmentConfig
    from engine.models.resolve import resolve_model_card
    from engine.training.lab_training import base_augment, default_distill, fine_tune_augment

    shipped = resolve_model_card("resnet18")
    swap = shipped.training["recipe"]["augment"]["p_background_swap"]
    assert base_augment(shipped).p_background_swap == swap > 0
    tuned = fine_tune_augment(shipped)
    assert tuned.p_background_swap == swap and tuned.hue_degrees == AugmentConfig.preset("standard").hue_degrees
    assert base_augment(None) == AugmentConfig.preset("standard") == fine_tune_augment(None)
    assert default_distill(replay=True) == 0.0 and default_distill(replay=False) == 1.0
