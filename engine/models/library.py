"""The model library: every model installed (shipped and the lab's own), which one is active, and
the acts that change that — install (a trained model or an import), activate (promote or roll
back, with who, when and why), export, delete. The Model manager (``Tools ▸ Models…``) and
``main.py models`` are its two front ends.

The layout on disk is :mod:`engine.models.installed`'s. Every model is verified when it is
installed (its card validated and bound to its weights, the weights' sha256 checked, the network
built) and again when it is activated or exported, so a file damaged or swapped on the way is
refused with its path and the reason, and nothing installed or active changes.

The result database's audit trail records activations too (the front ends call
:meth:`engine.store.results.ResultStore.record_event` with :meth:`Activation.audit_details`);
``active.json`` keeps the library's own history so the manager can say who promoted what even
without a database.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from engine.core.errors import ModelError
from engine.core.fsutil import atomic_write_bytes
from engine.core.optional import require_torch, torch_available
from engine.models import installed
from engine.models.card import ModelCard
from engine.models.checkpoint import read_card, read_verified_weights
from engine.models.graphs import graph_files, read_graph
from engine.models.installed import ACTIVE_FILE, ACTIVE_FORMAT, INSTALL_FILE
from engine.models.resolve import DEFAULT_MODEL_ID, SHIPPED_MODELS_DIR, active_card_path


class ModelSource(StrEnum):
    SHIPPED = "shipped"  # resources/models: read-only, updated with the application
    LAB = "lab"  # trained or imported here: the user data folder


@dataclass(frozen=True)
class InstalledModel:
    card: ModelCard
    source: ModelSource
    #: When, by whom and how it came into the library ("" for shipped models).
    installed_at: str = ""
    installed_by: str = ""
    origin: str = ""

    @property
    def sha256(self) -> str:
        return self.card.weights_sha256

    @property
    def ref(self) -> str:
        """``id@version``: what ``models activate`` and ``--model`` accept."""
        return f"{self.card.id}@{self.card.version}"

    @property
    def test_figure(self) -> tuple[str, float] | None:
        """``(split, accuracy)`` of the card's own test figure (``None`` when it has none): what
        the model manager and ``models list`` show."""
        for key in ("test_random", "test_block", "test"):
            m = self.card.metrics.get(key)
            if isinstance(m, dict) and "accuracy" in m:
                return key.removeprefix("test_") or "test", float(m["accuracy"])
        return None

    @property
    def folder(self) -> Path:
        assert self.card.path is not None
        return self.card.path.parent


@dataclass(frozen=True)
class Activation:
    model: str  # id@version
    sha256: str
    source: ModelSource
    at: str
    by: str
    reason: str
    previous_model: str = ""
    previous_sha256: str = ""
    #: The lab model's card, relative to the library folder ("" for shipped models).
    card: str = ""

    def audit_details(self) -> dict[str, Any]:
        """What the audit trail's ``model_changed`` entry records."""
        return {"model": self.model, "sha256": self.sha256, "source": str(self.source), "reason": self.reason,
                "previous_model": self.previous_model, "previous_sha256": self.previous_sha256}


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


def verify(card_or_path: ModelCard | str | Path, *, network: bool = True) -> ModelCard:
    """The card, checked as a load would: card valid and bound to its weights, the weights'
    sha256 right, the ONNX graphs it lists (if any) intact and, with ``network``, the network
    built from them: in torch where it is installed, else in ONNX Runtime from the graph (a lean
    install cannot check, or run, a model without one: :class:`MissingExtraError`). Without
    ``network`` neither is loaded (the desktop app's process never imports torch; its model
    process loads the network right after an activation)."""
    card = card_or_path if isinstance(card_or_path, ModelCard) else read_card(card_or_path)
    read_verified_weights(card)
    graph = read_graph(card)
    for kind in card.graphs:  # an INT8 graph too: a damaged one is refused here, not at first use
        if kind != "fp32":
            read_graph(card, kind)
    if network:
        if torch_available():
            from engine.models.resolve import load_model

            load_model(card)
        elif graph is None:
            require_torch(f"{card.id} {card.version} comes without an ONNX graph for this version of ALLSight; "
                          "checking or running it")
        else:
            import onnxruntime as ort

            try:
                ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
            except Exception as exc:  # ONNX Runtime's own exception types
                raise ModelError(f"{card.id} {card.version}: ONNX Runtime cannot load its graph "
                                 f"({type(exc).__name__}: {exc})") from None
    return card


class ModelLibrary:
    def __init__(self, root: Path | None = None, *, verify_network: bool = True):
        self.root = root or installed.library_dir()
        self.verify_network = verify_network

    def _verify(self, card_or_path: ModelCard | str | Path) -> ModelCard:
        return verify(card_or_path, network=self.verify_network)

    # ------------------------------------------------------------------ what is there
    def models(self) -> list[InstalledModel]:
        """The shipped models, then the lab's, oldest first. Unreadable lab folders are left out
        (:meth:`problems` names them)."""
        out = [InstalledModel(read_card(p), ModelSource.SHIPPED) for p in sorted(SHIPPED_MODELS_DIR.glob("*.json"))]
        for card_path, _ in installed.lab_cards(self.root):
            try:
                card = read_card(card_path)
            except ModelError:
                continue
            meta = self._install_record(card_path.parent)
            out.append(InstalledModel(card, ModelSource.LAB, meta.get("at", ""), meta.get("by", ""),
                                      meta.get("origin", "")))
        return out

    def problems(self) -> list[str]:
        """Lab model folders that cannot be used, each with the reason."""
        found = []
        for card_path, _ in installed.lab_cards(self.root):
            try:
                read_card(card_path)
            except ModelError as exc:
                found.append(str(exc))
        return found

    def find(self, ref: str) -> InstalledModel:
        """The model ``ref`` names (``id``, ``id@version``, a sha256 prefix); a shipped id wins."""
        models = self.models()
        hits = [m for m in models if installed.matches(m.card.to_json_dict(), ref)]
        shipped = [m for m in hits if m.source is ModelSource.SHIPPED]
        if shipped:
            return shipped[0]
        if len({m.sha256 for m in hits}) > 1 and "@" not in ref and installed.SHA_PREFIX.match(ref.lower()):
            raise ModelError(f"{ref!r} names {len(hits)} models: give more of the sha256")
        if not hits:
            known = ", ".join(m.ref for m in models) or "none"
            raise ModelError(f"no installed model {ref!r}; installed: {known}")
        return sorted(hits, key=lambda m: (m.card.created, m.installed_at))[-1]

    def active(self) -> InstalledModel:
        """The model that classifies by default (:func:`active_card_path`)."""
        card = read_card(active_card_path(self.root))
        return next((m for m in self.models() if m.sha256 == card.weights_sha256),
                    InstalledModel(card, ModelSource.SHIPPED))

    def history(self) -> list[Activation]:
        """Every activation, oldest first."""
        return [Activation(**{**e, "source": ModelSource(e["source"])}) for e in self._active_file().get("history", [])]

    def promoted_by(self, sha256: str) -> Activation | None:
        """The latest activation of the model ``sha256``."""
        return self.latest_activations().get(sha256)

    def latest_activations(self) -> dict[str, Activation]:
        """Each activated model's latest activation, by sha256 (one read of the history)."""
        return {a.sha256: a for a in self.history()}  # oldest first: the latest wins

    # ------------------------------------------------------------------ acts
    def install(self, path: str | Path, *, by: str, origin: str) -> InstalledModel:
        """Copy the model at ``path`` (its ``.safetensors`` or card; the other beside it) into
        the library, verified before and after the copy. Installing a model that is already
        there returns it unchanged."""
        card = self._verify(path)
        for existing in self.models():
            if existing.sha256 == card.weights_sha256:
                return existing
        name = f"{card.id}-{card.version}-{card.weights_sha256[:12]}"
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.root))
        try:
            stem = Path(card.weights_file).stem or card.id
            shutil.copyfile(card.weights_path, staging / f"{stem}.safetensors")
            assert card.path is not None
            shutil.copyfile(card.path, staging / f"{stem}.json")
            for graph in graph_files(card):
                shutil.copyfile(graph, staging / graph.name)
            record = {"at": _now(), "by": by, "origin": origin, "format": 1}
            (staging / INSTALL_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            self._verify(staging / f"{stem}.json")
            staging.rename(self.root / name)  # the model appears whole or not at all
        except OSError as exc:
            raise ModelError(f"could not install {card.id} {card.version} into {self.root}: {exc}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.find(card.weights_sha256)

    def activate(self, ref: str, *, by: str, reason: str,
                 record: Callable[[Activation], None] | None = None) -> Activation:
        """Make ``ref`` the active model (a promotion, or a rollback to an earlier one); the
        model is verified first. ``reason`` is required: it goes into the history and the
        audit trail. ``record`` (the front end's audit entry) is called after the checks and
        before the switch: when it refuses (raises), the active model stays as it was."""
        if not reason.strip():
            raise ModelError("say why the model is changed (the reason is kept in the audit trail)")
        model = self.find(ref)
        self._verify(model.card)
        try:
            previous: InstalledModel | None = self.active()
        except ModelError:
            previous = None  # the active model is gone or damaged: activating another is the repair
        card = ""
        if model.source is ModelSource.LAB:
            assert model.card.path is not None
            card = model.card.path.relative_to(self.root).as_posix()
        activation = Activation(model.ref, model.sha256, model.source, _now(), by, reason.strip(),
                                previous.ref if previous else "", previous.sha256 if previous else "", card)
        if record is not None:
            record(activation)
        data = self._active_file()
        entry = {**asdict(activation), "source": str(activation.source)}
        data.update(format=ACTIVE_FORMAT, active=entry, history=[*data.get("history", []), entry])
        atomic_write_bytes(self.root / ACTIVE_FILE, (json.dumps(data, indent=2) + "\n").encode())
        return activation

    def export(self, ref: str, destination: str | Path) -> Path:
        """Copy the model (weights + card) into the folder ``destination``, verified after the
        copy; returns the copied ``.safetensors``. Never writes over an existing file."""
        model = self.find(ref)
        self._verify(model.card)
        dest = Path(destination)
        assert model.card.path is not None
        sources = (model.card.weights_path, model.card.path, *graph_files(model.card))
        targets = tuple(dest / source.name for source in sources)
        taken = [str(t) for t in targets if t.exists()]
        if taken:
            raise ModelError(f"not exported: {', '.join(taken)} already exist(s); choose another folder")
        try:
            dest.mkdir(parents=True, exist_ok=True)
            for source, target in zip(sources, targets, strict=True):
                shutil.copyfile(source, target)
        except OSError as exc:
            raise ModelError(f"could not export {model.ref} to {dest}: {exc}") from None
        self._verify(targets[1])
        return targets[0]

    def delete(self, ref: str) -> InstalledModel:
        """Remove a lab model; shipped models and the active model are refused."""
        model = self.find(ref)
        if model.source is ModelSource.SHIPPED:
            raise ModelError(f"{model.ref} is shipped with ALLSight and cannot be deleted")
        try:
            active_sha = self.active().sha256
        except ModelError:
            active_sha = ""  # the active model is damaged or gone: deleting others is still fine
        if model.sha256 == active_sha:
            raise ModelError(f"{model.ref} is the active model: activate another one before deleting it")
        shutil.rmtree(model.folder)
        return model

    # ------------------------------------------------------------------ files
    def _active_file(self) -> dict[str, Any]:
        installed.read_active(self.root)  # refuses a damaged file with the one message
        path = self.root / ACTIVE_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    @staticmethod
    def _install_record(folder: Path) -> dict[str, Any]:
        try:
            data = json.loads((folder / INSTALL_FILE).read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, UnicodeDecodeError, ValueError):
            return {}


__all__ = ["DEFAULT_MODEL_ID", "Activation", "InstalledModel", "ModelLibrary", "ModelSource", "verify"]
