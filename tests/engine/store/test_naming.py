"""The one sample-naming rule of both front ends: names from folders, and which stored sample a
folder is (ResultStore.register_sample)."""

from __future__ import annotations

from engine.store.naming import LOOSE_SAMPLE_ID, loose_files_folder, sample_name
from engine.store.results import ResultStore


def test_names_come_from_the_folder_or_the_files_common_folder(tmp_path):
    a, b = tmp_path / "S-001", tmp_path / "other"
    assert sample_name(a) == "S-001" and sample_name("") == LOOSE_SAMPLE_ID
    assert loose_files_folder([a / "1.jpg", a / "2.jpg"]) == str(a)
    assert loose_files_folder([a / "1.jpg", b / "2.jpg"]) == ""


def test_the_same_folder_is_always_the_same_sample(tmp_path, store_target):
    folder = tmp_path / "day1" / "S-001"
    with ResultStore.open(store_target) as store:
        first, created = store.register_sample("S-001", folder, operator="op")
        again, created_again = store.register_sample("S-001", folder)
    assert created and not created_again
    assert first.sample_id == again.sample_id == "S-001" and again.folder == str(folder)


def test_another_folder_of_the_same_name_never_merges(tmp_path, store_target):
    with ResultStore.open(store_target) as store:
        store.register_sample("S-001", tmp_path / "day1" / "S-001")
        second, created = store.register_sample("S-001", tmp_path / "day2" / "S-001")
        third, _ = store.register_sample("S-001", tmp_path / "day3" / "S-001")
        back, created_back = store.register_sample("S-001", tmp_path / "day2" / "S-001")
    assert created and second.sample_id == "S-001 (2)" and third.sample_id == "S-001 (3)"
    assert not created_back and back.sample_id == "S-001 (2)"


def test_taken_ids_are_skipped_and_files_of_several_folders_share_one_sample(tmp_path, store_target):
    with ResultStore.open(store_target) as store:
        skipped, _ = store.register_sample("S", tmp_path / "S", taken={"S"})
        loose, created = store.register_sample(LOOSE_SAMPLE_ID, "")
        loose_again, created_again = store.register_sample(LOOSE_SAMPLE_ID, "")
        audit = [e.action for e in store.audit()]
    assert skipped.sample_id == "S (2)"
    assert created and not created_again and loose.sample_id == loose_again.sample_id == LOOSE_SAMPLE_ID
    assert audit.count("create_sample") == 2
