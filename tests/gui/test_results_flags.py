"""The Results tab shows each flag's sentence, leaves images the model cannot judge out of the
counts until reviewed, and puts the acquisition warning in one prominent line."""

from __future__ import annotations

import pytest

from engine.core.flags import FlagReason
from engine.core.records import ImageResult, ReviewedImage
from gui.results import ResultsPanel
from gui.results_table import COL_OOD

WARNING = "The model has not been validated on images like these"


def _rows(*specs) -> list[ReviewedImage]:
    rows = []
    for i, (cls, flags) in enumerate(specs):
        result = ImageResult(f"/data/S/img{i:02d}.jpg", "ok", cls, 0.9, {"Benign": 0.1, "Early": 0.0, "Pre": 0.0,
                                                                      "Pro": 0.0, cls: 0.9},
                             needs_review=bool(flags), out_of_distribution=any(f != "low_confidence" for f in flags),
                             ood_score=987.6 if flags else 10.0, flags=tuple(flags))
        rows.append(ReviewedImage.from_result(result, position=i))
    return rows


@pytest.fixture
def panel(qtbot):
    p = ResultsPanel()
    qtbot.addWidget(p)
    p.show()
    return p


def test_no_white_cell_row_shows_its_sentence_and_is_not_counted(panel):
    panel.set_sample("S", _rows(("Pro", ["no_white_cell"]), ("Benign", []), ("Benign", []), ("Benign", [])), 4)
    s = panel.summary
    assert s.n_withheld == 1 and s.counts["Pro"] == 0 and s.call_code == "BENIGN"
    box = panel.summary_box
    assert "1 not counted" in box.flags_label.text()
    assert box.warning_label.isHidden()
    index = panel.model.index(0, COL_OOD)
    assert panel.model.data(index) == "no white cell"
    tip = panel.model.data(index, 3)  # ToolTipRole
    assert FlagReason.NO_WHITE_CELL.sentence in tip and "Not counted" in tip and "987" not in tip
    panel.select_path(panel.model.rows[0].path)
    review = panel.model_output_label.text()
    assert FlagReason.NO_WHITE_CELL.sentence in review and "Not counted in the sample summary" in review
    assert "987" not in review and "distance" not in review
    # once reviewed, the reviewer's class counts
    panel.set_review(panel.model.rows[0].path, "Pre", "dr")
    assert panel.summary.n_withheld == 0 and panel.summary.counts["Pre"] == 1
    assert "Not counted" not in panel.model_output_label.text()


def test_acquisition_warning_is_one_prominent_line_and_the_call_is_withheld(panel):
    # 1 of 4 images unlike the training images: exactly the 25 % limit
    panel.set_sample("S", _rows(("Pre", ["unlike_training"]), ("Pre", []), ("Pre", []), ("Pre", [])), 4)
    box = panel.summary_box
    assert panel.summary.acquisition_warning == WARNING
    assert not box.warning_label.isHidden() and WARNING in box.warning_label.text()
    assert box.call_label.text() == "Indeterminate — images unlike the validated set"
    # below it (1 of 5): no warning, the call is given
    panel.set_sample("S", _rows(("Pre", ["unlike_training"]), *[("Pre", [])] * 4), 5)
    assert box.warning_label.isHidden() and panel.summary.acquisition_warning is None
    assert box.call_label.text() == "ALL suspected: Pre-B ALL"
