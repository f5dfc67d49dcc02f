"""Training as an engine generator: ``for progress in train(config): ...``.

Deterministic for a seed: every epoch derives its own RNGs from (seed, epoch), so a run resumed
from its per-epoch checkpoint continues exactly as an uninterrupted one would. Per epoch the
resume state (weights, optimiser, best-so-far) is written as safetensors + JSON (no pickles).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine import CLASS_IDS, __version__
from engine.core.errors import ConfigError, DataLayoutError
from engine.core.fsutil import atomic_write_bytes
from engine.core.progress import CancelToken, Progress
from engine.imaging.augment import AugmentConfig, augment
from engine.imaging.background_swap import BackgroundBank
from engine.imaging.preprocess import ModelInput, PreprocessConfig, model_input_only, to_chw_float
from engine.inference.onnx_export import with_graph
from engine.inference.predict import preprocess_batch, run_network
from engine.models.card import ModelCard
from engine.models.checkpoint import save_model
from engine.models.registry import build_model
from engine.models.resolve import load_model
from engine.training import forgetting
from engine.training.calibrate import finish
from engine.training.data import Dataset, LoadFailure, Sample, discover_dataset, load_resized, split_dataset
from engine.training.int8 import with_int8_graph
from engine.training.lab_training import TrainingData

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    data_dir: str
    arch: str = "resnet18"
    init: str = "scratch"  # "imagenet" | "scratch" | path to an ALLSight .safetensors
    mode: str = "finetune"  # "finetune" | "frozen"
    epochs: int = 30
    image_size: int = 128
    batch_size: int = 64
    split: str = "random"
    seed: int = 0
    out_dir: str = "runs/model"
    model_id: str = ""
    model_version: str = "1.0.0"
    lr: float = 2e-3
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    patience: int = 8
    model_input: ModelInput = "masked"
    #: Per-field white balance on the background before contrast enhancement (PreprocessConfig).
    white_balance: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    skip_broken: bool = False
    workers: int = 2
    fp16_weights: bool = True
    review_precision: float = 0.995
    ood_quantile: float = 0.975
    #: Re-estimate batch-norm statistics on this many clean (unaugmented) training images before
    #: each validation: the running statistics otherwise describe augmented images.
    precise_bn_images: int = 512
    #: Forgetting guards of a fine-tune (engine.training.forgetting): development-set images
    #: replayed per lab image and epoch (when there is a replay set), and the weight of the
    #: distillation from the starting model (0: off; only with ``init`` an ALLSight model).
    replay_ratio: float = 2.0  # measured: 1 lost 1.3 points of the original lab at N = 100, 2 gained 2.6
    distill: float = 0.0
    distill_temperature: float = 2.0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError("--epochs must be at least 1")
        if self.batch_size < 2:
            raise ConfigError("--batch-size must be at least 2")
        if self.split not in ("random", "block"):
            raise ConfigError("--split must be 'random' or 'block'")
        if self.distill < 0 or self.replay_ratio < 0:
            raise ConfigError("--distill and --replay-ratio cannot be negative")

    @property
    def resolved_id(self) -> str:
        return self.model_id or f"{self.arch}-{self.split}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------- resume state
def _resume_paths(out_dir: Path, model_id: str) -> tuple[Path, Path]:
    return out_dir / f"{model_id}.resume.safetensors", out_dir / f"{model_id}.resume.json"


def _save_resume(out_dir: Path, cfg: TrainConfig, net: nn.Module, opt: torch.optim.Optimizer,
                 best_state: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    from safetensors.torch import save

    tensors = {f"net.{k}": v.detach().clone() for k, v in net.state_dict().items()}
    tensors.update({f"best.{k}": v for k, v in best_state.items()})
    opt_state = opt.state_dict()
    for idx, pstate in opt_state["state"].items():
        for key, value in pstate.items():
            tensors[f"opt.{idx}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    tensor_path, json_path = _resume_paths(out_dir, cfg.resolved_id)
    atomic_write_bytes(tensor_path, save({k: v.contiguous() for k, v in tensors.items()}))
    meta = {"config": cfg.to_dict(), "param_groups": opt_state["param_groups"], **state}
    atomic_write_bytes(json_path, json.dumps(meta, indent=1).encode())


def _load_resume(out_dir: Path, cfg: TrainConfig, net: nn.Module, opt: torch.optim.Optimizer):
    from safetensors.torch import load_file

    tensor_path, json_path = _resume_paths(out_dir, cfg.resolved_id)
    if not (tensor_path.is_file() and json_path.is_file()):
        return None
    meta = json.loads(json_path.read_text())
    saved = dict(meta["config"])
    mismatched = [k for k in ("arch", "image_size", "split", "seed", "model_input", "mode", "batch_size",
                              "white_balance")
                  if saved.get(k) != getattr(cfg, k)]
    if mismatched:
        raise ConfigError(f"cannot resume {json_path}: it was started with different "
                          f"{', '.join(mismatched)}; use a new --out folder or the same settings")
    tensors = load_file(tensor_path)
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    opt_state: dict[str, Any] = {"state": {}, "param_groups": meta["param_groups"]}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            opt_state["state"].setdefault(int(idx), {})[name] = value
    opt.load_state_dict(opt_state)
    return meta, best


# ------------------------------------------------------------------------------------ train
def _lr_at(step: int, total: int, warmup: int, base: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def recompute_batchnorm(net: nn.Module, images: np.ndarray, pp: PreprocessConfig, batch_size: int) -> None:
    """"Precise BN": replace running statistics by exact averages over clean training images."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or len(images) == 0:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = exact mean over the batches
    net.train()
    for start in range(0, len(images), batch_size):
        net(torch.from_numpy(preprocess_batch(images[start:start + batch_size], pp)))
    for m, momentum in zip(norms, saved, strict=False):
        m.momentum = momentum
    net.eval()


def _labels(samples) -> np.ndarray:
    return np.array([s.label for s in samples], np.int64)


def _load_split_images(splits, cfg: TrainConfig, cancel):
    """Decode every image once; broken files stop the run unless ``skip_broken``."""
    names = tuple(splits)
    everything = [s for name in names for s in splits[name]]
    result: tuple[np.ndarray, list[LoadFailure]] | None = None
    for item in load_resized(everything, cfg.image_size, "center", workers=cfg.workers, cancel=cancel):
        if isinstance(item, Progress):
            yield item
        else:
            result = item
    assert result is not None  # load_resized always yields (array, failures) last
    array, failures = result
    if failures and not cfg.skip_broken:
        listing = "\n".join(f"  {f.path}: {f.reason}" for f in failures[:50])
        more = f"\n  ... and {len(failures) - 50} more" if len(failures) > 50 else ""
        raise DataLayoutError(f"{len(failures)} image(s) cannot be read; fix or remove them, or pass "
                              f"--skip-broken to train without them:\n{listing}{more}")
    bad = {f.path for f in failures}
    images: dict[str, tuple[np.ndarray, np.ndarray, list[Sample]]] = {}
    offset = 0
    for name in names:
        part = splits[name]
        keep = [i for i, s in enumerate(part) if s.path not in bad]
        idx = np.array([offset + i for i in keep], np.int64)
        kept = [part[i] for i in keep]
        images[name] = (array[idx] if len(idx) else array[:0], _labels(kept), kept)
        offset += len(part)
    yield Progress(1, 1, "loading images", {"skipped_broken": len(failures)})
    return images


def train(cfg: TrainConfig, *, resume: bool = False, cancel: CancelToken | None = None,
          data: TrainingData | None = None) -> Iterator[Progress]:
    """Train, calibrate, fit the review threshold and OOD detector, evaluate, and save the model.

    Without ``data`` the images are ``cfg.data_dir``'s class folders, split by ``cfg.split``.
    With ``data`` (a lab's fine-tune, :func:`engine.training.lab_training.lab_training_data`)
    they are its parts: its validation images are also the test split of the card's figures
    (the compare step measures the candidate again), and its replay images are mixed into each
    epoch (``cfg.replay_ratio``). Yields progress records; the last one (phase "done") has
    ``metrics["model_path"]``.
    """
    started = time.time()
    out_dir = Path(cfg.out_dir)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if data is None:
        dataset = discover_dataset(cfg.data_dir, CLASS_IDS)
        splits: dict[str, tuple[Sample, ...]] = dict(split_dataset(dataset, cfg.split, cfg.seed))
    else:
        splits = {"train": data.train, "val": data.val + data.replay_val, "replay": data.replay_train}
    for name in ("train", "val"):
        present = set(_labels(splits[name]).tolist())
        if len(present) < 2:
            raise DataLayoutError(f"the {name} split has fewer than two classes; add more images per class")
    try:  # only once the data is known to be usable: a refused run leaves no empty folder behind
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output folder {out_dir}: {exc.strerror}") from None
    images = yield from _load_split_images(splits, cfg, cancel)
    if data is not None:  # the test split is the lab's part of validation: decoded once, taken from it
        val_array, val_labels, val_kept = images["val"]
        lab_val = set(data.val)
        lab = [i for i, s in enumerate(val_kept) if s in lab_val]
        images["test"] = (val_array[lab], val_labels[lab], [val_kept[i] for i in lab])
    n_lab = len(images["train"][0])
    if "replay" in images:  # one array: lab images first, then the replay images
        images["train"] = tuple(np.concatenate([images["train"][k], images["replay"][k]]) if k < 2
                                else images["train"][k] + images["replay"][k] for k in range(3))
    train_imgs, train_y, _ = images["train"]
    val_imgs, val_y, _ = images["val"]
    test_imgs, test_y, test_samples = images["test"]
    pp = PreprocessConfig(image_size=cfg.image_size, model_input=cfg.model_input,
                          white_balance=cfg.white_balance)
    bank = None
    if cfg.augment.p_background_swap > 0:
        yield Progress(0, 1, "paint out white cells (background swap)")
        bank = BackgroundBank(train_imgs)
    val_x = preprocess_batch(val_imgs, pp)

    torch.manual_seed(cfg.seed)
    if cfg.init in ("scratch", "imagenet"):
        net = build_model(cfg.arch, num_classes=len(CLASS_IDS), init=cfg.init, mode=cfg.mode, image_size=cfg.image_size)
    else:  # continue from an ALLSight model (the retraining wizard's path)
        base = load_model(cfg.init)
        if base.card.architecture != cfg.arch or base.card.image_size != cfg.image_size:
            raise ConfigError(f"--init model is {base.card.architecture} at {base.card.image_size} px; "
                              f"it cannot start a {cfg.arch} at {cfg.image_size} px")
        net = base.net
    teacher = forgetting.frozen_teacher(net) if cfg.distill > 0 and cfg.init not in ("scratch", "imagenet") else None
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.CrossEntropyLoss()

    n_replay = len(train_imgs) - n_lab
    epoch_size = n_lab + forgetting.replayed_per_epoch(n_lab, n_replay, cfg.replay_ratio)
    steps_per_epoch = math.ceil(epoch_size / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    start_epoch, best_acc, best_loss, best_epoch, stale = 0, -1.0, float("inf"), -1, 0
    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    history: list[dict[str, float]] = []
    if resume:
        loaded = _load_resume(out_dir, cfg, net, opt)
        if loaded:
            meta, best_state = loaded
            start_epoch = meta["epoch"] + 1
            best_acc, best_loss, best_epoch = meta["best_acc"], meta["best_loss"], meta["best_epoch"]
            stale, history = meta["stale"], meta["history"]
            yield Progress(start_epoch, cfg.epochs, "resumed", {"epoch": start_epoch})
    train_time = 0.0
    for epoch in range(start_epoch, cfg.epochs):
        if stale >= cfg.patience:
            break
        epoch_start = time.time()
        rng = np.random.default_rng([cfg.seed, epoch])
        torch.manual_seed(cfg.seed * 10_007 + epoch)
        net.train()
        if cfg.mode == "frozen":  # keep frozen batch-norm statistics fixed too
            for m in net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        order = forgetting.epoch_order(n_lab, n_replay, cfg.replay_ratio, rng)
        running, seen = 0.0, 0
        for b in range(steps_per_epoch):
            if cancel:
                cancel.raise_if_cancelled()
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            if len(idx) < 2:
                continue
            batch = np.stack([model_input_only(augment(train_imgs[i], rng, cfg.augment,
                                                       None if bank is None else (bank, int(i))), pp)[1]
                              for i in idx])
            x = torch.from_numpy(to_chw_float(batch, pp))
            y = torch.from_numpy(train_y[idx])
            step = epoch * steps_per_epoch + b
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, total_steps, warmup, cfg.lr)
            opt.zero_grad(set_to_none=True)
            logits = net(x)
            loss = loss_fn(logits, y)
            if teacher is not None:
                with torch.no_grad():
                    taught = teacher(x)
                loss = loss + cfg.distill * forgetting.distillation_loss(logits, taught, cfg.distill_temperature)
            loss.backward()
            opt.step()
            running += loss.item() * len(idx)
            seen += len(idx)
            elapsed = train_time + (time.time() - epoch_start)
            done = (epoch - start_epoch) * steps_per_epoch + b + 1
            remaining = (cfg.epochs - start_epoch) * steps_per_epoch - done
            yield Progress(step + 1, total_steps, "train", {
                "epoch": epoch + 1, "epochs": cfg.epochs, "loss": running / seen,
                "eta_s": elapsed / done * remaining,
            })
        if cfg.mode == "finetune" and cfg.precise_bn_images > 0:
            recompute_batchnorm(net, train_imgs[order[: cfg.precise_bn_images]], pp, cfg.batch_size)
        val_logits, _ = run_network(net, val_x, batch_size=128)
        val_loss = float(nn.functional.cross_entropy(torch.from_numpy(val_logits), torch.from_numpy(val_y)))
        val_acc = float((val_logits.argmax(1) == val_y).mean())
        train_time += time.time() - epoch_start
        history.append({"epoch": epoch + 1, "train_loss": running / max(seen, 1), "val_loss": val_loss,
                        "val_acc": val_acc, "seconds": time.time() - epoch_start})
        if val_acc > best_acc or (val_acc == best_acc and val_loss < best_loss):
            best_acc, best_loss, best_epoch, stale = val_acc, val_loss, epoch + 1, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
        _save_resume(out_dir, cfg, net, opt, best_state, {
            "epoch": epoch, "best_acc": best_acc, "best_loss": best_loss, "best_epoch": best_epoch,
            "stale": stale, "history": history,
        })
        yield Progress(epoch + 1, cfg.epochs, "validate", {
            "epoch": epoch + 1, "val_acc": val_acc, "val_loss": val_loss, "best_epoch": best_epoch,
        })

    # ------------------------------------------------------------------ finish the model
    yield Progress(0, 4, "calibrate")
    net.load_state_dict(best_state)
    net.eval()
    yield Progress(1, 4, "fit out-of-distribution detector")
    finished = finish(net, cfg.arch, pp, train_imgs=train_imgs, train_y=train_y, val_imgs=val_imgs, val_y=val_y,
                      test_imgs=test_imgs, test_y=test_y, review_precision=cfg.review_precision,
                      ood_quantile=cfg.ood_quantile)
    temperature, threshold, report = finished.temperature, finished.review_threshold, finished.report
    yield Progress(2, 4, "test")

    yield Progress(3, 4, "save")
    card = ModelCard(
        id=cfg.resolved_id,
        version=cfg.model_version,
        architecture=cfg.arch,
        mode=cfg.mode,
        preprocess=pp,
        temperature=temperature,
        review_threshold=threshold,
        ood=finished.ood_section,
        training={
            "recipe": {k: v for k, v in cfg.to_dict().items() if k not in ("data_dir", "out_dir")},
            "seed": cfg.seed, "best_epoch": best_epoch, "history": history,
            # every epoch's time, those of earlier sessions of a resumed run included
            "train_seconds": round(sum(h["seconds"] for h in history), 1),
            "total_seconds": round(time.time() - started, 1),
            "torch_threads": torch.get_num_threads(), "allsight_version": __version__,
        },
        data_fingerprint={
            "sha256": dataset.fingerprint(), "n_images": len(dataset.samples), "counts": dataset.counts(),
            "split": cfg.split, "split_sizes": {k: len(images[k][2]) for k in ("train", "val", "test")},
            "test_files_sha256": Dataset(dataset.root, dataset.classes, tuple(test_samples)).fingerprint(),
        } if data is None else dict(data.fingerprint),
        metrics={f"test_{cfg.split}": report, "val_accuracy_best": best_acc},
        weights_dtype="float16" if cfg.fp16_weights else "float32",
    )
    tensors = {f"net.{k}": v for k, v in net.state_dict().items()}
    tensors.update({k: torch.from_numpy(v) for k, v in finished.ood_tensors.items()})
    card = with_graph(save_model(tensors, card, out_dir, cfg.resolved_id), net)
    card = with_int8_graph(card, train_imgs, (val_imgs, val_y), (test_imgs, test_y), seed=cfg.seed)
    yield Progress(4, 4, "done", {
        "model_path": str(card.weights_path), "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
        "ece": report["ece"], "seconds": round(time.time() - started, 1), "best_epoch": best_epoch,
        "needs_review_fraction": report["needs_review_fraction"],
    })
