"""gui.workbench, the window's workflow without Qt: which open sample is which stored one,
registration and ID edits, review, sign-off, reopening and the status notes (a real store,
no widgets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.errors import AllSightError
from engine.core.flags import FlagReason
from engine.core.jobs import JobState
from engine.core.records import ImageResult
from engine.store.results import ResultStore, SignOffError, StoreError
from gui.workbench import (
    Sample,
    SampleImage,
    StoreUnavailable,
    Workbench,
    export_stem,
    history_note,
    note_after_job,
    note_from_results,
    stop_question,
)

SHA = "c" * 64


@pytest.fixture
def bench(tmp_path):
    with ResultStore.open(tmp_path / "results.db") as store:
        yield Workbench(store)


def open_sample(tmp_path: Path, name: str, n: int = 2, **fields) -> Sample:
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    return Sample(name, folder, [SampleImage(folder / f"img{i}.png") for i in range(n)], **fields)


def classify_all(bench: Workbench, sample: Sample, cls: str = "Pre", flags: tuple[FlagReason, ...] = ()) -> None:
    for key in sample.image_keys():
        result = ImageResult(key, "ok", cls, 0.99, flags=flags)
        bench.store.record_prediction(sample.store_id, key, result, "m", "1", SHA)


def test_registering_gives_a_stored_sample_and_renames_when_the_id_is_taken(bench, tmp_path):
    first = open_sample(tmp_path / "day1", "S-1", operator="ana")
    done = bench.register(first, [first], operator="")
    assert done.created and not done.note and first.store_id == "S-1" and first.operator == "ana"
    assert bench.register(first, [first], operator="").created is False  # registered already

    second = open_sample(tmp_path / "day2", "S-1")  # another folder of the same name
    done = bench.register(second, [first, second], operator="ben")
    assert done.created and "saved as S-1 (2)" in done.note
    assert second.sample_id == second.store_id == "S-1 (2)"
    assert bench.store.get_sample("S-1 (2)").operator == second.operator == "ben"  # the default operator


def test_a_folder_stored_before_is_adopted_with_its_ids_and_sign_off(bench, tmp_path):
    old = open_sample(tmp_path, "S-2", patient_id="P-9")
    bench.register(old, [old], operator="ana")
    classify_all(bench, old)
    bench.store.sign_off("S-2", "dr. b", "I approve this report.")

    again = open_sample(tmp_path, "S-2")  # the same folder, opened in a later session
    done = bench.register(again, [again], operator="ana")
    assert done.adopted and again.store_id == "S-2" and again.patient_id == "P-9" and again.signed_off


def test_two_open_samples_never_share_a_stored_one(bench, tmp_path):
    a = open_sample(tmp_path / "x", "S-3")
    b = open_sample(tmp_path / "y", "S-3")
    bench.register(b, [a, b], operator="")  # a is open as S-3, so b may not take it
    assert b.store_id == "S-3 (2)"


def test_without_a_store_registering_says_why(tmp_path):
    bench = Workbench(None, "disk full")
    with pytest.raises(StoreUnavailable, match="disk full"):
        bench.register(open_sample(tmp_path, "S-4"), [], operator="")


def test_history_adopts_open_samples_by_folder_and_lists_the_rest(bench, tmp_path):
    stored_open = open_sample(tmp_path, "S-5")
    stored_closed = open_sample(tmp_path, "S-6", n=3)
    for s in (stored_open, stored_closed):
        bench.register(s, [s], operator="ana")
        bench.store.add_images(s.store_id, s.image_keys())
    classify_all(bench, stored_closed)
    entries = bench.read_history(SHA)

    now_open = open_sample(tmp_path, "S-5")  # opened before the history arrived
    merge = Workbench.merge_history(entries, [now_open])
    assert [(s, stored.sample_id) for s, stored in merge.adopted] == [(now_open, "S-5")]
    assert [(s.sample_id, s.from_history, len(s.images), s.status_note) for s in merge.added] == [
        ("S-6", True, 3, "classified")]
    assert Workbench.merge_history(entries, [*merge.added, now_open]).added == ()  # already listed


@pytest.mark.parametrize(("n", "pending", "note"), [(4, None, ""), (0, 0, ""), (4, 4, ""), (4, 1, "3/4 classified"),
                                                    (4, 0, "classified")])
def test_history_note_says_how_far_the_active_model_got(n, pending, note):
    assert history_note(n, pending) == note


def test_saving_edited_ids_renames_the_stored_sample(bench, tmp_path):
    sample = open_sample(tmp_path, "S-7")
    bench.register(sample, [sample], operator="ana")
    assert bench.save_ids(sample, actor="ana") is False  # nothing changed
    sample.sample_id, sample.patient_id = "S-7b", "P-1"
    assert bench.save_ids(sample, actor="ana") is True
    stored = bench.store.get_sample("S-7b")
    assert sample.store_id == "S-7b" and stored.patient_id == "P-1"


def test_a_refused_id_edit_puts_the_stored_values_back(bench, tmp_path):
    a, b = open_sample(tmp_path, "S-8"), open_sample(tmp_path, "S-9", patient_id="P-2")
    for s in (a, b):
        bench.register(s, [a, b], operator="ana")
    b.sample_id, b.patient_id = "S-8", "P-3"  # the ID of another stored sample
    with pytest.raises(StoreError):
        bench.save_ids(b, actor="ana")
    assert (b.sample_id, b.patient_id, b.store_id) == ("S-9", "P-2", "S-9")


def test_classify_is_refused_with_a_reason():
    assert Workbench.classify_refusal(None) == "Open or select a sample first."
    assert "has no images" in Workbench.classify_refusal(Sample("S", None))
    signed = Sample("S", None, [SampleImage(Path("a.png"))], signed_off_at="2026-01-01")
    assert "signed off" in Workbench.classify_refusal(signed)
    assert Workbench.classify_refusal(Sample("S", None, [SampleImage(Path("a.png"))])) == ""


def test_review_sign_off_and_reopen_go_through_the_store_rules(bench, tmp_path):
    sample = open_sample(tmp_path, "S-10")
    bench.register(sample, [sample], operator="ana")
    bench.store.add_images("S-10", sample.image_keys())
    with pytest.raises(SignOffError, match="not been classified"):
        bench.sign_off(sample, "dr. b", "I approve this report.")
    classify_all(bench, sample, flags=(FlagReason.LOW_CONFIDENCE,))  # flagged: to review
    with pytest.raises(SignOffError):
        bench.sign_off(sample, "dr. b", "I approve this report.")
    for key in sample.image_keys():
        assert bench.review(sample, key, "Benign", "dr. b").endswith("+00:00")
    bench.sign_off(sample, "dr. b", "I approve this report.")
    assert sample.signed_off and sample.signed_off_by == "dr. b"
    with pytest.raises(SignOffError):
        bench.review(sample, sample.image_keys()[0], "Pre", "dr. b")

    with pytest.raises(AllSightError, match="reason is required"):
        bench.reopen(sample, "dr. b", "  ")
    bench.reopen(sample, "dr. b", "typo in the patient ID")
    assert not sample.signed_off and not bench.store.get_sample("S-10").signed_off


def test_sign_off_records_the_statement_and_can_require_an_independent_reviewer(bench, tmp_path):
    sample = open_sample(tmp_path, "S-12")
    bench.register(sample, [sample], operator="ana")
    for key in sample.image_keys():
        bench.store.record_prediction(sample.store_id, key, ImageResult(key, "ok", "Pre", 0.99), "m", "1", SHA,
                                      actor="ana")
    statement = bench.sign_off_statement(sample)
    assert statement == "I have reviewed sample S-12 (2 images, none flagged) and approve this report."
    with pytest.raises(SignOffError, match="statement must not be empty"):
        bench.sign_off(sample, "dr. b", "")
    with pytest.raises(SignOffError, match="other than the person who classified"):
        bench.sign_off(sample, "Ana", statement, require_independent=True)
    assert not sample.signed_off
    bench.sign_off(sample, "dr. b", statement, require_independent=True)
    assert sample.signed_off_by == "dr. b"
    assert bench.store.get_sample("S-12").sign_off_statement == statement


def test_the_sign_state_is_read_back_from_the_store(bench, tmp_path):
    sample = open_sample(tmp_path, "S-11")
    bench.register(sample, [sample], operator="ana")
    classify_all(bench, sample)
    other_view = Sample("S-11", sample.folder, sample.images, store_id="S-11")
    bench.sign_off(other_view, "dr. b", "I approve this report.")  # e.g. on another workstation
    assert not sample.signed_off
    bench.refresh_sign_state(sample)
    assert sample.signed_off_by == "dr. b"


def test_an_unregistered_sample_cannot_be_reviewed(bench):
    with pytest.raises(AllSightError, match="not been classified yet"):
        bench.review(Sample("S", None), "a.png", "Pre", "dr. b")


@pytest.mark.parametrize(("state", "done", "total", "left", "note"), [
    (JobState.DONE, 5, 5, 2, "2 to review"), (JobState.DONE, 5, 5, 0, "classified"),
    (JobState.DONE, 5, 5, None, "classified"), (JobState.CANCELLED, 2, 5, None, "2/5 classified (stopped)"),
    (JobState.FAILED, 2, 5, None, "failed")])
def test_the_note_after_a_batch_job(state, done, total, left, note):
    assert note_after_job(state, done, total, left) == note


def test_the_note_from_stored_results():
    assert note_from_results(5, 2, 1) == "3/5 classified"
    assert note_from_results(5, 0, 1) == "1 to review"
    assert note_from_results(5, 0, 0) == "reviewed"


def test_the_export_name_is_safe_for_a_file_system():
    assert export_stem(Sample("S-1 (2)/x", None)) == "S-1__2__x_report"


def test_the_stop_question_says_what_is_saved_and_what_happens_to_the_queue():
    text = stop_question("S-1", 120, 400, 2, quitting=True)
    assert "120 of 400 images done" in text and "resumes with the 280 image(s) left" in text
    assert "2 more sample(s)" in text and "not kept when ALLSight closes" in text
    text = stop_question("S-1", 0, 0, 0, quitting=False)
    assert "resumes where it stopped" in text and "more sample" not in text
    assert "Start carries on" in stop_question("S-1", 1, 2, 1, quitting=False)


def test_a_review_withdrawn_in_the_workbench_makes_the_image_unreviewed(bench, tmp_path):
    sample = open_sample(tmp_path, "S-12")
    bench.register(sample, [sample], operator="ana")
    classify_all(bench, sample, flags=(FlagReason.LOW_CONFIDENCE,))
    key = sample.image_keys()[0]
    bench.review(sample, key, "Benign", "dr. b")
    bench.review(sample, key, None, "dr. b")
    record = next(r for r in bench.read_records(sample) if r.path == key)
    assert not record.reviewed and record.to_review


def test_a_folder_of_sample_folders_is_recognised(tmp_path):
    from gui.workbench import sample_folders

    day = tmp_path / "2026-12-02"
    a, b = [day / "S-1" / "x.png", day / "S-1" / "y.png"], [day / "S-2" / "deep" / "z.png"]
    assert sample_folders(day, [*a, *b]) == [(day / "S-1", a), (day / "S-2", b)]
    assert sample_folders(day, [*a, day / "loose.png"]) == []  # an image in the folder itself: one sample
    assert sample_folders(day, a) == []  # a single sub-folder: one sample


def test_who_acts_the_os_login_until_accounts_are_required_then_the_account_signed_in(bench):
    from engine.core.identity import Permission, Role, os_identity
    from gui.workbench import SIGN_IN_FIRST, identity_status, refusal, roles_allowed, starting_identity

    assert starting_identity(None) == starting_identity(bench.store) == os_identity()
    bench.store.accounts.create("tom", "tech-pass-22", Role.TECHNICIAN, "Tom Tech", actor="it")
    bench.store.accounts.create("ada", "admin-pass-1", Role.ADMINISTRATOR, actor="it")
    bench.store.accounts.set_policy(accounts_required=True, actor="it")
    assert starting_identity(bench.store) is None  # nobody signed in: nothing may change
    assert refusal(None, Permission.REVIEW) == SIGN_IN_FIRST
    assert identity_status(None) == "Not signed in: File ▸ Sign in…"
    tom = bench.store.sign_in("tom", "tech-pass-22")
    assert starting_identity(bench.store) == tom
    assert identity_status(tom) == "Signed in: Tom Tech (ALLSight account, technician)"
    assert refusal(tom, Permission.REVIEW) == ""
    assert refusal(tom, Permission.SIGN_OFF) == "Needs a reviewer or administrator account (signed in: Tom Tech, technician)"
    assert roles_allowed(Permission.MANAGE_ACCOUNTS) == "an administrator account"


def test_an_id_edit_the_store_refuses_puts_the_stored_ids_back(bench, tmp_path):
    from engine.core.identity import PermissionDenied, Role

    sample = open_sample(tmp_path, "S-20")
    bench.register(sample, [sample], operator="ana", actor="ana")
    bench.store.accounts.create("ada", "admin-pass-1", Role.ADMINISTRATOR, actor="it")
    bench.store.accounts.set_policy(accounts_required=True, actor="it")
    sample.patient_id = "P-typed"
    with pytest.raises(PermissionDenied):
        bench.save_ids(sample, actor="ana")  # nobody signed in: the store takes no change
    assert sample.patient_id == "" and bench.store.get_sample("S-20").patient_id == ""
