"""Sample reports: PDF content and layout, atomic writing, CSV/JSON round trips, FHIR structure."""

from __future__ import annotations

import csv
import dataclasses
import errno
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from engine import CLASS_DISPLAY_NAMES, CLASS_IDS
from engine.core.errors import AllSightError, Cancelled
from engine.core.flags import FlagReason, format_codes
from engine.core.progress import CancelToken
from engine.core.records import ImageResult, ReviewedImage
from engine.imaging.preprocess import PreprocessConfig
from engine.reports.fhir import build_bundle, fhir_datetime, write_fhir
from engine.reports.pdf import write_pdf
from engine.reports.sample import (
    JSON_SCHEMA,
    NOTICE,
    ReportError,
    ReportModelInfo,
    SampleReport,
    checked_image,
    image_from_dict,
    summarize_images,
)
from engine.reports.tables import REPORT_CSV_COLUMNS, read_json, write_csv, write_json
from tests.conftest import synthetic_smear, write_image

SHA = "9c1e5b7a" + "d4" * 28


def RI(path, file_name: str, status: str, model_class: str | None = None, confidence: float | None = None,
       **fields) -> ReviewedImage:
    """A report's image in the argument order the report's columns have (model class first)."""
    return ReviewedImage(str(path), status, model_class, confidence, file_name=file_name, **fields)
FAIL_REASON = "truncated or incomplete image data (image file is truncated)"
pypdf = pytest.importorskip("pypdf")


def make_report(folder: Path, n: int = 6, *, signed: bool = True, size: int = 64) -> SampleReport:
    """n images: image 4 failed, image 2 overridden to Pro, image 3 confirmed, image 5 flagged
    unlike the training images (feature distance 412.3; not reviewed, so not counted)."""
    images = []
    for i in range(n):
        path = folder / f"WBC-{i + 1:03d}.jpg"
        if i == 3:
            images.append(RI(path, path.name, "error", error=FAIL_REASON))
            continue
        write_image(path, synthetic_smear(i % 4, size, i), quality=90)
        model_class = CLASS_IDS[2] if i % 2 else CLASS_IDS[i % 4]
        final = {1: "Pro", 2: model_class}.get(i)
        images.append(RI(
            path, path.name, "ok", model_class, 0.5 + (i % 5) / 10, needs_review=i == 4,
            out_of_distribution=i == 4, final_class=final,
            flags=(FlagReason.UNLIKE_TRAINING,) if i == 4 else (), ood_score=412.3 if i == 4 else 101.5,
            reviewed_by="Dr. Rev" if final else None,
        ))
    return SampleReport(
        lab_name="Haematology Lab", sample_id="S-0042", patient_id="P-777", operator="Op One",
        reviewer="Dr. Rev", signed_off_at="2026-12-01T14:32:00+01:00" if signed else None,
        created_at="2026-12-01T10:05:00+01:00", images=images,
        model=ReportModelInfo("resnet18-all", "1.2.0", SHA, PreprocessConfig(image_size=32)),
    )


def pdf_text(path: Path) -> list[str]:
    return [page.extract_text() or "" for page in pypdf.PdfReader(str(path)).pages]


# ------------------------------------------------------------------------------------ summary
def test_summary_counts_final_class_when_reviewed(tmp_path):
    rep = make_report(tmp_path, 6)
    s = rep.summary
    # ok images 0,1,2,4,5: classes Benign, Pre->Pro (override), Pre (confirmed), Benign (unlike
    # the training images, not reviewed: withheld), Pre
    assert s["counts"] == {"Benign": 1, "Early": 0, "Pre": 2, "Pro": 1}
    assert s["n_images"] == 6 and s["n_ok"] == 5 and s["n_error"] == 1 and s["n_withheld"] == 1
    assert s["n_needs_review"] == 1 and s["n_ood"] == 1 and s["n_reviewed"] == 2 and s["n_overridden"] == 1
    assert abs(sum(s["fractions"].values()) - 1.0) < 1e-9
    # 1 Benign, 2 Pre, 1 Pro: malignant 75 % with Pre ahead of Pro by 25 points (shared call rule)
    assert s["call_code"] == "ALL_PRE" and "research use only" in s["call"]
    # 1 of 5 images unlike the training images: 20 %, below the acquisition check's 25 %
    assert s["n_unlike_training"] == 1 and s["acquisition_warning"] is None


def test_summary_majority_and_empty(tmp_path):
    p = tmp_path / "x.jpg"
    ims = [RI(p, "a", "ok", "Pre", 0.9), RI(p, "b", "ok", "Pre", 0.8),
           RI(p, "c", "ok", "Early", 0.7, final_class="Pre")]
    s = summarize_images(ims)
    assert s["call_class"] == "Pre" and s["call"].startswith("ALL suspected: Pre-B ALL")
    assert "research use only" in s["call"] and s["call_code"] == "ALL_PRE"
    assert s["call_rationale"]
    empty = summarize_images([RI(p, "d", "error", error="bad")])
    assert empty["call_class"] is None and empty["n_ok"] == 0 and empty["call"].startswith("Indeterminate")
    assert empty["fractions"] == {c: 0.0 for c in CLASS_IDS}


def test_given_summary_overrides_computed_keys(tmp_path):
    rep = make_report(tmp_path, 3)
    custom = SampleReport(**{**rep.__dict__, "summary": {"call": "Reviewer call (research use only)"}})
    assert custom.summary["call"] == "Reviewer call (research use only)"
    assert custom.summary["counts"] == rep.summary["counts"]


def test_invalid_input_is_a_report_error(tmp_path):
    with pytest.raises(ReportError, match="model_class"):
        checked_image(RI(tmp_path / "a.jpg", "a.jpg", "ok", "Nonsense", 0.5))
    with pytest.raises(ReportError, match="confidence"):
        checked_image(RI(tmp_path / "a.jpg", "a.jpg", "ok", "Pre", 1.5))
    with pytest.raises(ReportError, match="status"):
        image_from_dict({"path": str(tmp_path / "a.jpg"), "status": "maybe"})
    with pytest.raises(ReportError, match="a.jpg: unknown flag"):
        image_from_dict({"path": str(tmp_path / "a.jpg"), "status": "ok", "model_class": "Pre", "flags": ["nope"]})


def test_a_classifier_result_reviewed(tmp_path):
    result = ImageResult(str(tmp_path / "a.jpg"), "ok", "Early", 0.61, needs_review=True)
    im = ReviewedImage.from_result(result).with_review("Pro", "Dr. X")
    assert im.file_name == "a.jpg" and im.predicted_class == "Early"
    assert im.overridden and im.effective_class == "Pro" and im.reviewed_by == "Dr. X"


# ---------------------------------------------------------------------------------------- PDF
def test_pdf_single_image(tmp_path):
    rep = make_report(tmp_path / "imgs", 1)
    out = write_pdf(rep, tmp_path / "r.pdf")
    assert out == tmp_path / "r.pdf" and out.read_bytes().startswith(b"%PDF")
    pages = pdf_text(out)
    text = "\n".join(pages)
    assert len(pages) == 1 and "Page 1 of 1" in pages[0] and NOTICE in pages[0]
    from engine.reports.pdf_style import readable_time

    signed = readable_time("2026-12-01T14:32:00+01:00")  # local time with its zone, not the raw ISO text
    assert signed.startswith("2026-12-01 ") and "T14:32" not in text
    for needle in ("Haematology Lab", "S-0042", "P-777", "Op One", "Dr. Rev", signed,
                   "WBC-001.jpg", SHA[:16], "resnet18-all", "1.2.0", "image_size=32", "ALLSight "):
        assert needle in text, needle
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "r.pdf"]  # no temp file left


def test_pdf_multipage_content(tmp_path):
    rep = make_report(tmp_path / "imgs", 60, size=48)
    ticks = []
    out = write_pdf(rep, tmp_path / "big.pdf", heatmap_fn=lambda p: synthetic_smear(3, 40),
                    progress=lambda done, total: ticks.append((done, total)))
    pages = pdf_text(out)
    n = len(pages)
    assert n >= 3
    for i, page in enumerate(pages, 1):
        assert NOTICE in page, f"notice missing on page {i}"
        assert f"Page {i} of {n}" in page
    text = "\n".join(pages)
    assert "Page 1 of" in pages[0]
    for c in CLASS_IDS:
        assert CLASS_DISPLAY_NAMES[c] in text
    assert "WBC-001.jpg" in text and "WBC-060.jpg" in text
    # the failed image is a row with its reason, never dropped
    assert "WBC-004.jpg" in text and "truncated or incomplete image data" in text
    assert "overridden by Dr. Rev" in text and "confirmed by Dr. Rev" in text
    assert "Images needing review" in text and "Out-of-distribution images" in text
    confidences = {f"{100 * im.confidence:.1f}%" for im in rep.images if im.ok}
    assert all(c in text for c in confidences)
    assert SHA[:12] in text and "Research use only" in text and "Signature" in text
    assert ticks and ticks[-1] == (59, 59)


def test_pdf_survives_missing_image_and_failing_heatmap(tmp_path):
    rep = make_report(tmp_path / "imgs", 3)
    Path(rep.images[0].path).unlink()  # moved after classification: a blank thumbnail, not a crash

    def bad_heat(path):
        raise RuntimeError("no gradients")

    out = write_pdf(rep, tmp_path / "r.pdf", heatmap_fn=bad_heat)
    text = "\n".join(pdf_text(out))
    assert "WBC-001.jpg" in text and "unavailable" in text


def test_pdf_without_thumbnails_and_unsigned(tmp_path):
    rep = make_report(tmp_path / "imgs", 4, signed=False)
    text = "\n".join(pdf_text(write_pdf(rep, tmp_path / "r.pdf", thumbnails=False)))
    assert "Not signed off" in text and "preliminary" in text and "Masked" not in text


def test_pdf_renders_with_pdftoppm(tmp_path):
    exe = shutil.which("pdftoppm")
    if exe is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed; CI installs it")
    out = write_pdf(make_report(tmp_path / "imgs", 3), tmp_path / "r.pdf")
    subprocess.run([exe, "-png", "-r", "40", "-f", "1", "-l", "1", str(out), str(tmp_path / "page")],
                   check=True, timeout=60)
    pngs = list(tmp_path.glob("page*.png"))
    assert len(pngs) == 1 and pngs[0].read_bytes().startswith(b"\x89PNG")


def test_pdf_non_latin_text(tmp_path, monkeypatch):
    import engine.reports.pdf_fonts as report_mod

    rep = make_report(tmp_path / "imgs", 2)
    rep = SampleReport(**{**rep.__dict__, "patient_id": "Пациент-7", "summary": None})
    text = "\n".join(pdf_text(write_pdf(rep, tmp_path / "u.pdf")))
    if report_mod.choose_fonts(rep).unicode:
        assert "Пациент-7" in text
    # without any Unicode font: a readable "?" rather than a failure
    monkeypatch.setattr(report_mod, "_UNICODE_FONTS", [])
    monkeypatch.setattr(report_mod, "_registered_font", None)
    monkeypatch.delenv("ALLSIGHT_REPORT_FONT", raising=False)
    text = "\n".join(pdf_text(write_pdf(rep, tmp_path / "v.pdf")))
    assert "???????-7" in text and "Page 1 of 1" in text


def test_unwritable_path_is_a_report_error(tmp_path):
    rep = make_report(tmp_path / "imgs", 1)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for target, writer in ((blocker / "r.pdf", write_pdf), (blocker / "r.csv", write_csv),
                           (tmp_path, write_json), (blocker / "r.json", write_fhir)):
        with pytest.raises(ReportError) as info:
            writer(rep, target)
        assert str(target) in str(info.value)
    assert issubclass(ReportError, AllSightError)


def test_full_disk_leaves_no_partial_file(tmp_path, monkeypatch):
    rep = make_report(tmp_path / "imgs", 2)
    target = tmp_path / "out" / "r.pdf"
    target.parent.mkdir()
    target.write_bytes(b"old report")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("engine.reports.files.os.fsync", full)
    with pytest.raises(ReportError, match="disk is full") as info:
        write_pdf(rep, target)
    assert str(target) in str(info.value)
    assert target.read_bytes() == b"old report"  # the previous report is untouched
    assert [p.name for p in target.parent.iterdir()] == ["r.pdf"]  # no temp file left


def test_cancel_writes_nothing(tmp_path):
    rep = make_report(tmp_path / "imgs", 6)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        write_pdf(rep, tmp_path / "r.pdf", cancel=token)
    calls = []

    def cancel_after_two():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        write_pdf(rep, tmp_path / "r.pdf", cancel=cancel_after_two)
    assert list(tmp_path.glob("r.pdf*")) == [] and not list(tmp_path.glob(".r.pdf*"))


# ----------------------------------------------------------------------------------- CSV/JSON
def test_json_round_trip(tmp_path):
    rep = make_report(tmp_path / "imgs", 6)
    path = write_json(rep, tmp_path / "r.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema"] == JSON_SCHEMA and data["notice"] == NOTICE and data["status"] == "final"
    assert data["model"]["sha256"] == SHA and data["model"]["preprocess"]["image_size"] == 32
    assert [im["file_name"] for im in data["images"]] == [im.file_name for im in rep.images]
    assert data["images"][3]["status"] == "error" and data["images"][3]["error"] == FAIL_REASON
    assert data["images"][1]["overridden"] is True
    assert data["images"][1]["final_class_display"] == "Pro-B ALL"
    assert data["summary"]["counts"] == dict(rep.summary["counts"])
    back = read_json(path)
    assert back == rep
    with pytest.raises(ReportError, match="schema"):
        (tmp_path / "bad.json").write_text('{"schema": "x"}')
        read_json(tmp_path / "bad.json")


def test_csv_round_trip(tmp_path):
    rep = make_report(tmp_path / "imgs", 6)
    path = write_csv(rep, tmp_path / "r.csv")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == REPORT_CSV_COLUMNS and len(rows) == len(rep.images)
    for row, im in zip(rows, rep.images, strict=False):
        assert row["file_name"] == im.file_name and row["path"] == str(im.path)
        assert row["status"] == im.status
        assert row["model_class"] == (im.predicted_class or "") and row["final_class"] == (im.final_class or "")
        assert (row["confidence"] and float(row["confidence"])) == (im.confidence or "")
        assert row["overridden"] == ("true" if im.overridden else "false")
        assert row["error"] == (im.error or "")
        assert row["flags"] == format_codes(im.flags)
        assert row["sample_id"] == "S-0042" and row["patient_id"] == "P-777" and row["model_sha256"] == SHA
        assert PreprocessConfig.from_dict(json.loads(row["preprocess_json"])) == rep.model.preprocess
        assert row["call"] == rep.summary["call"]


# --------------------------------------------------------------------------------------- FHIR
RESOURCE_STATUS = {
    "DiagnosticReport": {"registered", "partial", "preliminary", "final", "amended", "corrected",
                         "appended", "cancelled", "entered-in-error", "unknown"},
    "Observation": {"registered", "preliminary", "final", "amended", "corrected", "cancelled",
                    "entered-in-error", "unknown"},
    "Device": {"active", "inactive", "entered-in-error", "unknown"},
}
UUID_URL = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def references(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference":
                yield v
            else:
                yield from references(v)
    elif isinstance(node, list):
        for v in node:
            yield from references(v)


@pytest.mark.parametrize("signed", [True, False])
def test_fhir_bundle_structure(tmp_path, signed):
    rep = make_report(tmp_path / "imgs", 6, signed=signed)
    bundle = json.loads(write_fhir(rep, tmp_path / "r.fhir.json").read_text(encoding="utf-8"))
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    assert fhir_datetime(bundle["timestamp"]) and "T" in bundle["timestamp"]
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(set(urls)) == len(urls) and all(UUID_URL.match(u) for u in urls)
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    for url, res in by_url.items():
        assert res["id"] == url.removeprefix("urn:uuid:")
        assert res["status"] in RESOURCE_STATUS[res["resourceType"]]
    for ref in references(bundle):  # every reference resolves inside the bundle
        assert ref in by_url, ref
    reports = [r for r in by_url.values() if r["resourceType"] == "DiagnosticReport"]
    assert len(reports) == 1
    dr = reports[0]
    assert dr["status"] == ("final" if signed else "preliminary")
    assert dr["code"]["text"] and dr["conclusion"] == rep.summary["call"]
    assert dr["subject"]["identifier"]["value"] == "P-777" and dr["identifier"][0]["value"] == "S-0042"
    assert ("issued" in dr) == signed
    obs = [by_url[r["reference"]] for r in dr["result"]]
    for o in obs:
        assert o["resourceType"] == "Observation" and o["code"]["text"] and o["status"] == dr["status"]
    fractions = [o for o in obs if "valueQuantity" in o]
    assert len(fractions) == len(CLASS_IDS)
    for o, c in zip(fractions, CLASS_IDS, strict=False):
        q = o["valueQuantity"]
        assert q["unit"] == "%" and q["code"] == "%" and q["system"] == "http://unitsofmeasure.org"
        assert q["value"] == pytest.approx(100 * rep.summary["fractions"][c], abs=0.01)
        assert o["component"][0]["valueInteger"] == rep.summary["counts"][c]
        assert CLASS_DISPLAY_NAMES[c] in o["code"]["text"]
    counts = {o["code"]["text"]: o["valueInteger"] for o in obs if "valueInteger" in o}
    assert counts["Number of images that could not be read"] == 1
    assert counts["Number of classified images"] == 5
    assert build_bundle(rep)["entry"][0]["fullUrl"] == bundle["entry"][0]["fullUrl"]  # stable ids


def test_fhir_datetime():
    assert fhir_datetime("2026-12-01T10:05:00+01:00") == "2026-12-01T10:05:00+01:00"
    assert fhir_datetime("2026-12-01 10:05") == "2026-12-01"  # no zone: date only, never a guess
    assert fhir_datetime("2026-12-01T09:00:00Z") == "2026-12-01T09:00:00+00:00"
    assert fhir_datetime("yesterday") is None and fhir_datetime(None) is None


def test_writers_create_missing_folders_and_leave_no_temp(tmp_path):
    rep = make_report(tmp_path / "imgs", 2)
    out = tmp_path / "new" / "deeper"
    for writer, name in ((write_csv, "r.csv"), (write_json, "r.json"), (write_fhir, "r.fhir.json")):
        assert writer(rep, out / name).is_file()
    assert sorted(p.name for p in out.iterdir()) == ["r.csv", "r.fhir.json", "r.json"]
    mode = os.stat(out / "r.json").st_mode & 0o777
    assert mode & 0o044  # shareable, not mkstemp's 0600
    assert np.isfinite(rep.summary["fractions"]["Pre"])


def test_a_reviewers_exclusion_is_shown_and_not_counted(tmp_path):
    p = tmp_path / "x.jpg"
    ims = [RI(p, "a", "ok", "Pre", 0.9), RI(p, "b", "ok", "Pre", 0.8),
           RI(p, "c", "ok", "Benign", 0.4, final_class="Excluded", reviewed_by="R")]
    s = summarize_images(ims)
    assert s["counts"] == {"Benign": 0, "Early": 0, "Pre": 2, "Pro": 0} and s["n_excluded"] == 1
    assert s["fractions"]["Pre"] == 1.0
    rep = SampleReport(lab_name="L", sample_id="S", patient_id="P", operator="O", reviewer=None,
                       signed_off_at=None, created_at="2026-12-01", images=tuple(ims),
                       model=ReportModelInfo("m", "1", SHA, PreprocessConfig(image_size=32)))
    out = write_pdf(rep, tmp_path / "r.pdf", thumbnails=False)
    assert "Excluded (not counted)" in "".join(pdf_text(out))


@pytest.mark.parametrize("signed", [True, False])
def test_fhir_bundle_validates_against_the_fhir_resource_models(tmp_path, signed):
    # fhir.resources checks every element name, type, cardinality and required field; its R4B
    # models match R4 (4.0.1) for Bundle, DiagnosticReport, Observation and Device.
    pytest.importorskip("fhir.resources", reason="fhir.resources (a dev dependency) is not installed")
    from fhir.resources.R4B.bundle import Bundle

    rep = make_report(tmp_path / "imgs", 6, signed=signed)
    data = json.loads(write_fhir(rep, tmp_path / "r.fhir.json").read_text(encoding="utf-8"))
    bundle = Bundle.model_validate(data)
    kinds = sorted({entry.resource.get_resource_type() for entry in bundle.entry})
    assert kinds == ["Device", "DiagnosticReport", "Observation"]
    # and malformed ones are refused, so the check above can fail
    from pydantic import ValidationError

    report_index = next(i for i, e in enumerate(data["entry"])
                        if e["resource"]["resourceType"] == "DiagnosticReport")
    for damage in ("unknown element", "missing code", "text as a number"):
        broken = json.loads(json.dumps(data))
        resource = broken["entry"][report_index]["resource"]
        if damage == "unknown element":
            resource["signedOffBy"] = "someone"
        elif damage == "missing code":
            del resource["code"]  # 1..1 in DiagnosticReport
        else:
            resource["conclusion"] = {"text": 12}
        with pytest.raises(ValidationError):
            Bundle.model_validate(broken)


def _flagged_report(tmp_path, n_unlike: int, n_plain: int) -> SampleReport:
    """One field with no white cell (model: Pro), n_unlike fields unlike the training images
    (feature distance 987.6), n_plain ordinary Pre fields."""
    rep = make_report(tmp_path / "imgs", 1)
    base = rep.images[0]
    no_cell = dataclasses.replace(base, file_name="no-cell.jpg", predicted_class="Pro", final_class=None,
                                  reviewed_by=None, flags=(FlagReason.NO_WHITE_CELL,),
                                  ood_score=55.5)
    unlike = [dataclasses.replace(base, file_name=f"other-lab-{k}.jpg", predicted_class="Pre", final_class=None,
                                  reviewed_by=None, flags=(FlagReason.UNLIKE_TRAINING,),
                                  ood_score=987.6) for k in range(n_unlike)]
    plain = [dataclasses.replace(base, file_name=f"plain-{k}.jpg", predicted_class="Pre", final_class=None,
                                 reviewed_by=None, ood_score=12.0) for k in range(n_plain)]
    return dataclasses.replace(rep, images=(no_cell, *unlike, *plain), summary=None)


def _flat(pages: list[str]) -> str:
    return re.sub(r"\s+", " ", " ".join(pages))


def test_pdf_shows_flag_sentences_and_the_acquisition_warning_never_distances(tmp_path):
    # 1 no-white-cell + 1 unlike + 2 plain: 1 of 4 images unlike the training images = 25 %
    rep = _flagged_report(tmp_path, 1, 2)
    s = rep.summary
    assert s["acquisition_warning"] == "The model has not been validated on images like these"
    assert s["call_code"] == "INDETERMINATE_ACQUISITION" and s["call_class"] is None
    assert s["n_withheld"] == 2 and s["counts"]["Pro"] == 0  # the no-cell field's Pro is not counted
    assert s["n_classified"] == 2 and s["fractions"]["Pre"] == 1.0
    text = _flat(pdf_text(write_pdf(rep, tmp_path / "r.pdf", thumbnails=False)))
    assert "Counted images 2 100.0%" in text  # the two plain fields, not all four
    assert "The model has not been validated on images like these." in text
    assert "Indeterminate — images unlike the validated set" in text
    assert FlagReason.NO_WHITE_CELL.sentence in text and FlagReason.UNLIKE_TRAINING.sentence in text
    assert "no white cell" in text and "unlike training" in text and "not counted" in text
    assert "feature distance" not in text.lower()
    for number in ("987", "55.5", "12.0"):  # no ood_score in front of a person
        assert number not in text, number
    # below the threshold: no warning line, and the call is given
    below = _flagged_report(tmp_path / "b", 1, 3)  # 1 of 5 = 20 %
    assert below.summary["acquisition_warning"] is None and below.summary["call_code"] == "ALL_PRE"
    text = _flat(pdf_text(write_pdf(below, tmp_path / "b.pdf", thumbnails=False)))
    assert "not been validated" not in text and "ALL suspected: Pre-B ALL" in text
    assert FlagReason.NO_WHITE_CELL.sentence in text


def test_flags_and_ood_score_round_trip_through_json_and_csv(tmp_path):
    rep = _flagged_report(tmp_path, 1, 2)
    data = json.loads(write_json(rep, tmp_path / "r.json").read_text(encoding="utf-8"))
    images = data["images"]
    assert [im["flags"] for im in images] == [["no_white_cell"], ["unlike_training"], [], []]
    assert images[0]["flag_sentences"] == [FlagReason.NO_WHITE_CELL.sentence]
    assert [im["ood_score"] for im in images] == [55.5, 987.6, 12.0, 12.0]  # the numbers stay in the JSON
    assert data["summary"]["acquisition_warning"] == "The model has not been validated on images like these"
    assert data["summary"]["call_code"] == "INDETERMINATE_ACQUISITION" and data["summary"]["n_withheld"] == 2
    back = read_json(tmp_path / "r.json")
    assert back == rep and back.images[0].flags == (FlagReason.NO_WHITE_CELL,)
    with open(write_csv(rep, tmp_path / "r.csv"), newline="", encoding="utf-8-sig") as f:
        assert [row["flags"] for row in csv.DictReader(f)] == ["no_white_cell", "unlike_training", "", ""]
    # an unknown code is refused, naming it
    broken = json.loads(json.dumps(data))
    broken["images"][0]["flags"] = ["no_white_cell", "sparkles"]
    (tmp_path / "bad.json").write_text(json.dumps(broken), encoding="utf-8")
    with pytest.raises(ReportError, match="sparkles"):
        read_json(tmp_path / "bad.json")


def test_json_written_before_reason_codes_is_read_with_codes(tmp_path):
    rep = make_report(tmp_path / "imgs", 6)
    data = rep.to_dict()
    for im in data["images"]:
        im.pop("flags"), im.pop("flag_sentences"), im.pop("ood_score")
    data["images"][4]["ood_reason"] = "feature distance 412.3 above 333.7; out of focus (sharpness 12, in-focus 35)"
    data["images"][0]["needs_review"] = True  # low confidence, the old rule's other reason
    (tmp_path / "old.json").write_text(json.dumps(data), encoding="utf-8")
    back = read_json(tmp_path / "old.json")
    assert back.images[4].flags == (FlagReason.OUT_OF_FOCUS, FlagReason.UNLIKE_TRAINING)
    assert back.images[0].flags == (FlagReason.LOW_CONFIDENCE,)
    assert back.images[3].flags == () and back.images[5].flags == ()


def test_fhir_conclusion_carries_the_acquisition_warning(tmp_path):
    rep = _flagged_report(tmp_path, 2, 2)
    bundle = build_bundle(rep)
    dr = bundle["entry"][0]["resource"]
    assert dr["conclusion"].startswith("The model has not been validated on images like these. Indeterminate")
    counts = {e["resource"]["code"]["text"]: e["resource"].get("valueInteger") for e in bundle["entry"]
              if e["resource"]["resourceType"] == "Observation"}
    assert counts["Number of images the model cannot judge, not counted until reviewed"] == 3


def test_report_from_the_store_keeps_the_flags(tmp_path):
    from engine.reports.sample import sample_report_from_store
    from engine.store.results import ResultStore

    path = write_image(tmp_path / "a.jpg", synthetic_smear(0, 64, 0))
    with ResultStore.open(tmp_path / "db.sqlite3") as store:
        store.create_or_get_sample("S-1", str(tmp_path))
        store.add_images("S-1", [path])
        result = ImageResult(str(path), "ok", "Benign", 0.9, {c: 0.25 for c in CLASS_IDS}, needs_review=True,
                             out_of_distribution=True, ood_score=1.0,
                             flags=(FlagReason.GRAYSCALE, FlagReason.NO_WHITE_CELL))
        store.record_prediction("S-1", path, result, "m", "1", SHA)
        report = sample_report_from_store(store, "S-1")
    assert report.images[0].flags == (FlagReason.NO_WHITE_CELL, FlagReason.GRAYSCALE)
    assert report.images[0].ood_score == 1.0
    assert report.images[0].ood_reason == (f"{FlagReason.NO_WHITE_CELL.sentence}. "
                                           f"{FlagReason.GRAYSCALE.sentence}.")
    assert report.summary["n_withheld"] == 1 and report.summary["counts"]["Benign"] == 0


def test_readable_time_shows_local_time_with_the_zone_and_keeps_other_text():
    from datetime import datetime

    from engine.reports.pdf_style import readable_time

    local = datetime.fromisoformat("2026-12-01T14:32:00+01:00").astimezone()
    assert readable_time("2026-12-01T14:32:00+01:00") == local.strftime("%Y-%m-%d %H:%M %Z").strip()
    assert readable_time("") == "" and readable_time(None) == "" and readable_time("yesterday") == "yesterday"
