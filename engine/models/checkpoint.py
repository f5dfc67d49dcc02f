"""Model files: ``NAME.safetensors`` (weights, never a pickle) + ``NAME.json`` (the model card).

The card carries everything needed to use the weights the way they were trained: architecture,
classes, the full :class:`PreprocessConfig`, normalisation, calibration temperature, review
threshold, out-of-distribution detector settings, training recipe, data fingerprint, metrics,
library versions and the sha256 of the weights file, which is verified on every load.

Two guards keep a card from changing what the weights say (:func:`read_card`, i.e. every load):

* **Validation**: every value that changes a result must be one training can write (the four
  classes in the network's order, a temperature in :data:`TEMPERATURE_RANGE`, a review threshold
  in [0, 1], finite OOD thresholds and scales in range, consistent image size and
  normalisation, a known architecture); anything else is refused with :class:`ModelError`
  naming the file and the field.
* **Binding**: :func:`save_model` seals the card's result-bearing fields (:data:`BOUND_FIELDS`)
  into the safetensors header (metadata key :data:`CARD_RECORD_KEY`), so the weights' sha256,
  which the store records with every result, covers them too. A card whose bound fields differ
  from the sealed ones was edited after training and is refused with
  :class:`ModelIntegrityError`; to change them, a new file is written (``main.py refit``, or
  training). Files written before the binding have no record: they load, unbound
  (:attr:`ModelCard.binding`), with one warning per file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from engine import CLASS_DISPLAY_NAMES, CLASS_IDS, __version__
from engine.core.errors import ConfigError, ModelError, ModelIntegrityError
from engine.core.fsutil import atomic_write_bytes
from engine.imaging.preprocess import PreprocessConfig
from engine.models import installed
from engine.models.spec import REGISTERED

log = logging.getLogger(__name__)

CARD_SCHEMA_VERSION = 1
#: The shipped models live here, next to the code (read-only at run time).
SHIPPED_MODELS_DIR = Path(__file__).resolve().parents[2] / "resources" / "models"
DEFAULT_MODEL_ID = "resnet18"

# ------------------------------------------------------------------------- what a card may say
#: The architectures of :mod:`engine.models.zoo`. Checking a card must not import torch (the
#: ONNX path never does), and the zoo registers its models only when imported, so their names
#: are restated here; tests/engine/models/test_checkpoint.py keeps the two lists equal. Any other
#: architecture must be registered (:data:`engine.models.spec.REGISTERED`) before its card is read.
BUILT_IN_ARCHITECTURES: tuple[str, ...] = ("alexnet", "baseline", "resnet18", "vgg16")
#: What ``engine.models.registry.build_model`` accepts.
MODES: tuple[str, ...] = ("finetune", "frozen")
#: The range :func:`engine.inference.predict.fit_temperature` clips to (it always has): a trained
#: card never holds anything else, and a near-zero temperature turns every call into "1.000000".
TEMPERATURE_RANGE: tuple[float, float] = (0.05, 20.0)
#: ``ood.method`` values (:data:`engine.inference.ood.METHOD` / ``LEGACY_METHOD``; restated, as
#: engine.models may not import engine.inference; a test keeps them equal).
OOD_METHOD = "mahalanobis-multilayer"
OOD_LEGACY_METHOD = "mahalanobis"
#: Largest ``ood.threshold`` of the multi-layer detector. Its scores are in units of each layer's
#: ``block_quantile`` (95 %) validation distance, and training sets the threshold at the
#: ``quantile`` (97.5 %) of validation scores: the shipped cards hold 1.5 and 1.9. A threshold of
#: 100 would let through images a hundred times further from the training data than nearly every
#: validation image; larger values can only mean "never flag".
MAX_OOD_THRESHOLD = 100.0
#: Largest ``ood.threshold`` of the one-layer (pre-1.2) detector, whose scores are raw squared
#: distances with no fixed scale, so it can only be bounded loosely (1e9: a distance of 31,623
#: standard deviations; the test models use it to mean "never flag"). The binding is what
#: protects these values.
MAX_LEGACY_OOD_THRESHOLD = 1e9
#: Bounds of ``normalization``/``preprocess`` mean and std: statistics of an RGB input in 0..1.
MEAN_RANGE: tuple[float, float] = (0.0, 1.0)
STD_MAX = 1.0
WEIGHTS_DTYPES: tuple[str, ...] = ("float32", "float16")

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


class CardBinding(StrEnum):
    """Whether a card's result-bearing fields were checked against its weights file."""

    #: The weights file seals these fields and the card matches them.
    BOUND = "bound"
    #: The weights file predates the binding: the card's fields are validated, not bound.
    UNBOUND = "unbound"
    #: Not read beside its weights file (a card built in memory, or one whose weights file is
    #: missing: loading it fails on the file).
    UNCHECKED = "unchecked"


@dataclass(frozen=True)
class ModelCard:
    id: str
    version: str
    architecture: str
    preprocess: PreprocessConfig
    classes: tuple[str, ...] = CLASS_IDS
    class_display_names: Mapping[str, str] = field(default_factory=lambda: dict(CLASS_DISPLAY_NAMES))
    mode: str = "finetune"
    temperature: float = 1.0
    review_threshold: float = 0.0
    ood: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    data_fingerprint: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    created: str = ""
    libraries: Mapping[str, str] = field(default_factory=dict)
    weights_file: str = ""
    weights_sha256: str = ""
    weights_dtype: str = "float32"
    #: Where the card was read from (not stored).
    path: Path | None = None
    #: Whether the card was checked against the fields sealed into its weights file (not stored).
    binding: CardBinding = field(default=CardBinding.UNCHECKED, compare=False)

    @property
    def image_size(self) -> int:
        return self.preprocess.image_size

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "schema_version": CARD_SCHEMA_VERSION,
            "id": self.id,
            "version": self.version,
            "architecture": self.architecture,
            "mode": self.mode,
            "classes": [{"id": c, "display_name": self.class_display_names.get(c, c)} for c in self.classes],
            "input_size": [3, self.preprocess.image_size, self.preprocess.image_size],
            "normalization": {"mean": list(self.preprocess.mean), "std": list(self.preprocess.std)},
            "preprocess": self.preprocess.to_dict(),
            "calibration": {"method": "temperature", "temperature": self.temperature},
            "review_threshold": self.review_threshold,
            "ood": dict(self.ood),
            "training": dict(self.training),
            "data_fingerprint": dict(self.data_fingerprint),
            "metrics": dict(self.metrics),
            "created": self.created,
            "libraries": dict(self.libraries),
            "weights": {"file": self.weights_file, "sha256": self.weights_sha256, "dtype": self.weights_dtype},
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any], path: Path | None = None) -> ModelCard:
        """The card ``data`` describes, refused with :class:`ModelError` (naming ``path`` and the
        field) unless every value is one training could have written (see the module docstring).
        The binding to the weights file is :func:`read_card`'s."""
        where = f"{path}: " if path else ""
        try:
            schema = int(data["schema_version"])
            if schema > CARD_SCHEMA_VERSION:
                raise ModelError(f"{where}model card schema {schema} is newer than this ALLSight "
                                 f"understands ({CARD_SCHEMA_VERSION}); update ALLSight.")
            classes = tuple(c["id"] for c in data["classes"])
            try:
                preprocess = PreprocessConfig.from_dict(_checked_preprocess(data["preprocess"], where))
            except ConfigError as exc:
                raise ModelError(f"{where}model card field 'preprocess' is invalid ({exc}); refusing to load it.") from None
            card = cls(
                id=str(data["id"]),
                version=str(data["version"]),
                architecture=str(data["architecture"]),
                mode=str(data.get("mode", "finetune")),
                preprocess=preprocess,
                classes=classes,
                class_display_names={c["id"]: c.get("display_name", c["id"]) for c in data["classes"]},
                temperature=_number(data.get("calibration", {}).get("temperature", 1.0), "calibration.temperature",
                                    where),
                review_threshold=_number(data.get("review_threshold", 0.0), "review_threshold", where),
                ood=dict(data.get("ood", {})),
                training=dict(data.get("training", {})),
                data_fingerprint=dict(data.get("data_fingerprint", {})),
                metrics=dict(data.get("metrics", {})),
                created=str(data.get("created", "")),
                libraries=dict(data.get("libraries", {})),
                weights_file=str(data["weights"]["file"]),
                weights_sha256=str(data["weights"]["sha256"]),
                weights_dtype=str(data["weights"].get("dtype", "float32")),
                path=path,
            )
            _check_card(card, data, where)
            return card
        except ModelError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"{where}model card is incomplete or malformed ({type(exc).__name__}: {exc})") from None

    @property
    def weights_path(self) -> Path:
        if self.path is None:
            raise ModelError(f"model card {self.id} has no location")
        return self.path.parent / self.weights_file


# ---------------------------------------------------------------------------- validation
def _refuse(where: str, name: str, rule: str, value: Any) -> ModelError:
    return ModelError(f"{where}model card field '{name}' {rule}, got {value!r}; refusing to load it.")


def _number(value: Any, name: str, where: str) -> float:
    """``value`` as a finite float; a string, a bool, NaN or infinity is refused (JSON parsers
    accept ``NaN`` and ``Infinity``, and a hand-edited ``"0.5"`` is not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _refuse(where, name, "must be a finite number", value)
    return float(value)


def _in_range(value: Any, name: str, where: str, low: float, high: float, *, low_open: bool = False) -> float:
    x = _number(value, name, where)
    if not (low < x if low_open else low <= x) or x > high:
        raise _refuse(where, name, f"must be {'>' if low_open else '>='} {low:g} and <= {high:g}", value)
    return x


def _triple(value: Any, name: str, where: str, low: float, high: float, *, low_open: bool = False) -> list[float]:
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)) or len(value) != 3:
        raise _refuse(where, name, "must be three numbers (R, G, B)", value)
    return [_in_range(v, name, where, low, high, low_open=low_open) for v in value]


def _checked_preprocess(section: Any, where: str) -> Mapping[str, Any]:
    """``preprocess`` with its normalisation checked here (:class:`PreprocessConfig` itself lets
    NaN through, and names no file); the rest is :class:`PreprocessConfig`'s own validation."""
    if not isinstance(section, Mapping):
        raise _refuse(where, "preprocess", "must be an object", section)
    if "mean" in section:
        _triple(section["mean"], "preprocess.mean", where, *MEAN_RANGE)
    if "std" in section:
        _triple(section["std"], "preprocess.std", where, 0.0, STD_MAX, low_open=True)
    return section


def _check_ood(ood: Mapping[str, Any], where: str) -> None:
    """The ``ood`` section as :mod:`engine.inference.ood` writes it (``card_section``)."""
    if not ood:
        return  # no detector (the weights file must then hold none either: _check_detector_tensors)
    method = ood.get("method", OOD_LEGACY_METHOD)
    if method not in (OOD_METHOD, OOD_LEGACY_METHOD):
        raise _refuse(where, "ood.method", f"must be {OOD_METHOD!r} or {OOD_LEGACY_METHOD!r}", method)
    # A section without a threshold means "no detector" to the classifier: not something to
    # leave in a card that describes one.
    limit = MAX_OOD_THRESHOLD if method == OOD_METHOD else MAX_LEGACY_OOD_THRESHOLD
    _in_range(ood.get("threshold"), "ood.threshold", where, 0.0, limit)
    for key in ("quantile", "block_quantile"):
        if key in ood:
            _in_range(ood[key], f"ood.{key}", where, 0.0, 1.0, low_open=True)
    if "feature_layer" in ood and (not isinstance(ood["feature_layer"], str) or not ood["feature_layer"]):
        raise _refuse(where, "ood.feature_layer", "must be a layer name", ood["feature_layer"])
    if method != OOD_METHOD:
        return
    layers, dims, scales = ood.get("feature_layers"), ood.get("dims"), ood.get("scales")
    if (not isinstance(layers, list) or not layers or len(set(map(str, layers))) != len(layers)
            or not all(isinstance(name, str) and name for name in layers)):
        raise _refuse(where, "ood.feature_layers", "must be a list of distinct layer names", layers)
    if (not isinstance(dims, list) or len(dims) != len(layers)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims)):
        raise _refuse(where, "ood.dims", f"must be {len(layers)} positive whole numbers, one per layer", dims)
    if not isinstance(scales, list) or len(scales) != len(layers):
        raise _refuse(where, "ood.scales", f"must be {len(layers)} numbers, one per layer", scales)
    for scale in scales:
        # Raw squared distances (no fixed unit, so no upper bound); > 0 because scores are divided by them.
        if _number(scale, "ood.scales", where) <= 0:
            raise _refuse(where, "ood.scales", "must be numbers > 0", scales)


def _check_card(card: ModelCard, data: Mapping[str, Any], where: str) -> None:
    """Every rule of the module docstring's "Validation" that parsing did not already apply."""
    if card.classes != CLASS_IDS:
        raise _refuse(where, "classes", f"must be exactly {', '.join(CLASS_IDS)}, in this order (the order of "
                      "the network's outputs)", list(card.classes))
    known = sorted(set(BUILT_IN_ARCHITECTURES) | set(REGISTERED))
    if card.architecture not in known:
        raise _refuse(where, "architecture", f"must be a registered architecture ({', '.join(known)})",
                      card.architecture)
    if card.mode not in MODES:
        raise _refuse(where, "mode", f"must be {' or '.join(map(repr, MODES))}", card.mode)
    _in_range(card.temperature, "calibration.temperature", where, *TEMPERATURE_RANGE)
    # 0 is legitimate: training writes it when every validation image met the target precision.
    _in_range(card.review_threshold, "review_threshold", where, 0.0, 1.0)
    size = card.preprocess.image_size
    if "input_size" in data and list(data["input_size"]) != [3, size, size]:
        raise _refuse(where, "input_size", f"must be [3, {size}, {size}] (preprocess.image_size is {size})",
                      data["input_size"])
    norm = data.get("normalization")
    if norm is not None:
        for key in ("mean", "std"):
            if not isinstance(norm, Mapping) or list(norm.get(key, ())) != list(getattr(card.preprocess, key)):
                raise _refuse(where, f"normalization.{key}", f"must equal preprocess.{key} "
                              f"{list(getattr(card.preprocess, key))}", norm.get(key) if isinstance(norm, Mapping)
                              else norm)
    _check_ood(card.ood, where)
    name = card.weights_file
    if not name.endswith(".safetensors") or Path(name).name != name or "\\" in name or name.startswith("."):
        raise _refuse(where, "weights.file", "must be the name of a .safetensors file beside the card", name)
    if len(card.weights_sha256) != 64 or any(c not in "0123456789abcdef" for c in card.weights_sha256):
        raise _refuse(where, "weights.sha256", "must be 64 lower-case hexadecimal digits", card.weights_sha256)
    if card.weights_dtype not in WEIGHTS_DTYPES:
        raise _refuse(where, "weights.dtype", f"must be {' or '.join(WEIGHTS_DTYPES)}", card.weights_dtype)


# ------------------------------------------------------------------------------- binding
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


def resolve_model_card(model: str | Path | None, *, recalibrating: bool = False) -> ModelCard:
    """The model ``model`` names: ``None`` or "" for the active model (:func:`active_card_path`),
    a shipped id (``resnet18``, ``baseline``), a lab model (``id``, ``id@version`` or a sha256
    prefix, :mod:`engine.models.installed`), or a path to a model file."""
    model = str(model or "")
    if not model:
        return read_card(active_card_path(), recalibrating=recalibrating)
    if model.endswith((".safetensors", ".json")) or os.sep in model or "/" in model:
        return read_card(model, recalibrating=recalibrating)
    card_path = SHIPPED_MODELS_DIR / f"{model}.json"
    if card_path.is_file():
        return read_card(card_path, recalibrating=recalibrating)
    lab = installed.find_lab_card(model)
    if lab is None:
        shipped = sorted(p.stem for p in SHIPPED_MODELS_DIR.glob("*.json"))
        raise ModelError(f"no model {model!r}; shipped models: {', '.join(shipped) or 'none'}; lab models: "
                         f"see `main.py models list` (or give a path to a .safetensors file)")
    return read_card(lab, recalibrating=recalibrating)


def active_card_path(root: Path | None = None) -> Path:
    """The card of the active model: the one ``active.json`` names, else the shipped default.
    :class:`ModelError` when the named model is gone, or
    :class:`ModelIntegrityError` when its weights are no longer the ones activated: a model that
    classifies never changes without an activation."""
    active = installed.read_active(root)
    if active is None:
        return SHIPPED_MODELS_DIR / f"{DEFAULT_MODEL_ID}.json"
    if active.get("source") == "shipped":
        path = SHIPPED_MODELS_DIR / f"{active.get('model', DEFAULT_MODEL_ID).partition('@')[0]}.json"
    else:
        path = (root or installed.library_dir()) / str(active.get("card", ""))
    if not path.is_file():
        raise ModelError(f"the active model {active.get('model')} (activated by {active.get('by')} at "
                         f"{active.get('at')}) is missing ({path}); activate another model (Tools ▸ Models… "
                         f"or `main.py models activate`)")
    if active.get("source") != "shipped":
        try:
            sha = installed.card_sha256(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
            raise ModelError(f"{path}: the active model's card cannot be read ({exc})") from None
        if sha != active["sha256"]:
            raise ModelIntegrityError(f"{path}: the active model's card names other weights (sha256 {sha[:12]}…) "
                                      f"than those activated ({active['sha256'][:12]}…); refusing to use it")
    return path


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


@dataclass
class LoadedModel:
    card: ModelCard
    net: Any  # torch.nn.Module, eval mode
    extras: dict[str, Any]  # non-network tensors stored with the weights (e.g. "ood.*")


def load_model(model: str | Path | ModelCard | None = None, *, recalibrating: bool = False) -> LoadedModel:
    """The network of ``model`` (a card, or what :func:`resolve_model_card` accepts), its weights
    verified; ``recalibrating`` as for :func:`read_card`."""
    from engine.models.registry import build_model

    card = model if isinstance(model, ModelCard) else resolve_model_card(model, recalibrating=recalibrating)
    tensors = load_tensors(card)
    net_state = {k[len("net."):]: v for k, v in tensors.items() if k.startswith("net.")}
    extras = {k: v for k, v in tensors.items() if not k.startswith("net.")}
    # "frozen" models are complete networks once trained; build without fetching ImageNet weights.
    net = build_model(card.architecture, num_classes=len(card.classes), init="scratch", image_size=card.image_size)
    try:
        net.load_state_dict(net_state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{card.weights_path}: weights do not fit architecture {card.architecture} ({exc})") from None
    net.eval()
    return LoadedModel(card, net, extras)
