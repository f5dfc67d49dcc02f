"""Command-line interface: ``python main.py COMMAND ...``.

Every command prints one clear line on failure (``error: ...``) and exits non-zero; tracebacks
go to the log file only. Exit codes: 0 success, 2 usage or fatal error, 3 finished with some
failed files, 130 cancelled (Ctrl-C).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from engine import __version__
from engine.core.errors import AllSightError, Cancelled
from engine.core.textsafe import printable

log = logging.getLogger("allsight.cli")

EXIT_OK, EXIT_FATAL, EXIT_PARTIAL, EXIT_CANCELLED = 0, 2, 3, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default is exit 2 too; keep one line
        self.print_usage(sys.stderr)
        self.exit(EXIT_FATAL, f"error: {printable(message)}\n")


def _fail(message: str) -> int:
    """The one ``error:`` line; control characters of a file name in it are shown escaped
    (:func:`~engine.core.textsafe.printable`), a newline included, so it stays one line."""
    print(f"error: {printable(message)}", file=sys.stderr)
    return EXIT_FATAL


# --------------------------------------------------------------------------------------- preview
def cmd_preview(args: argparse.Namespace) -> int:
    import cv2

    from engine.core.errors import ModelError
    from engine.imaging.preprocess import PreprocessConfig, preprocess
    from engine.io.images import load_image
    from engine.models.resolve import resolve_model_card

    # The stages the model actually sees: the named model's preprocessing, by default the
    # default model's (its image size and white balance), not a generic 224 px one.
    try:
        card = resolve_model_card(args.model)
        config = card.preprocess
        source = f"preprocessing of model {card.id} {card.version}"
    except ModelError:
        if args.model:
            raise
        config = PreprocessConfig()
        source = "no model installed: generic preprocessing (224 px)"
    if args.image_size:
        config = config.replace(image_size=args.image_size)
    if args.lab_source:
        config = config.replace(lab_source=args.lab_source)
    rgb = load_image(args.image)
    stages = preprocess(rgb, config)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _fail(f"cannot create output folder {out}: {exc.strerror}")
    stem = Path(args.image).stem
    targets = [out / f"{stem}_{index}_{name}.png" for index, name in enumerate(stages.as_dict())]
    from cli.outputs import Output, OutputGuard
    from engine.reports.files import atomic_write

    OutputGuard(images=[Path(args.image)]).check(Output("--out", t) for t in targets)
    written = []
    for target, image in zip(targets, stages.as_dict().values(), strict=True):
        bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        ok, png = cv2.imencode(".png", bgr)
        if not ok:
            return _fail(f"cannot write {target}: the image could not be encoded")
        atomic_write(target, lambda fh, data=png: fh.write(data.tobytes()), "preview image")
        written.append(target)
    for target in written:
        print(printable(target))
    print(printable(source), file=sys.stderr)  # after the work: an error stays the only line
    return EXIT_OK


def _add_preview(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preview", help="write every preprocessing stage of IMAGE as PNGs")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    p.add_argument("--model", metavar="ID|PATH", help="use this model's preprocessing parameters (default: the "
                   "default model's, as classify uses them)")
    p.add_argument("--image-size", type=int, help="override the input size")
    p.add_argument("--lab-source", choices=["bgr_as_rgb", "rgb"], help="override the LAB channel order")
    p.set_defaults(func=cmd_preview)


_REGISTRARS: list[Callable[[argparse._SubParsersAction], None]] = [_add_preview]
COMMANDS: set[str] = {"preview", "train", "evaluate", "refit", "classify", "audit", "accounts", "models",
                      "training-job", "store"}


def register_commands() -> None:
    # The command modules import torch, OpenCV etc. only inside their functions, so registering
    # them costs ~50 ms and --help lists every command.
    from cli import accounts, audit, classify, library, models, store

    for register in (*models.REGISTRARS, *classify.REGISTRARS, *audit.REGISTRARS, *accounts.REGISTRARS,
                     *library.REGISTRARS, *store.REGISTRARS):
        if register not in _REGISTRARS:
            _REGISTRARS.append(register)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="allsight", description="ALLSight: ALL smear screening (research use only).")
    parser.add_argument("--version", action="version", version=f"ALLSight {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for register in _REGISTRARS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from engine.core.logging_setup import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    register_commands()
    parser = build_parser()
    args = parser.parse_args(argv)
    log_path = setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_FATAL
    try:
        return int(args.func(args) or 0)
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_CANCELLED
    except AllSightError as exc:
        log.info("command failed", exc_info=True)
        return _fail(str(exc))
    except Exception as exc:  # a bug: one line for the user, the traceback in the log
        log.exception("unexpected error in %s", args.command)
        where = f" (details in {log_path})" if log_path else ""
        return _fail(f"unexpected {type(exc).__name__}: {exc}{where}")

