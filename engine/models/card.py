"""The model card (``NAME.json`` beside ``NAME.safetensors``): :class:`ModelCard`, its JSON form
and its validation.

The card carries everything needed to use the weights the way they were trained: architecture,
classes, the full :class:`PreprocessConfig`, normalisation, calibration temperature, review
threshold, out-of-distribution detector settings, training recipe, data fingerprint, metrics,
library versions and the sha256 of the weights file, which is verified on every load.

**Validation** (:meth:`ModelCard.from_json_dict`, so every read): every value that changes a
result must be one training can write (the four classes in the network's order, a temperature in
:data:`TEMPERATURE_RANGE`, a review threshold in [0, 1], finite OOD thresholds and scales in
range, consistent image size and normalisation, a known architecture); anything else is refused
with :class:`ModelError` naming the file and the field. The other guard, the binding of the
card's result-bearing fields to the weights file, is :mod:`engine.models.checkpoint`'s
(:class:`CardBinding` records its outcome). Imports no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from engine import CLASS_DISPLAY_NAMES, CLASS_IDS
from engine.core.errors import ConfigError, ModelError
from engine.imaging.preprocess import PreprocessConfig
from engine.models.spec import REGISTERED

CARD_SCHEMA_VERSION = 1

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
#: The kinds of ONNX graph a card may list (``graphs``): the network as exported, and a static
#: INT8 graph quantised from it (:mod:`engine.inference.quantize`), run with an fp32 check.
GRAPH_KINDS: tuple[str, ...] = ("fp32", "int8")
#: Fields of ``graphs.int8.fp32_check`` (:class:`engine.inference.cascade.Fp32Check`), each a
#: band in which the fp32 graph decides instead of INT8, with its largest sensible value.
FP32_CHECK_BOUNDS: Mapping[str, float] = {"margin": 1.0, "confidence_band": 10.0, "ood_band": 10.0}


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
    #: The network's ONNX graphs beside the weights, by kind ("fp32"): ``{"file", "sha256",
    #: "graph_key", "format"}`` each (:mod:`engine.models.graphs`). Derived from the weights, so
    #: not sealed into them; each is bound to the weights and the card by its graph key instead.
    graphs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
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
            **({"graphs": {kind: dict(entry) for kind, entry in self.graphs.items()}} if self.graphs else {}),
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any], path: Path | None = None) -> ModelCard:
        """The card ``data`` describes, refused with :class:`ModelError` (naming ``path`` and the
        field) unless every value is one training could have written (see the module docstring).
        The binding to the weights file is :func:`engine.models.checkpoint.read_card`'s."""
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
                graphs={str(kind): dict(entry) for kind, entry in dict(data.get("graphs", {})).items()},
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
        return  # no detector (the weights file must then hold none either: engine.models.checkpoint checks that)
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
    for kind, entry in card.graphs.items():
        if kind not in GRAPH_KINDS:
            raise _refuse(where, "graphs", f"may hold only {', '.join(GRAPH_KINDS)}", kind)
        file = entry.get("file")
        if not isinstance(file, str) or not file.endswith(".onnx") or Path(file).name != file or "\\" in file \
                or file.startswith("."):
            raise _refuse(where, f"graphs.{kind}.file", "must be the name of an .onnx file beside the card", file)
        for key in ("sha256", "graph_key"):
            digest = entry.get(key)
            if not _is_sha256(digest):
                raise _refuse(where, f"graphs.{kind}.{key}", "must be 64 lower-case hexadecimal digits", digest)
    if "int8" in card.graphs:
        _check_int8(card, where)


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _check_int8(card: ModelCard, where: str) -> None:
    """An INT8 graph names the fp32 graph it was quantised from and the bands of its fp32 check."""
    entry = card.graphs["int8"]
    if "fp32" not in card.graphs:
        raise _refuse(where, "graphs.int8", "needs the fp32 graph it was quantised from (graphs.fp32)", "no fp32")
    if not _is_sha256(entry.get("quantized_from")):
        raise _refuse(where, "graphs.int8.quantized_from", "must be 64 lower-case hexadecimal digits",
                      entry.get("quantized_from"))
    check = entry.get("fp32_check")
    if not isinstance(check, Mapping) or set(check) != set(FP32_CHECK_BOUNDS):
        raise _refuse(where, "graphs.int8.fp32_check", f"must hold exactly {', '.join(FP32_CHECK_BOUNDS)}", check)
    for key, largest in FP32_CHECK_BOUNDS.items():
        if not 0.0 <= _number(check[key], f"graphs.int8.fp32_check.{key}", where) <= largest:
            raise _refuse(where, f"graphs.int8.fp32_check.{key}", f"must be between 0 and {largest}", check[key])


def feature_layers_of(section: Mapping[str, Any] | None, default: str) -> tuple[str, ...]:
    """The layers whose pooled features the network must output for a card's ``ood`` section."""
    if section and section.get("method") == OOD_METHOD:
        return tuple(section["feature_layers"])
    return (str((section or {}).get("feature_layer") or default),)
