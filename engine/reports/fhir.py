"""A sample report as an HL7 FHIR R4 Bundle (``type: collection``).

The bundle holds one ``DiagnosticReport`` (status ``preliminary``, or ``final`` once signed off;
conclusion = the sample's call, after the acquisition warning when there is one), one
``Observation`` per class with the fraction of classified images as a ``valueQuantity`` in ``%``
and the image count as a component, one ``Observation`` each for the number of classified,
flagged-for-review, out-of-distribution, withheld (cannot be judged, not yet reviewed) and failed images,
and a ``Device`` describing the model (id, version, weights SHA-256) and the software. Every
entry has a ``urn:uuid:`` ``fullUrl``; references between resources use those URLs, so they
resolve inside the bundle. The patient is referenced by identifier (no Patient resource: the
report carries only the lab's patient ID).

Built with the standard library only; the structure follows the FHIR R4 (4.0.1) resource
definitions. See docs/report.md.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine import CLASS_IDS
from engine.reports.files import atomic_write
from engine.reports.sample import NOTICE, SampleReport, display_name

#: Namespace for the deterministic resource ids (same report -> same UUIDs).
_NAMESPACE = uuid.UUID("6f2b1c1e-8a4e-4f8e-9d55-5a1c3e0b7a11")
UCUM = "http://unitsofmeasure.org"
OBS_CATEGORY = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "laboratory", "display": "Laboratory"}],
}
REPORT_CATEGORY = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "HM",
                "display": "Hematology"}],
}


def fhir_datetime(text: str | None) -> str | None:
    """A FHIR ``dateTime`` from an ISO-like string, or None when it cannot be read.

    FHIR requires a time zone whenever a time is given; a time without a zone is reduced to
    its date rather than guessing the zone.
    """
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        return dt.date().isoformat()
    return dt.isoformat()


def _uuid(report: SampleReport, *parts: str) -> str:
    key = "|".join((report.sample_id, report.patient_id, report.created_at, report.model.sha256, *parts))
    return str(uuid.uuid5(_NAMESPACE, key))


def build_bundle(report: SampleReport) -> dict[str, Any]:
    """The FHIR R4 Bundle as a JSON-ready dict."""
    s = report.summary
    status = "final" if report.signed_off else "preliminary"
    subject = {"identifier": {"value": report.patient_id}, "display": f"Patient {report.patient_id}"}
    effective = fhir_datetime(report.created_at)
    issued = fhir_datetime(report.signed_off_at) if report.signed_off else None
    if issued is not None and "T" not in issued:
        issued = None  # instant needs a full time with zone

    entries: list[dict[str, Any]] = []

    def add(resource: dict[str, Any], *key: str) -> str:
        rid = _uuid(report, *key)
        resource = {"resourceType": resource.pop("resourceType"), "id": rid, **resource}
        url = f"urn:uuid:{rid}"
        entries.append({"fullUrl": url, "resource": resource})
        return url

    device_url = add({
        "resourceType": "Device",
        "status": "active",
        "manufacturer": "ALLSight",
        "deviceName": [{"name": f"ALLSight {report.software_version}", "type": "user-friendly-name"},
                       {"name": report.model.id, "type": "model-name"}],
        "version": [{"type": {"text": "software"}, "value": report.software_version},
                    {"type": {"text": "model"}, "value": report.model.version},
                    {"type": {"text": "model weights SHA-256"}, "value": report.model.sha256}],
        "note": [{"text": NOTICE}],
    }, "device")

    def observation(key: str, code_text: str, value: dict[str, Any], components=None) -> str:
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "status": status,
            "category": [OBS_CATEGORY],
            "code": {"text": code_text},
            "subject": subject,
            "device": {"reference": device_url},
            **value,
            "note": [{"text": NOTICE}],
        }
        if effective:
            obs["effectiveDateTime"] = effective
        if components:
            obs["component"] = components
        return add(obs, "obs", key)

    results = []
    counts, fractions = s.get("counts", {}), s.get("fractions", {})
    for c in CLASS_IDS:
        pct = round(100.0 * float(fractions.get(c, 0.0)), 2)
        results.append(observation(
            f"fraction-{c}", f"Fraction of classified images: {display_name(c)}",
            {"valueQuantity": {"value": pct, "unit": "%", "system": UCUM, "code": "%"}},
            [{"code": {"text": f"Number of images: {display_name(c)}"},
              "valueInteger": int(counts.get(c, 0))}],
        ))
    for key, text in (("n_ok", "Number of classified images"),
                      ("n_needs_review", "Number of images flagged for review"),
                      ("n_ood", "Number of out-of-distribution images"),
                      ("n_withheld", "Number of images the model cannot judge, not counted until reviewed"),
                      ("n_error", "Number of images that could not be read")):
        results.append(observation(key, text, {"valueInteger": int(s.get(key, 0))}))

    diag: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "identifier": [{"value": report.sample_id}],
        "status": status,
        "category": [REPORT_CATEGORY],
        "code": {"text": "B-ALL subtype screening of blood smear images (ALLSight, research use only)"},
        "subject": subject,
        "performer": [{"display": f"{report.operator} ({report.lab_name})"}],
        "result": [{"reference": url} for url in results],
        "conclusion": str(s.get("call", "")),
    }
    if s.get("acquisition_warning"):  # the one line that says why the call is withheld
        diag["conclusion"] = f"{s['acquisition_warning']}. {diag['conclusion']}"
    if effective:
        diag["effectiveDateTime"] = effective
    if issued:
        diag["issued"] = issued
    if report.reviewer:
        diag["resultsInterpreter"] = [{"display": report.reviewer}]
    report_url = add(diag, "report")
    # The DiagnosticReport first: it is what a reader of the bundle looks for.
    entries.insert(0, entries.pop(next(i for i, e in enumerate(entries) if e["fullUrl"] == report_url)))

    return {
        "resourceType": "Bundle",
        "id": _uuid(report, "bundle"),
        "type": "collection",
        "timestamp": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "entry": entries,
    }


def write_fhir(report: SampleReport, path: str | Path) -> Path:
    """Write the FHIR R4 Bundle as JSON, atomically."""
    data = (json.dumps(build_bundle(report), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(data), "FHIR export")
