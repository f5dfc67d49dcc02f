"""Model files: ``NAME.safetensors`` (weights, never a pickle) + ``NAME.json`` (the model card,
:mod:`engine.models.card`): writing them (:func:`save_model`), reading a card beside its weights
(:func:`read_card`) and reading the weights, their sha256 verified on every load.

Two guards keep a card from changing what the weights say (:func:`read_card`, i.e. every load):

* **Validation**: :meth:`ModelCard.from_json_dict` (see :mod:`engine.models.card`) refuses any
  value training cannot write, with :class:`ModelError` naming the file and the field.
* **Binding**: :func:`save_model` seals the card's result-bearing fields (:data:`BOUND_FIELDS`)
  into the safetensors header (metadata key :data:`CARD_RECORD_KEY`), so the weights' sha256,
  which the store records with every result, covers them too. A card whose bound fields differ
  from the sealed ones was edited after training and is refused with
  :class:`ModelIntegrityError`; to change them, a new file is written (``main.py refit``, or
  training). Files written before the binding have no record: they load, unbound
  (:attr:`ModelCard.binding`), with one warning per file.

Imports torch only inside :func:`save_model`, :func:`library_versions` and :func:`load_tensors`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine import CLASS_IDS, __version__
from engine.core.errors import ModelError, ModelIntegrityError
from engine.core.fsutil import atomic_write_bytes
from engine.models.card import OOD_LEGACY_METHOD, OOD_METHOD, CardBinding, ModelCard

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------ the binding
#: The safetensors metadata key holding the sealed card fields. It is the header's only key:
#: safetensors writes its metadata map in no fixed order, and the file hash must be reproducible
#: for a deterministic training run (the value is canonical JSON: sorted keys, no spaces).
CARD_RECORD_KEY = "allsight.card"
CARD_RECORD_VERSION = 1
#: The card's top-level JSON fields sealed into the weights file: everything that changes a
#: result or what a person is told about it (the classes and their names, the network's build,
#: the preprocessing and normalisation, the calibration, the review threshold, the OOD detector).
#: Not bound: id, version, training, data_fingerprint, metrics, created, libraries (descriptive;
#: the store keys results by the weights' sha256) and weights (the hash itself).
BOUND_FIELDS: tuple[str, ...] = ("architecture", "mode", "classes", "input_size", "normalization", "preprocess",
                                 "calibration", "review_threshold", "ood")
#: The bound fields ``main.py refit`` replaces (so an edit to them does not stop a refit).
CALIBRATION_FIELDS: tuple[str, ...] = ("calibration", "review_threshold", "ood")
#: safetensors' own limit on its JSON header.
_MAX_HEADER_BYTES = 100_000_000


def card_record(card_json: Mapping[str, Any]) -> str:
    """The canonical JSON of a card's :data:`BOUND_FIELDS` that :func:`save_model` seals into the
    weights file (sorted keys, no spaces: the same card always gives the same bytes)."""
    fields = {name: card_json[name] for name in BOUND_FIELDS}
    return json.dumps({"version": CARD_RECORD_VERSION, "fields": fields}, sort_keys=True, separators=(",", ":"))


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (8-byte little-endian length, then JSON): tensor
    names, dtypes and shapes, and ``__metadata__``. Reads only the header; imports no torch."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 0 < length <= min(_MAX_HEADER_BYTES, os.fstat(f.fileno()).st_size - 8):
                raise ValueError("its header length is impossible")
            header = json.loads(f.read(length))
        if not isinstance(header, dict):
            raise ValueError("its header is not a JSON object")
    except OSError as exc:
        raise ModelError(f"{path}: weights file cannot be read ({exc.strerror})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not a valid safetensors file ({exc})") from None
    return header


def _sealed_fields(header: Mapping[str, Any], weights: Path) -> dict[str, Any] | None:
    """The card fields sealed into the weights file, or ``None`` for a file from before the binding."""
    meta = header.get("__metadata__") or {}
    raw = meta.get(CARD_RECORD_KEY) if isinstance(meta, Mapping) else None
    if raw is None:
        return None
    try:
        record = json.loads(raw)
        version, fields = int(record["version"]), record["fields"]
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelIntegrityError(f"{weights}: the model card record in the weights file is unreadable "
                                  f"({type(exc).__name__}); refusing to load it.") from None
    if version > CARD_RECORD_VERSION:
        raise ModelError(f"{weights}: the weights file's card record (version {version}) is newer than this "
                         f"ALLSight understands ({CARD_RECORD_VERSION}); update ALLSight.")
    if not isinstance(fields, dict) or set(fields) != set(BOUND_FIELDS):
        raise ModelIntegrityError(f"{weights}: the model card record in the weights file is incomplete; "
                                  "refusing to load it.")
    return fields


def _edited_fields(sealed: Mapping[str, Any], data: Mapping[str, Any], skip: Sequence[str] = ()) -> list[str]:
    """The bound fields (``ood.threshold`` for one key of a section) where ``data`` differs from
    ``sealed``."""
    def canon(value: Any) -> str:
        return json.dumps(value, sort_keys=True)

    missing = object()
    edited: list[str] = []
    for name in BOUND_FIELDS:
        if name in skip:
            continue
        was, now = sealed.get(name, missing), data.get(name, missing)
        if isinstance(was, Mapping) and isinstance(now, Mapping):
            edited += [f"{name}.{k}" for k in sorted(set(was) | set(now), key=str)
                       if k not in was or k not in now or canon(was[k]) != canon(now[k])]
        elif was is missing or now is missing or canon(was) != canon(now):
            edited.append(name)
    return edited


def _check_detector_tensors(card: ModelCard, header: Mapping[str, Any], weights: Path) -> None:
    """The card's ``ood`` section describes the detector tensors the weights file holds (a
    deleted section or a renamed layer would otherwise load as "no detector")."""
    where = f"{card.path}: " if card.path else ""
    stored = {k: v for k, v in header.items() if k.startswith("ood.") and isinstance(v, Mapping)}
    if not card.ood:
        if stored:
            raise ModelError(f"{where}the model card has no 'ood' section, but {weights.name} holds an "
                             "out-of-distribution detector: the card was edited or belongs to other weights; "
                             "refusing to load it.")
        return
    expected: dict[str, tuple[str, list[int] | None]]  # tensor -> (its layer, its shape if the card says)
    if card.ood.get("method", OOD_LEGACY_METHOD) == OOD_METHOD:
        expected = {f"ood.{layer}.{part}": (layer, shape)
                    for layer, dim in zip(card.ood["feature_layers"], card.ood["dims"], strict=True)
                    for part, shape in (("means", [len(CLASS_IDS), dim]), ("precision", [dim, dim]))}
    else:  # one layer, of a width the card does not record
        layer = str(card.ood.get("feature_layer", "features"))
        expected = {"ood.means": (layer, None), "ood.precision": (layer, None)}
    for name, (layer, shape) in expected.items():
        found = stored.get(name)
        if found is None or (shape is not None and list(found.get("shape", ())) != shape):
            what = "missing" if found is None else f"shape {found.get('shape')}"
            raise ModelError(f"{where}model card field 'ood' does not match {weights.name}: the tensor {name} "
                             f"({what}) does not fit layer {layer} of the card; refusing to load it.")


_warned_unbound: set[Path] = set()
_warned_lock = threading.Lock()


def _bind(card: ModelCard, data: Mapping[str, Any], *, recalibrating: bool) -> ModelCard:
    """``card`` checked against the fields sealed into its weights file (see the module docstring)."""
    weights = card.weights_path
    if not weights.is_file():
        return card  # UNCHECKED: whoever loads the weights reports the missing file
    header = read_safetensors_header(weights)
    sealed = _sealed_fields(header, weights)
    if sealed is not None:  # first: "edited after training" is the truest account of any mismatch
        edited = _edited_fields(sealed, data, CALIBRATION_FIELDS if recalibrating else ())
        if edited:
            raise ModelIntegrityError(
                f"{card.path}: the model card was edited after training ({', '.join(edited)} "
                f"{'differs' if len(edited) == 1 else 'differ'} from what {weights.name} was saved with); refusing "
                "to load it. Use the card that came with these weights; calibration and thresholds are changed by "
                "`main.py refit`, which writes a new model file."
            )
        if recalibrating and _edited_fields(sealed, data):
            log.info("%s: calibration fields differ from the weights' (being replaced by the refit)", card.path)
    if not recalibrating:  # refit replaces the ood section, and the tensors with it
        _check_detector_tensors(card, header, weights)
    if sealed is not None:
        return replace(card, binding=CardBinding.BOUND)
    with _warned_lock:
        first = weights.resolve() not in _warned_unbound
        _warned_unbound.add(weights.resolve())
    if first:
        log.warning("%s was written before model cards were bound to their weights: its card (%s) is "
                    "validated, but an edit to it cannot be detected", weights, card.path)
    return replace(card, binding=CardBinding.UNBOUND)


# ------------------------------------------------------------------------------- writing
def library_versions() -> dict[str, str]:
    import cv2
    import numpy
    import safetensors
    import torch
    import torchvision

    return {
        "allsight": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "torchvision": torchvision.__version__, "opencv": cv2.__version__, "numpy": numpy.__version__,
        "safetensors": safetensors.__version__,
    }


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_model(tensors: Mapping[str, Any], card: ModelCard, out_dir: str | Path, name: str | None = None) -> ModelCard:
    """Write ``name.safetensors`` and ``name.json`` atomically; returns the card as written.

    The card's :data:`BOUND_FIELDS` are sealed into the weights file's header, and the card must
    pass the checks every load applies (:class:`ModelError` otherwise, before anything is written)."""
    from safetensors.torch import save

    name = name or card.id
    out_dir = Path(out_dir)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    if card.weights_dtype == "float16":
        tensors = {k: v.half() if v.is_floating_point() and not k.startswith("ood.") else v for k, v in tensors.items()}
    weights = out_dir / f"{name}.safetensors"
    card = replace(
        card,
        weights_file=weights.name,
        created=card.created or datetime.now(UTC).isoformat(timespec="seconds"),
        libraries=card.libraries or library_versions(),
        path=out_dir / f"{name}.json",
        binding=CardBinding.BOUND,
    )
    # One metadata key only (see CARD_RECORD_KEY): the record is canonical JSON.
    blob = save(tensors, metadata={CARD_RECORD_KEY: card_record(card.to_json_dict())})
    card = replace(card, weights_sha256=hashlib.sha256(blob).hexdigest())
    text = json.dumps(card.to_json_dict(), indent=2) + "\n"
    # What a load will check, before anything is written.
    ModelCard.from_json_dict(json.loads(text), card.path)
    _check_detector_tensors(card, json.loads(blob[8:8 + int.from_bytes(blob[:8], "little")]), weights)
    atomic_write_bytes(weights, blob)
    atomic_write_bytes(out_dir / f"{name}.json", text.encode())
    return card


# ------------------------------------------------------------------------------- reading
def read_card(path: str | Path, *, recalibrating: bool = False) -> ModelCard:
    """The model card at ``path`` (or beside a ``.safetensors`` path), validated and, when its
    weights file is there, checked against the fields sealed into it (:class:`ModelIntegrityError`
    if it was edited after training). ``recalibrating=True`` is for ``refit``, which replaces the
    :data:`CALIBRATION_FIELDS`: edits to those do not stop it."""
    path = Path(path)
    if path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    if not path.is_file():
        raise ModelError(f"{path}: model card not found (every .safetensors needs its .json card beside it)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: model card cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: model card is incomplete or malformed (not a JSON object)")
    return _bind(ModelCard.from_json_dict(data, path), data, recalibrating=recalibrating)


def read_verified_weights(card: ModelCard) -> bytes:
    """The bytes of ``card``'s weights file, refused unless their sha256 matches the card's."""
    path = card.weights_path
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: weights file cannot be read ({exc.strerror})") from None
    digest = hashlib.sha256(blob).hexdigest()
    if digest != card.weights_sha256:
        raise ModelIntegrityError(
            f"{path}: weights file is corrupt or has been tampered with (sha256 {digest[:12]}... "
            f"does not match the model card's {card.weights_sha256[:12]}...); refusing to load it."
        )
    return blob


def load_tensors(card: ModelCard) -> dict[str, Any]:
    """Read and verify the weights of ``card`` as float torch tensors; refuses files whose sha256
    differs."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    blob = read_verified_weights(card)
    try:
        tensors = load(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{card.weights_path}: not a valid safetensors file ({exc})") from None
    return {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}


def load_arrays(card: ModelCard, prefix: str = "") -> dict[str, Any]:
    """Like :func:`load_tensors` but as NumPy arrays, without importing torch; only the keys
    starting with ``prefix`` (e.g. ``"ood."``). The file's hash is verified all the same."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    blob = read_verified_weights(card)
    try:
        arrays = load(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{card.weights_path}: not a valid safetensors file ({exc})") from None
    return {k: v for k, v in arrays.items() if k.startswith(prefix)}
