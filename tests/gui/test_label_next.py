"""Label next in the window: a review made while the table shows it is marked so in the audit
trail (the retraining wizard counts those); one made in another view is not."""

from __future__ import annotations

from tests.gui.conftest import make_sample_folder, make_window, open_sample, wait_classified


def test_a_review_made_in_label_next_is_marked_in_the_audit_trail(qtbot, wf_settings, tmp_path):
    win = make_window(qtbot, wf_settings)
    sample = open_sample(qtbot, win, make_sample_folder(tmp_path, count=3))
    win.classify_current()
    wait_classified(qtbot, win, sample)
    rp = win.results_panel
    rp.flag_combo.setCurrentIndex(rp.flag_combo.findData("label_next"))
    first = rp.proxy.index(0, 0).data()
    path = next(r.path for r in rp.model.rows if r.path.endswith(first))
    assert win.review(path, "Pre")
    rp.flag_combo.setCurrentIndex(rp.flag_combo.findData("all"))
    other = next(r.path for r in rp.model.rows if r.path != path)
    assert win.review(other, "Early")
    vias = {e.path: e.details.get("via") for e in win.store.audit(action="record_review")}
    assert vias == {path: "label_next", other: None}
    win.shutdown()
