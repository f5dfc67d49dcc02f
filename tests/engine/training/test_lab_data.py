"""The lab's labelled images for retraining (engine/training/lab_data.py), on tiny synthetic data."""

from __future__ import annotations

import shutil

import pytest

from engine import CLASS_IDS
from engine.core.records import ImageResult
from engine.store.results import EXCLUDED_CLASS, ResultStore
from engine.training import lab_data
from engine.training.lab_data import ProblemCode, Source
from tests.conftest import synthetic_smear, write_image

SHA = "b" * 64


def class_folders(root, per_class: int = 12, classes=CLASS_IDS):
    for label, name in enumerate(classes):
        for i in range(per_class):
            write_image(root / name / f"{name}-{i:03d}.png", synthetic_smear(label, 40, i))
    return root


def signed_off_sample(store: ResultStore, folder, name: str, finals: list[str | None], label: int = 0,
                      seed: int = 100):
    """A signed-off sample whose images were reviewed as ``finals`` (None: not reviewed)."""
    paths = [write_image(folder / name / f"f{i}.png", synthetic_smear(label, 40, seed + i)) for i in range(len(finals))]
    store.create_or_get_sample(name, folder / name)
    store.add_images(name, paths)
    for p, final in zip(paths, finals, strict=True):
        store.record_prediction(name, p, ImageResult(str(p), "ok", "Pre", 0.5, needs_review=final is not None),
                                "m", "1", SHA)
        if final is not None:
            store.record_review(name, p, final, "dr. b")
    store.sign_off(name, "dr. b", "I approve")
    return paths


def test_store_data_is_the_final_class_of_reviewed_images_of_signed_off_samples_only(tmp_path):
    with ResultStore.open(tmp_path / "db.sqlite3") as store:
        assert lab_data.from_store(store)[1][0].code is ProblemCode.NO_SIGNED_OFF_SAMPLES
        paths = signed_off_sample(store, tmp_path, "S-1", ["Pro", EXCLUDED_CLASS, None, "Benign"])
        open_one = write_image(tmp_path / "S-2" / "x.png", synthetic_smear(1, 40, 7))
        store.create_or_get_sample("S-2", tmp_path / "S-2")
        store.record_prediction("S-2", open_one, ImageResult(str(open_one), "ok", "Pre", 0.5, needs_review=True),
                                "m", "1", SHA)
        store.record_review("S-2", open_one, "Early", "dr. b")  # reviewed, but not signed off
        images, problems = lab_data.from_store(store)
    assert [(im.path, im.class_id, im.group) for im in images] == [(paths[0], "Pro", "sample:S-1"),
                                                                    (paths[3], "Benign", "sample:S-1")]
    assert problems == [] and {im.source for im in images} == {Source.STORE}


def test_a_reviewed_file_replaced_since_is_left_out_and_listed(tmp_path):
    with ResultStore.open(tmp_path / "db.sqlite3") as store:
        paths = signed_off_sample(store, tmp_path, "S-1", ["Pro", "Pre"])
        write_image(paths[1], synthetic_smear(3, 40, 999))  # another image under the reviewed name
        images, problems = lab_data.from_store(store)
    assert [im.path for im in images] == [paths[0]]
    assert problems[0].code is ProblemCode.CHANGED_SINCE_REVIEW and problems[0].paths == (str(paths[1]),)
    assert not problems[0].blocking


def test_folder_data_lists_unknown_folders_and_unreadable_files(tmp_path):
    root = class_folders(tmp_path / "data", per_class=3)
    (root / "Blasts").mkdir()
    (root / "Pre" / "broken.png").write_bytes(b"not an image")
    images, problems = lab_data.from_folder(root)
    assert len(images) == 12 and lab_data.counts(images)[Source.FOLDER] == dict.fromkeys(CLASS_IDS, 3)
    codes = {p.code: p for p in problems}
    assert codes[ProblemCode.UNKNOWN_FOLDER].blocking and "Blasts" in codes[ProblemCode.UNKNOWN_FOLDER].message
    assert codes[ProblemCode.UNREADABLE].paths == (str(root / "Pre" / "broken.png"),)
    assert not codes[ProblemCode.UNREADABLE].blocking


def test_validation_is_held_out_by_sample_never_by_image(tmp_path):
    with ResultStore.open(tmp_path / "db.sqlite3") as store:
        for k in range(10):
            signed_off_sample(store, tmp_path, f"S-{k}", [CLASS_IDS[k % 4]] * 5, label=k % 4)
        images, _ = lab_data.from_store(store)
    train, val = lab_data.split(images, 0.2, seed=0)
    assert val and train and len(train) + len(val) == len(images)
    assert not {im.group for im in train} & {im.group for im in val}  # a sample is on one side only
    assert lab_data.split(images, 0.2, seed=0) == (train, val)  # seeded


def test_folder_data_is_split_by_contiguous_blocks(tmp_path):
    images, _ = lab_data.from_folder(class_folders(tmp_path / "data", per_class=20))
    train, val = lab_data.split(images, 0.2, seed=1)
    for name in CLASS_IDS:
        held = sorted(int(im.path.stem.split("-")[1]) for im in val if im.class_id == name)
        assert len(held) == 4 and held == list(range(held[0], held[0] + 2)) + list(range(held[2], held[2] + 2))


def test_check_names_missing_and_small_classes(tmp_path):
    root = class_folders(tmp_path / "data", per_class=20, classes=CLASS_IDS[:3])  # no Pro
    images, _ = lab_data.from_folder(root)
    train, val = lab_data.split(images, 0.2, seed=3)
    problems = {p.code: p for p in lab_data.check(train, val, min_train=17)}
    assert set(problems) == {ProblemCode.CLASS_MISSING, ProblemCode.CLASS_TOO_SMALL}
    assert "Pro" in problems[ProblemCode.CLASS_MISSING].message
    assert "Benign (16 for training, 4 for validation)" in problems[ProblemCode.CLASS_TOO_SMALL].message
    assert all(p.blocking for p in problems.values())
    assert lab_data.check(train, val, min_train=16) == [problems[ProblemCode.CLASS_MISSING]]


def test_check_finds_the_same_content_on_both_sides_of_the_split(tmp_path):
    root = class_folders(tmp_path / "data", per_class=10)
    images, _ = lab_data.from_folder(root)
    train, val = lab_data.split(images, 0.2, seed=0)
    assert not any(p.code is ProblemCode.DUPLICATE_ACROSS_SPLIT for p in lab_data.check(train, val))
    copy = root / "Benign" / "copy.png"
    shutil.copy(train[0].path, copy)  # the copy is held out with a validation image's group
    val = (*val, lab_data.LabImage(copy, train[0].label, Source.FOLDER, val[0].group, train[0].sha256))
    dupes = [p for p in lab_data.check(train, val) if p.code is ProblemCode.DUPLICATE_ACROSS_SPLIT]
    assert len(dupes) == 1 and dupes[0].paths == (f"{copy} = {train[0].path}",)


def test_the_fingerprint_names_the_content_not_the_order(tmp_path):
    images, _ = lab_data.from_folder(class_folders(tmp_path / "data", per_class=4))
    assert lab_data.fingerprint(images) == lab_data.fingerprint(list(reversed(images)))
    assert lab_data.fingerprint(images) != lab_data.fingerprint(images[1:])


@pytest.mark.parametrize("share", [0, 1, -0.1])
def test_a_validation_share_outside_0_1_is_refused(share):
    with pytest.raises(Exception, match="between 0 and 1"):
        lab_data.split([], share)
