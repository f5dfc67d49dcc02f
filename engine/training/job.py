"""A retraining run as a job in its own process and folder: the retraining wizard starts it,
follows it, pauses, cancels and resumes it; ``main.py training-job RUN_DIR`` runs it.

The run folder (``<user data>/training/<run id>/``, :func:`runs_dir`) holds everything::

    spec.json      what to train (JobSpec): data, base model, settings — written by the wizard
    state.json     running | paused | done | failed | cancelled, the process id, the message
    events.jsonl   every progress record, one JSON object a line (the live plot; reread on resume)
    PAUSE, CANCEL  control files the wizard creates; checked between progress records
    <id>.resume.*  the last epoch's checkpoint (engine.training.train): a killed run resumes there
    <id>.json/.safetensors, compare.json   the candidate and its comparison with the base model

Nothing outside the folder changes: the active model, results and reviews are untouched until
the person promotes the candidate (:meth:`engine.models.library.ModelLibrary.activate`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.errors import AllSightError, Cancelled
from engine.core.fsutil import atomic_write_bytes
from engine.core.paths import user_dir

SPEC_FILE, STATE_FILE, EVENTS_FILE, COMPARE_FILE = "spec.json", "state.json", "events.jsonl", "compare.json"
PAUSE_FILE, CANCEL_FILE = "PAUSE", "CANCEL"
#: Seconds per training image and epoch when this machine has no measurement yet (ResNet18,
#: 128 px, distillation on, 2 CPU cores: benchmarks/adaptation.py, docs/results.md).
DEFAULT_SECONDS_PER_IMAGE = 0.17
SPEED_FILE = "speed.json"


def runs_dir() -> Path:
    return user_dir("data") / "training"


@dataclass(frozen=True)
class JobSpec:
    folders: tuple[str, ...] = ()
    store: str = ""
    #: The model fine-tuned: a card path (resolved when the wizard starts, so a resume uses the
    #: same one), or "scratch" / "imagenet" with ``arch`` and ``image_size``.
    init: str = ""
    arch: str = "resnet18"
    image_size: int = 128
    replay_dir: str = ""
    epochs: int = 10
    #: An augmentation preset, or "" for a fine-tune's default (lab_training.fine_tune_augment).
    augment: str = ""
    #: Distillation weight; None: the default guard (lab_training.default_distill).
    distill: float | None = None
    lr: float = 5e-4
    batch_size: int = 32
    skip_unreadable: bool = False
    seed: int = 0
    model_id: str = "resnet18-lab"
    version: str = "1.0.0"
    started_by: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(run_dir / SPEC_FILE, (json.dumps(dataclasses.asdict(self), indent=2) + "\n").encode())

    @classmethod
    def read(cls, run_dir: Path) -> JobSpec:
        data = json.loads((run_dir / SPEC_FILE).read_text(encoding="utf-8"))
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["folders"] = tuple(data.get("folders", ()))
        return cls(**data)


def read_state(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_state(run_dir: Path, state: str, **fields: Any) -> None:
    data = {**read_state(run_dir), "state": state, "updated": time.time(), **fields}
    atomic_write_bytes(run_dir / STATE_FILE, (json.dumps(data, indent=2) + "\n").encode())


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """Every event so far (a torn last line, from a kill mid-write, is skipped)."""
    try:
        lines = (run_dir / EVENTS_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def process_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    return True


def interrupted(run_dir: Path) -> bool:
    """A run that was running or paused when its process died (app closed, crash, power): it
    resumes from its last checkpoint."""
    state = read_state(run_dir)
    return state.get("state") in ("running", "paused", "starting") and not process_alive(state.get("pid"))


def seconds_per_image(arch: str, image_size: int) -> float:
    try:
        speeds = json.loads((runs_dir() / SPEED_FILE).read_text(encoding="utf-8"))
        return float(speeds[f"{arch}@{image_size}"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_SECONDS_PER_IMAGE * (image_size / 128) ** 2 if arch == "resnet18" else \
            DEFAULT_SECONDS_PER_IMAGE / 10


def estimate_seconds(spec: JobSpec, n_lab: int, n_replay: int, replay_ratio: float = 2.0) -> float:
    """The run's time on this machine: images per epoch × epochs × this machine's last measured
    seconds per image (a default until one run has finished an epoch here)."""
    from engine.training.forgetting import replayed_per_epoch

    per_epoch = n_lab + replayed_per_epoch(n_lab, n_replay, replay_ratio)
    return per_epoch * spec.epochs * seconds_per_image(spec.arch, spec.image_size) * 1.15  # + calibration, compare


def _record_speed(arch: str, image_size: int, value: float) -> None:
    path = runs_dir() / SPEED_FILE
    try:
        speeds = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        speeds[f"{arch}@{image_size}"] = round(value, 4)
        atomic_write_bytes(path, json.dumps(speeds, indent=2).encode())
    except (OSError, ValueError):
        pass  # only an estimate


class _Events:
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.file = (run_dir / EVENTS_FILE).open("a", encoding="utf-8")

    def emit(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, default=str)
        self.file.write(line + "\n")
        self.file.flush()
        print(line, flush=True)


def lower_priority() -> None:
    """The job's process yields to the person's desktop and the wizard's event loop (nice 10:
    docs/performance.md, "While the retraining wizard trains"). For the job's own process only:
    it lasts for the process's life."""
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(10)


def run_job(run_dir: str | Path) -> int:
    """Run (or resume) the job in ``run_dir``: 0 done, 2 failed, 130 cancelled."""
    from engine.core.progress import CancelToken

    run_dir = Path(run_dir)
    spec = JobSpec.read(run_dir)
    write_state(run_dir, "running", pid=os.getpid(), message="")
    events = _Events(run_dir)
    token = CancelToken()
    try:
        result = _train_and_compare(spec, run_dir, events, token)
    except Cancelled:
        write_state(run_dir, "cancelled", message="cancelled; nothing was changed")
        events.emit({"event": "cancelled"})
        return 130
    except AllSightError as exc:
        write_state(run_dir, "failed", message=str(exc))
        events.emit({"event": "failed", "message": str(exc)})
        return 2
    except OSError as exc:
        why = ("the disk is full" if exc.errno == errno.ENOSPC else str(exc))
        message = f"training stopped: {why}; the active model, results and reviews are unchanged"
        write_state(run_dir, "failed", message=message)
        events.emit({"event": "failed", "message": message})
        return 2
    write_state(run_dir, "done", message="", **result)
    events.emit({"event": "done", **result})
    return 0


def _wait_while_paused(run_dir: Path, token) -> None:
    if not (run_dir / PAUSE_FILE).exists():
        return
    write_state(run_dir, "paused")
    while (run_dir / PAUSE_FILE).exists() and not (run_dir / CANCEL_FILE).exists():
        time.sleep(0.2)
    write_state(run_dir, "running")


def _train_and_compare(spec: JobSpec, run_dir: Path, events: _Events, token) -> dict[str, Any]:
    from engine.imaging.augment import AugmentConfig
    from engine.models.checkpoint import read_card
    from engine.models.resolve import load_model
    from engine.store.results import ResultStore
    from engine.training.compare import compare_models
    from engine.training.forgetting import replayed_per_epoch
    from engine.training.lab_training import default_distill, fine_tune_augment, lab_training_data
    from engine.training.train import TrainConfig, train

    fine_tune = spec.init not in ("scratch", "imagenet")
    base = read_card(spec.init) if fine_tune else None
    store = ResultStore.open(spec.store) if spec.store else None
    try:
        data = lab_training_data(folders=spec.folders, store=store, replay_dir=spec.replay_dir or None,
                                 base_card=base, seed=spec.seed, skip_unreadable=spec.skip_unreadable)
    finally:
        if store is not None:
            store.close()
    arch = base.architecture if base else spec.arch
    size = base.image_size if base else spec.image_size
    cfg = TrainConfig(
        data_dir=",".join(spec.folders) or spec.store, arch=arch, init=str(base.weights_path) if base else spec.init,
        epochs=spec.epochs, image_size=size, batch_size=spec.batch_size, lr=spec.lr, patience=spec.epochs,
        model_input=base.preprocess.model_input if base else "enhanced",
        white_balance=base.preprocess.white_balance if base else False,
        augment=AugmentConfig.preset(spec.augment) if spec.augment else fine_tune_augment(base),
        out_dir=str(run_dir), model_id=spec.model_id, model_version=spec.version,
        distill=(default_distill(bool(spec.replay_dir)) if spec.distill is None else spec.distill) if fine_tune else 0.0,
        skip_broken=spec.skip_unreadable, workers=1)
    events.emit({"event": "data", "train": len(data.train), "val": len(data.val),
                 "replay": len(data.replay_train), "reference": len(data.reference)})
    last = None
    epoch_started = time.time()
    for p in train(cfg, resume=True, cancel=token, data=data):
        if (run_dir / CANCEL_FILE).exists():
            token.cancel()
        _wait_while_paused(run_dir, token)
        last = p
        if p.phase == "train" and p.step % max(1, p.total // 200) and p.step != p.total:
            continue  # about 200 points are enough for the plot and the ETA
        events.emit({"event": "progress", "phase": p.phase, "step": p.step, "total": p.total,
                     "metrics": dict(p.metrics)})
        if p.phase == "validate":
            per_epoch = len(data.train) + replayed_per_epoch(len(data.train), len(data.replay_train), cfg.replay_ratio)
            _record_speed(arch, size, (time.time() - epoch_started) / max(per_epoch, 1))
            epoch_started = time.time()
    assert last is not None and last.phase == "done"
    model_path = last.metrics["model_path"]
    events.emit({"event": "progress", "phase": "compare", "step": 0, "total": 1, "metrics": {}})
    current = load_model(base if base is not None else None)  # a model from scratch: against the active one
    report = compare_models(load_model(model_path), current, {"lab_validation": data.val, "reference": data.reference})
    atomic_write_bytes(run_dir / COMPARE_FILE, (json.dumps(report, indent=2) + "\n").encode())
    return {"model_path": model_path}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    lower_priority()
    return run_job(args[0])


__all__ = ["JobSpec", "estimate_seconds", "interrupted", "lower_priority", "read_events", "read_state", "run_job",
           "runs_dir"]
