"""``main.py store migrate SRC DST``: a workstation's SQLite history into the lab's database;
``main.py store grant DB ROLE``: the workstations' account gets what the store needs, no more."""

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


def cmd_grant(args: argparse.Namespace) -> int:
    from engine.store.results import ResultStore

    with ResultStore.open(args.database) as store:
        statements = store.grant_app_role(args.role, dry_run=args.dry_run)
    for statement in statements:
        print(f"{statement};")
    if not args.dry_run:
        print(printable(f"{args.role} may now use {store.path} as a workstation (append-only history, no schema "
                        "changes); run this again after every ALLSight upgrade that changes the schema"))
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
    g = commands.add_parser("grant", help="give the workstations' database account exactly what ALLSight needs on "
                            "the lab database (history append-only, no schema changes); run as the database's owner")
    g.add_argument("database", metavar="DB", help="the lab database, as its owner: postgresql://owner@host:5432/allsight")
    g.add_argument("role", metavar="ROLE", help="the workstations' account (CREATE ROLE ... LOGIN first)")
    g.add_argument("--dry-run", action="store_true", help="print the statements without running them")
    g.set_defaults(func=cmd_grant)


REGISTRARS: list[Callable[[argparse._SubParsersAction], None]] = [_add_store]
