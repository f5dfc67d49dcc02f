"""CLI commands about models: train, refit and the wizard's training job (these need torch: the
``train`` extra), and evaluate (which runs as classify does)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from engine.core.errors import ConfigError
from engine.core.optional import require_torch

EXIT_OK, EXIT_FATAL = 0, 2


def _progress_bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, file=sys.stderr,
                disable=not sys.stderr.isatty())


def augment_config(args: argparse.Namespace):
    """The training augmentation the train command's options ask for (a preset, overridden by
    --background-swap)."""
    from engine.imaging.augment import AugmentConfig

    cfg = AugmentConfig.preset("none" if args.no_augment else args.augment or "standard")
    if args.background_swap is not None:
        if not 0.0 <= args.background_swap <= 1.0:
            raise ConfigError(f"--background-swap must be a probability from 0 to 1, got {args.background_swap}")
        cfg = dataclasses.replace(cfg, p_background_swap=args.background_swap)
    return cfg


def _is_model(init: str | None) -> bool:
    return init not in (None, "imagenet", "scratch")


def cmd_train(args: argparse.Namespace) -> int:
    require_torch("training")
    from engine.training.train import TrainConfig, train

    if not args.data_dir and not args.from_store:
        raise ConfigError("give DATA_DIR (class folders) and/or --from-store DB (the lab's reviewed images)")
    fine_tune = _is_model(args.init) or bool(args.from_store)
    data = None
    arch, image_size, model_input, white_balance, init = (args.arch, args.image_size, args.model_input,
                                                         args.white_balance, args.init or "imagenet")
    if fine_tune:  # a lab's fine-tune: the wizard's data selection, split and forgetting guards
        from engine.models.resolve import resolve_model_card
        from engine.training.lab_training import lab_training_data

        base = resolve_model_card(args.init if _is_model(args.init) else None)  # default: the active model
        init = str(base.weights_path)
        arch, image_size = base.architecture, base.image_size
        model_input, white_balance = base.preprocess.model_input, base.preprocess.white_balance
        store = None
        if args.from_store:
            from engine.store.results import ResultStore

            if not Path(args.from_store).is_file():
                raise ConfigError(f"{args.from_store}: no such result database")
            store = ResultStore.open(args.from_store)
        try:
            data = lab_training_data(folders=[args.data_dir] if args.data_dir else [], store=store,
                                     replay_dir=args.replay, base_card=base, val_fraction=args.val_fraction,
                                     seed=args.seed, skip_unreadable=args.skip_broken)
        finally:
            if store is not None:
                store.close()
        for source, per_class in data.fingerprint["sources"].items():
            print(f"{source}: " + ", ".join(f"{c} {n}" for c, n in per_class.items()), file=sys.stderr)
    augment = augment_config(args)
    distill = 0.0 if args.distill is None else args.distill
    if fine_tune:
        from engine.training.lab_training import default_distill, fine_tune_augment

        if args.augment is None and args.background_swap is None and not args.no_augment:
            augment = fine_tune_augment(base)  # standard, with the base model's background swap
        if args.distill is None:
            distill = default_distill(bool(args.replay))
    cfg = TrainConfig(
        data_dir=args.data_dir or str(args.from_store), arch=arch, init=init, mode=args.mode,
        epochs=args.epochs or (10 if fine_tune else 30), image_size=image_size, batch_size=args.batch_size,
        split=args.split, seed=args.seed, out_dir=args.out, model_id=args.id or "", model_version=args.model_version,
        lr=args.lr or (5e-4 if fine_tune else 2e-3), patience=args.patience, model_input=model_input,
        skip_broken=args.skip_broken, augment=augment, white_balance=white_balance,
        distill=distill, replay_ratio=args.replay_ratio,
    )
    if fine_tune and not args.id:
        cfg = dataclasses.replace(cfg, model_id=f"{arch}-lab")
    bar = None
    phase = None
    last = None
    for p in train(cfg, resume=args.resume, data=data):
        last = p
        if p.phase != phase:
            if bar is not None:
                bar.close()
            phase = p.phase
            bar = _progress_bar(p.total, p.phase)
        if bar is not None:
            bar.n = p.step
            if p.metrics:
                bar.set_postfix({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in p.metrics.items()
                                 if k in ("epoch", "loss", "val_acc")}, refresh=False)
            bar.refresh()
        if p.phase == "validate" or p.phase == "resumed":
            m = p.metrics
            print(f"epoch {m['epoch']}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                      for k, v in m.items() if k != "epoch"), file=sys.stderr)
    if bar is not None:
        bar.close()
    m = last.metrics
    _print_model(m["model_path"], m["accuracy"], f"macro-F1 {m['macro_f1']:.4f}  ECE {m['ece']:.4f}  ",
                 m["needs_review_fraction"], f"  ({m['seconds']:.0f} s, best epoch {m['best_epoch']})")
    return EXIT_OK


def _print_model(path: object, accuracy: float, middle: str, needs_review: float, tail: str = "") -> None:
    """The two lines train and refit end with: the model file, and its test figures."""
    print(f"model: {path}")
    print(f"test accuracy {accuracy * 100:.2f} %  {middle}needs review {needs_review * 100:.1f} %{tail}")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model on a class-folder dataset, or fine-tune one on a lab's images")
    p.add_argument("data_dir", metavar="DATA_DIR", nargs="?",
                   help="folder with Benign/ Early/ Pre/ Pro/ sub-folders (optional with --from-store)")
    p.add_argument("--arch", default="resnet18", help="registered architecture (baseline, resnet18, alexnet, vgg16)")
    p.add_argument("--init", metavar="imagenet|scratch|MODEL",
                   help="ImageNet weights (default), random init, or an ALLSight model to fine-tune (a lab's "
                        "fine-tune: its architecture, size and preprocessing; validation by sample/block; "
                        "distillation from it on by default)")
    p.add_argument("--from-store", metavar="DB", help="also train on the lab's reviewed images of signed-off "
                   "samples in this result database (fine-tunes the active model unless --init names one)")
    p.add_argument("--replay", metavar="DEV_DIR", help="fine-tune: mix the original development set's training "
                   "split into every epoch (never its test split)")
    p.add_argument("--replay-ratio", type=float, default=2.0, help="replayed images per lab image and epoch "
                   "(default 2)")
    p.add_argument("--distill", type=float, help="fine-tune: weight of distillation from the starting model "
                   "(default 1 without --replay, 0 with it: replay is then the guard; 0 turns it off)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="fine-tune: share of samples/blocks held out")
    p.add_argument("--mode", choices=["finetune", "frozen"], default="finetune",
                   help="train every layer, or only a new head on a frozen ImageNet backbone")
    p.add_argument("--epochs", type=int, help="default 30; a fine-tune 10")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--split", choices=["random", "block"], default="random")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, help="default 2e-3; a fine-tune 5e-4")
    p.add_argument("--patience", type=int, default=8, help="early stopping: epochs without validation gain")
    p.add_argument("--model-input", choices=["masked", "enhanced", "original"], default="masked")
    p.add_argument("--augment", choices=["standard", "microscope", "cell", "none"],
                   help="augmentation preset: standard (flips, 90-degree rotations, zoom-in, "
                        "brightness/contrast/gamma/hue, blur, lower resolution, JPEG); microscope "
                        "(standard + white-balance casts and lower magnification); cell (background "
                        "swap + strong stain and illumination changes); none. Default: standard; a "
                        "fine-tune: standard with the base model's background swap")
    p.add_argument("--white-balance", action="store_true",
                   help="white-balance each field on its background before contrast enhancement")
    p.add_argument("--background-swap", type=float, metavar="P",
                   help="share of the training images pasted onto another image's cell-free background "
                        "(overrides the preset's; cell: 0.6)")
    p.add_argument("--no-augment", action="store_true", help="same as --augment none (for ablations)")
    p.add_argument("--out", default="runs/model", metavar="DIR")
    p.add_argument("--id", help="model id (default ARCH-SPLIT)")
    p.add_argument("--model-version", default="1.0.0")
    p.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint in --out")
    p.add_argument("--skip-broken", action="store_true", help="train without unreadable images instead of stopping")
    p.set_defaults(func=cmd_train)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from cli.outputs import Output, OutputGuard, check_writable, model_files
    from engine.core.textsafe import printable

    if args.json:  # before the (long) evaluation: the JSON may not replace an input, and can be written
        OutputGuard(folders=[Path(args.data_dir)], protected=model_files(args.model)).check(
            [Output("--json", Path(args.json))])
        check_writable(Path(args.json), "JSON file", create_folders=False)

    from engine.training.evaluate import evaluate_folder
    from engine.training.metrics import format_report

    report = evaluate_folder(args.data_dir, args.model, batch_size=args.batch_size)
    print(f"model {report['model']['id']} {report['model']['version']} (sha256 {report['model']['sha256'][:12]})")
    print(format_report(report))
    if report.get("skipped"):
        print(f"\n{len(report['skipped'])} file(s) could not be read and were not evaluated:", file=sys.stderr)
        for item in report["skipped"][:20]:
            print(printable(f"  {item['path']}: {item['reason']}"), file=sys.stderr)
    if args.json:
        from engine.reports.files import atomic_write

        keys = ("n", "accuracy", "macro_f1", "ece", "classes", "per_class", "confusion_matrix", "model")
        data = (json.dumps({k: report[k] for k in keys}, indent=2) + "\n").encode("utf-8")
        atomic_write(args.json, lambda fh: fh.write(data), "JSON file")  # a temporary file, renamed into place
    return EXIT_OK


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="measure a model on a class-folder dataset")
    p.add_argument("data_dir", metavar="DATA_DIR")
    p.add_argument("--model", metavar="ID|PATH", help="shipped model id (resnet18, baseline) or a .safetensors path")
    p.add_argument("--json", metavar="FILE", help="write the metrics as JSON (atomically; never onto a file "
                   "of DATA_DIR or the model, nor an image file name inside DATA_DIR)")
    p.add_argument("--batch-size", type=int, default=64)
    p.set_defaults(func=cmd_evaluate)


def cmd_refit(args: argparse.Namespace) -> int:
    require_torch("re-fitting a model")
    from engine.training.refit import refit

    card = refit(args.model, args.data_dir, args.out, model_version=args.model_version)
    m = card.metrics.get(f"test_{card.data_fingerprint.get('split', 'random')}", {})
    _print_model(card.path.with_suffix(".safetensors") if card.path else card.weights_file, m.get("accuracy", 0),
                 f"out of distribution {m.get('ood_fraction', 0) * 100:.1f} %  ", m.get("needs_review_fraction", 0))
    return EXIT_OK


def _add_refit(sub) -> None:
    p = sub.add_parser("refit", help="re-fit a trained model's calibration and out-of-distribution detector")
    p.add_argument("model", metavar="MODEL", help="model id or .safetensors path")
    p.add_argument("data_dir", metavar="DATA_DIR", help="the data folder the model was trained on")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the re-fitted model")
    p.add_argument("--model-version", help="version of the re-fitted model (default: unchanged)")
    p.set_defaults(func=cmd_refit)


def cmd_training_job(args: argparse.Namespace) -> int:
    require_torch("training")
    from engine.training.job import lower_priority, run_job

    lower_priority()  # this process is the wizard's child: the desktop first
    return run_job(args.run_dir)


def _add_training_job(sub) -> None:
    # The retraining wizard's child process (engine/training/job.py); not for people, so no help.
    p = sub.add_parser("training-job")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.set_defaults(func=cmd_training_job)


REGISTRARS = [_add_train, _add_evaluate, _add_refit, _add_training_job]
