"""``main.py store migrate SRC DST``: a workstation's SQLite history into the lab's database."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from engine.core.textsafe import printable

EXIT_OK = 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.core.errors import AllSightError
    from engine.store.copy import copy_store
    from engine.store.engines import is_url
    from engine.store.results import ResultStore

    if not is_url(args.source) and not Path(args.source).is_file():
        raise AllSightError(f"{args.source}: no such result database")
    with ResultStore.open(args.source) as source, ResultStore.open(args.destination) as destination:
        report = copy_store(source, destination)
        print(printable(f"{source.path} -> {destination.path}: {report.describe()}"))
    return EXIT_OK


def _add_store(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("store", help="the result database: copy a workstation's history into the lab database")
    commands = p.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    m = commands.add_parser("migrate", help="copy every sample, result, review, account and the whole audit trail "
                            "of SRC into the empty database DST, verified (counts and audit chain) before it commits")
    m.add_argument("source", metavar="SRC", help="a result database file (or URL)")
    m.add_argument("destination", metavar="DST", help="the lab database: postgresql://user@host:5432/allsight "
                   "(the password from $ALLSIGHT_DB_PASSWORD or ~/.pgpass), or a file")
    m.set_defaults(func=cmd_migrate)


REGISTRARS: list[Callable[[argparse._SubParsersAction], None]] = [_add_store]
