"""One summary rule behind every surface: samples in every state, shown in the Results tab and
exported as PDF and JSON, give the same counts (and no call while images are not classified)."""

from __future__ import annotations

import json

import pytest

from engine.core.flags import FlagReason
from engine.core.records import EXCLUDED_CLASS, ImageStatus, ReviewedImage
from engine.imaging.preprocess import PreprocessConfig
from engine.reports.pdf import write_pdf
from engine.reports.sample import ReportModelInfo, SampleReport
from engine.reports.tables import write_json
from gui.results import ResultsPanel

pypdf = pytest.importorskip("pypdf")

FIELDS = ("n_images", "n_classified", "n_withheld", "n_excluded", "n_error", "n_pending")


def image(i: int, kind: str) -> ReviewedImage:
    path = f"/lab/S/WBC-{i:03d}.jpg"
    if kind == "pending":
        return ReviewedImage(path, ImageStatus.PENDING)
    if kind in ("error", "error-excluded"):
        review = {"final_class": EXCLUDED_CLASS, "reviewed_by": "dr"} if kind == "error-excluded" else {}
        return ReviewedImage(path, ImageStatus.ERROR, error="cannot decode", position=i, **review)
    flags = (FlagReason.NO_WHITE_CELL,) if kind == "withheld" else ()
    review = {"final_class": EXCLUDED_CLASS, "reviewed_by": "dr"} if kind == "excluded" else {}
    cls = "Benign" if kind == "benign" else "Pre"
    return ReviewedImage(path, ImageStatus.OK, cls, 0.97, {cls: 0.97}, flags=flags, position=i, **review)


STATES = {
    "complete benign": ["benign"] * 5,
    "broken file excluded": ["benign"] * 4 + ["error-excluded"],
    "excluded and unreadable": ["pre"] * 3 + ["excluded", "error", "withheld"],
    "half classified": ["pre"] * 3 + ["pending"] * 3,
    "nothing classified yet but one": ["error"] + ["pending"] * 2,
}


@pytest.mark.parametrize("state", list(STATES))
def test_screen_pdf_and_json_agree(qtbot, tmp_path, state):
    images = [image(i, kind) for i, kind in enumerate(STATES[state])]
    report = SampleReport(lab_name="Lab", sample_id="S-1", patient_id="P", operator="op", reviewer=None,
                          signed_off_at=None, created_at="2026-12-02T10:00:00+00:00", images=tuple(images),
                          model=ReportModelInfo("resnet18", "1.2.0", "a" * 64, PreprocessConfig(image_size=32)))
    panel = ResultsPanel()
    qtbot.addWidget(panel)
    panel.set_sample("S-1", [im for im in images if im.status != ImageStatus.PENDING], len(images))
    screen = panel.summary
    exported = json.loads(write_json(report, tmp_path / "r.json").read_text())["summary"]
    text = " ".join((p.extract_text() or "") for p in pypdf.PdfReader(
        str(write_pdf(report, tmp_path / "r.pdf", thumbnails=False))).pages)
    text = " ".join(text.split())

    for name in FIELDS:
        assert getattr(screen, name) == report.summary[name] == exported[name], name
    assert screen.n_images == len(images)
    assert sum(getattr(screen, n) for n in FIELDS[1:]) == screen.n_images  # every image counted once
    assert screen.call_code == exported["call_code"]
    for label, name in (("Excluded by review", "n_excluded"), ("Unreadable (not counted)", "n_error"),
                        ("Not classified yet", "n_pending"), ("Images in the sample", "n_images")):
        assert f"{label} {report.summary[name]}" in text, label
    shown = panel.summary_box.flags_label.text()
    assert f"{screen.n_images} images" in shown and f"{screen.n_classified} counted" in shown
    if screen.n_pending:
        assert screen.call_code == "INCOMPLETE" and "Incomplete" in text and "Failed" not in text
        assert text.count("Not classified yet") == screen.n_pending + 1  # each row, and the summary line
        assert panel.summary_box.warning_label.text().startswith("⚠ Incomplete")
        assert "all flagged images reviewed" not in shown
    else:
        assert screen.call_code != "INCOMPLETE"
