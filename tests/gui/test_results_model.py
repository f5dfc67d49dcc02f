"""gui.results: the table model's rows and display strings, the class/flag filter, and the
Results panel's sign-off blockers and "next flagged" navigation."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from engine import CLASS_IDS
from engine.core.jobs import JobState
from engine.core.records import EXCLUDED_CLASS, ImageResult, ReviewedImage
from gui.results import ResultsPanel
from gui.results_table import (
    COL_BY,
    COL_CLASS,
    COL_CONF,
    COL_FILE,
    COL_FINAL,
    COL_OOD,
    COL_OVERRIDDEN,
    COL_REVIEW,
    COLUMNS,
    ERROR_KEY,
    ResultsFilter,
    ResultsModel,
    RowRole,
    class_key,
)


def ok(i: int, cls: str = "Benign", conf: float = 0.95, flags: tuple[str, ...] = ()) -> ReviewedImage:
    probs = {c: conf if c == cls else (1 - conf) / 3 for c in CLASS_IDS}
    result = ImageResult(f"/data/S/img{i:02d}.jpg", "ok", cls, conf, probs, needs_review=bool(flags), flags=flags)
    return ReviewedImage.from_result(result, position=i)


def err(i: int) -> ReviewedImage:
    return ReviewedImage.from_result(ImageResult(f"/data/S/img{i:02d}.jpg", "error", error="cannot decode"),
                                     position=i)


def texts(model: ResultsModel, row: int) -> list[str]:
    return [model.data(model.index(row, col)) for col in range(len(COLUMNS))]


@pytest.fixture
def model(qtbot):
    return ResultsModel()


def test_upsert_appends_new_paths_in_one_insert_and_replaces_known_ones(model):
    model.set_rows([ok(0), ok(1)])
    inserted, changed = [], []
    model.rowsInserted.connect(lambda _parent, first, last: inserted.append((first, last)))
    model.dataChanged.connect(lambda top, bottom, _roles=(): changed.append((top.row(), bottom.row())))
    model.upsert([ok(1, "Pre"), ok(2), ok(3)])
    assert model.rowCount() == 4 and inserted == [(2, 3)] and changed == [(1, 1)]
    assert model.rows[1].predicted_class == "Pre"
    assert model.row_of(ok(3).path) == 3 and model.row_of("/elsewhere.jpg") == -1
    model.set_rows([ok(5)])
    assert model.rowCount() == 1 and model.row_of(ok(0).path) == -1 and model.row_data(1) is None


def test_a_fresh_unreviewed_result_keeps_the_existing_review(model):
    model.set_rows([ok(0, "Benign")])
    model.set_review(ok(0).path, "Pre", "dr. A", "2024-05-01T10:00:00+00:00")
    model.upsert([ok(0, "Early")])  # the model ran again
    r = model.rows[0]
    assert (r.predicted_class, r.final_class, r.reviewed_by, r.reviewed_at) == (
        "Early", "Pre", "dr. A", "2024-05-01T10:00:00+00:00")
    assert r.overridden
    model.upsert([ok(0, "Early").with_review("Pro", "dr. B")])  # a reviewed row replaces the review
    assert (model.rows[0].final_class, model.rows[0].reviewed_by) == ("Pro", "dr. B")


def test_set_review_replaces_the_frozen_row_and_its_cached_display(model):
    model.set_rows([ok(0, "Benign")])
    before = model.rows[0]
    assert texts(model, 0)[COL_FINAL] == "—"  # cached now
    assert model.set_review(before.path, "Pre", "dr. A")
    after = model.rows[0]
    assert after is not before and before.final_class is None
    row = texts(model, 0)
    assert (row[COL_FINAL], row[COL_BY], row[COL_OVERRIDDEN]) == ("Pre-B ALL", "dr. A", "overridden")
    assert model.data(model.index(0, 0), RowRole) is after
    assert not model.set_review("/not/in/the/table.jpg", "Pre", "dr. A")


def test_display_strings_per_column_for_flagged_error_and_ood_rows(model):
    ood_without_codes = ReviewedImage("/data/S/img02.jpg", "ok", "Pro", 0.8, out_of_distribution=True, position=2)
    model.set_rows([ok(0, conf=0.955, flags=("low_confidence",)), err(1), ood_without_codes, ok(3)])
    assert texts(model, 0) == ["img00.jpg", "Benign", "95.5 %", "⚑ yes", "low confidence", "—", "", ""]
    assert texts(model, 1)[COL_CLASS:COL_OOD + 1] == ["Error", "", "⚑ error", ""]
    assert texts(model, 2)[COL_OOD] == "OOD"
    assert texts(model, 3)[COL_REVIEW:COL_OOD + 1] == ["", ""]
    assert "Error: cannot decode" in model.data(model.index(1, COL_FILE), Qt.ItemDataRole.ToolTipRole)
    background = Qt.ItemDataRole.BackgroundRole
    assert model.data(model.index(1, 0), background).name() == "#fdecea"  # an error
    assert model.data(model.index(0, 0), background).name() == "#fff3e0"  # to review
    assert model.data(model.index(3, 0), background) is None
    assert model.data(model.index(9, 0)) is None


# One row of each kind the filters tell apart.
ROWS = {
    "plain": ok(0),
    "low": ok(1, flags=("low_confidence",)),
    "ood": ok(2, "Pro", flags=("unlike_training",)),
    "error": err(3),
    "confirmed": ok(4, "Early").with_review("Early", "dr"),
    "overridden": ok(5, "Early").with_review("Pre", "dr"),
    "low_reviewed": ok(6, flags=("low_confidence",)).with_review("Benign", "dr"),
}


@pytest.mark.parametrize(("flag_filter", "expected"), [
    ("all", set(ROWS)),
    ("to_review", {"low", "ood", "error"}),
    ("flagged", {"low", "ood", "error", "low_reviewed"}),
    ("needs_review", {"low", "ood", "low_reviewed"}),
    ("ood", {"ood"}),
    ("errors", {"error"}),
    ("reviewed", {"confirmed", "overridden", "low_reviewed"}),
    ("overridden", {"overridden"}),
    ("no-such-filter", set(ROWS)),
])
def test_each_flag_filter_matches_its_rows(flag_filter, expected):
    assert {k for k, r in ROWS.items() if ResultsFilter.matches(r, None, flag_filter)} == expected


def test_class_filter_uses_the_final_class_and_a_key_of_its_own_for_errors():
    assert class_key(ROWS["error"]) == ERROR_KEY
    assert class_key(ROWS["error"].with_review(EXCLUDED_CLASS, "dr")) == EXCLUDED_CLASS
    assert class_key(ROWS["overridden"]) == "Pre" and class_key(ROWS["ood"]) == "Pro"
    by_class = {c: {k for k, r in ROWS.items() if ResultsFilter.matches(r, c, "all")} for c in (*CLASS_IDS, ERROR_KEY)}
    assert by_class == {"Benign": {"plain", "low", "low_reviewed"}, "Early": {"confirmed"},
                        "Pre": {"overridden"}, "Pro": {"ood"}, ERROR_KEY: {"error"}}
    assert not ResultsFilter.matches(ROWS["low"], "Benign", "reviewed")
    assert ResultsFilter.matches(ROWS["low_reviewed"], "Benign", "reviewed")


def test_the_proxy_shows_only_matching_rows_and_sorts_by_value(model):
    proxy = ResultsFilter()
    proxy.setSourceModel(model)
    model.set_rows(list(ROWS.values()))
    proxy.set_flag_filter("to_review")
    assert proxy.rowCount() == 3
    proxy.set_class_filter(ERROR_KEY)
    assert proxy.rowCount() == 1 and proxy.data(proxy.index(0, 0), RowRole) is ROWS["error"]
    proxy.set_class_filter(None)
    proxy.set_flag_filter("all")
    model.set_rows([ok(0, conf=0.7), ok(1, conf=0.99), ok(2, conf=0.4)])
    proxy.sort(COL_CONF, Qt.SortOrder.AscendingOrder)
    assert [proxy.data(proxy.index(r, COL_CONF)) for r in range(3)] == ["40.0 %", "70.0 %", "99.0 %"]


@pytest.fixture
def panel(qtbot):
    p = ResultsPanel()
    qtbot.addWidget(p)
    return p


def test_sign_off_blockers_say_what_stops_the_sign_off(panel):
    assert panel.sign_off_blockers() == "No sample selected."
    panel.set_sample("S", [], 0)
    assert panel.sign_off_blockers() == "The sample has no images."
    rows = [ok(0), ok(1, flags=("low_confidence",))]
    panel.set_sample("S", rows, 3)
    assert panel.sign_off_blockers() == "1 image(s) not classified yet."
    panel.add_results([ok(2)])
    assert panel.sign_off_blockers() == "1 flagged image(s) left to review."
    assert not panel.sign_off_button.isEnabled()
    panel.set_review(rows[1].path, "Benign", "dr")
    assert panel.sign_off_blockers() == "" and panel.sign_off_button.isEnabled()
    assert panel.sign_state_label.text() == "Ready to sign off."
    panel.set_job_state(JobState.QUEUED)  # queued is not running: says so, and still no sign-off
    assert panel.sign_off_blockers() == "The sample is queued for classification."
    assert not panel.sign_off_button.isEnabled()
    panel.set_job_state(JobState.RUNNING)
    assert panel.sign_off_blockers() == "Classification is running." and not panel.sign_off_button.isEnabled()
    panel.set_job_state(None)
    assert panel.sign_off_blockers() == ""


def test_next_flagged_goes_to_each_unreviewed_flagged_row_and_wraps(panel):
    rows = [ok(0), ok(1, flags=("low_confidence",)), ok(2), err(3)]
    panel.set_sample("S", rows, 4)
    messages = []
    panel.status_message.connect(messages.append)
    visited = []
    for _ in range(3):
        assert panel.next_flagged()
        visited.append(panel.current_result().path)
    assert visited == [rows[1].path, rows[3].path, rows[1].path]
    panel.set_review(rows[1].path, "Benign", "dr")
    panel.set_review(rows[3].path, EXCLUDED_CLASS, "dr")
    assert not panel.next_flagged()
    assert messages == ["No flagged image left to review."]


def test_a_review_can_be_withdrawn_from_the_panel(panel):
    rows = [ok(0, flags=("low_confidence",)), ok(1)]
    panel.set_sample("S", rows, 2)
    asked: list[str] = []
    panel.withdraw_requested.connect(asked.append)
    panel.table.selectRow(0)
    assert not panel.act_withdraw.isEnabled()  # nothing to withdraw yet
    panel.set_review(rows[0].path, "Pre", "dr")
    panel.table.selectRow(0)
    assert panel.act_withdraw.isEnabled()
    panel.act_withdraw.trigger()
    assert asked == [rows[0].path]
    panel.set_review(rows[0].path, None, None)  # what the window does once the store has it
    assert not panel.model.rows[0].reviewed and panel.summary.n_flagged_unreviewed == 1


def test_label_next_shows_the_unreviewed_images_that_teach_most_first(panel):
    rows = [ok(0, conf=0.99), ok(1, conf=0.45), ok(2, conf=0.7), err(3),
            ok(4, conf=0.3).with_review("Pre", "tom", "2026-12-02T10:00:00")]
    panel.set_sample("S", rows, len(rows))
    panel.flag_combo.setCurrentIndex(panel.flag_combo.findData("label_next"))
    assert panel.label_next_shown()
    shown = [panel.proxy.index(r, COL_FILE).data() for r in range(panel.proxy.rowCount())]
    assert shown == ["img01.jpg", "img02.jpg", "img00.jpg"]  # least confident first; no error, no reviewed
    panel.flag_combo.setCurrentIndex(panel.flag_combo.findData("all"))
    assert not panel.label_next_shown()
    assert [panel.proxy.index(r, COL_FILE).data() for r in range(panel.proxy.rowCount())][:2] == ["img00.jpg",
                                                                                                  "img01.jpg"]
