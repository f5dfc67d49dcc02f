"""ALLSight entry point: ``python main.py`` opens the desktop app; subcommands run the engine CLI.

Heavy imports (torch, Qt) are deferred to the subcommand that needs them so that start-up and
``--version`` stay fast.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    if getattr(sys, "frozen", False):
        # The packaged app exports a model's ONNX copy in a child process (multiprocessing
        # "spawn"); in a PyInstaller executable that child starts here and must branch off.
        import multiprocessing

        multiprocessing.freeze_support()
    argv = list(sys.argv[1:] if argv is None else argv)
    from cli.main import COMMANDS
    from cli.main import main as cli_main

    if argv and argv[0] == "--self-test":  # IT's (and CI's) check of an installed app: gui/self_test.py
        from gui.self_test import run_self_test

        return run_self_test(argv[1:])
    if argv and (argv[0] in COMMANDS or argv[0] in ("-h", "--help", "--version")):
        return cli_main(argv)
    if argv and not argv[0].startswith("-") and argv[0] != "gui" and not os.path.exists(argv[0]):
        return cli_main(argv)  # unknown command: argparse prints the usage error
    # No arguments, "gui", Qt options, or files and folders to open (a folder dropped on the
    # app's icon, "Open with ALLSight"): the desktop app.
    from gui.app import run_app

    return run_app(argv[1:] if argv and argv[0] == "gui" else argv)


def console_main() -> None:
    """The ``allsight`` console script (pyproject.toml): the same as ``python main.py``."""
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())
