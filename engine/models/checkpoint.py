"""Model files: ``NAME.safetensors`` (weights, never a pickle) + ``NAME.json`` (the model card).

The card carries everything needed to use the weights the way they were trained: architecture,
classes, the full :class:`PreprocessConfig`, normalisation, calibration temperature, review
threshold, out-of-distribution detector settings, training recipe, data fingerprint, metrics,
library versions and the sha256 of the weights file, which is verified on every load.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine import CLASS_DISPLAY_NAMES, CLASS_IDS, __version__
from engine.core.errors import ModelError, ModelIntegrityError
from engine.core.fsutil import atomic_write_bytes
from engine.imaging.preprocess import PreprocessConfig

CARD_SCHEMA_VERSION = 1
#: The shipped models live here, next to the code (read-only at run time).
SHIPPED_MODELS_DIR = Path(__file__).resolve().parents[2] / "resources" / "models"
DEFAULT_MODEL_ID = "resnet18"


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
        where = f"{path}: " if path else ""
        try:
            schema = int(data["schema_version"])
            if schema > CARD_SCHEMA_VERSION:
                raise ModelError(f"{where}model card schema {schema} is newer than this ALLSight "
                                 f"understands ({CARD_SCHEMA_VERSION}); update ALLSight.")
            classes = tuple(c["id"] for c in data["classes"])
            return cls(
                id=str(data["id"]),
                version=str(data["version"]),
                architecture=str(data["architecture"]),
                mode=str(data.get("mode", "finetune")),
                preprocess=PreprocessConfig.from_dict(data["preprocess"]),
                classes=classes,
                class_display_names={c["id"]: c.get("display_name", c["id"]) for c in data["classes"]},
                temperature=float(data.get("calibration", {}).get("temperature", 1.0)),
                review_threshold=float(data.get("review_threshold", 0.0)),
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
        except ModelError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{where}model card is incomplete or malformed ({type(exc).__name__}: {exc})") from None

    @property
    def weights_path(self) -> Path:
        if self.path is None:
            raise ModelError(f"model card {self.id} has no location")
        return self.path.parent / self.weights_file


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
    """Write ``name.safetensors`` and ``name.json`` atomically; returns the card as written."""
    import torch
    from safetensors.torch import save

    name = name or card.id
    out_dir = Path(out_dir)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    if card.weights_dtype == "float16":
        tensors = {k: v.half() if v.is_floating_point() and not k.startswith("ood.") else v for k, v in tensors.items()}
    # One metadata key only: safetensors writes its metadata map in no fixed order, and the
    # file hash must be reproducible for a deterministic training run.
    blob = save(tensors, metadata={"format": "pt"})
    weights = out_dir / f"{name}.safetensors"
    atomic_write_bytes(weights, blob)
    from dataclasses import replace

    card = replace(
        card,
        weights_file=weights.name,
        weights_sha256=hashlib.sha256(blob).hexdigest(),
        created=card.created or datetime.now(UTC).isoformat(timespec="seconds"),
        libraries=card.libraries or library_versions(),
        path=out_dir / f"{name}.json",
    )
    atomic_write_bytes(out_dir / f"{name}.json", (json.dumps(card.to_json_dict(), indent=2) + "\n").encode())
    del torch
    return card


def read_card(path: str | Path) -> ModelCard:
    path = Path(path)
    if path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    if not path.is_file():
        raise ModelError(f"{path}: model card not found (every .safetensors needs its .json card beside it)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: model card cannot be read ({exc})") from None
    return ModelCard.from_json_dict(data, path)


def resolve_model_card(model: str | Path | None) -> ModelCard:
    """A registered/shipped model id (``resnet18``, ``baseline``) or a path to a model file."""
    model = str(model or DEFAULT_MODEL_ID)
    if model.endswith((".safetensors", ".json")) or os.sep in model or "/" in model:
        return read_card(model)
    card_path = SHIPPED_MODELS_DIR / f"{model}.json"
    if not card_path.is_file():
        shipped = sorted(p.stem for p in SHIPPED_MODELS_DIR.glob("*.json"))
        raise ModelError(f"no model {model!r}; shipped models: {', '.join(shipped) or 'none'} "
                         f"(or give a path to a .safetensors file)")
    return read_card(card_path)


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


def load_model(model: str | Path | ModelCard | None = None) -> LoadedModel:
    from engine.models.registry import build_model

    card = model if isinstance(model, ModelCard) else resolve_model_card(model)
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
