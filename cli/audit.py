"""``audit verify DB`` and ``audit export DB --out FILE``: the result database's audit trail.

``verify`` checks the whole hash chain (:meth:`engine.store.results.ResultStore.verify_audit`):
exit 0 and "audit trail intact: N entries", or exit 3 and what is wrong (which entry was changed,
which are missing). ``export`` writes the entries (filtered by sample, user, action, date) as CSV
or JSON with the writer the app uses (:mod:`engine.reports.audit`). An unusable database (missing,
not an ALLSight database, newer) is an error: exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path

from engine.core.errors import AllSightError
from engine.core.textsafe import printable

EXIT_OK, EXIT_DAMAGED = 0, 3


def _open(db: str):  # type: ignore[no-untyped-def]
    from engine.store.engines import is_url
    from engine.store.results import ResultStore

    if is_url(db):  # a lab database
        return ResultStore.open(db)
    path = Path(db)
    if not path.exists():
        raise AllSightError(f"{path}: no such result database")
    return ResultStore.open(path)


def parse_when(text: str, *, end: bool = False) -> datetime:
    """``YYYY-MM-DD`` (local midnight; with ``end``: the midnight after, so the day is included)
    or an ISO 8601 date and time (naive = local time)."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            when = datetime.combine(day + timedelta(days=1) if end else day, time())
        else:
            when = datetime.fromisoformat(text)
    except ValueError:
        raise AllSightError(f"not a date: {text!r} (expected YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    return when if when.tzinfo is not None else when.astimezone()


def cmd_verify(args: argparse.Namespace) -> int:
    with _open(args.db) as store:
        check = store.verify_audit()
        problems = store.integrity_problems()  # accounts/policy edited outside ALLSight
    for problem in problems:
        print(printable(f"accounts damaged: {problem}"), file=sys.stderr)
    if check.ok and problems:
        print(f"audit trail intact: {check.n_entries} entries, but the accounts or policy differ from it")
        return EXIT_DAMAGED
    if check.ok:
        print(f"audit trail intact: {check.n_entries} entries")
        print(f"last entry hash: {check.last_hash}")
        return EXIT_OK
    print(printable(f"audit trail damaged: {check.reason}"), file=sys.stderr)
    return EXIT_DAMAGED


def cmd_export(args: argparse.Namespace) -> int:
    from cli.outputs import Output, OutputGuard, check_writable
    from engine.reports.audit import FORMATS, write_audit

    out = Path(args.out)
    if out.suffix.lower() not in FORMATS:
        raise AllSightError(f"--out {out}: the audit export is written as .csv or .json")
    db = Path(args.db)
    protected = [("the result database", db)] + [
        ("the result database's journal", db.with_name(db.name + s)) for s in ("-wal", "-shm", "-journal")]
    OutputGuard(protected=protected).check([Output("--out", out)])
    check_writable(out, "audit export")
    since = parse_when(args.since) if args.since else None
    until = parse_when(args.until, end=True) if args.until else None
    filters = {"sample_id": args.sample, "user": args.user, "action": args.action, "since": args.since,
               "until": args.until}
    from cli.signin import acting_user

    with _open(args.db) as store:
        actor = acting_user(store, args)  # signs in first where the lab requires accounts
        check = store.verify_audit()
        entries = store.audit(args.sample, actor=args.user, action=args.action, since=since, until=until)
        write_audit(entries, out, check=check, database=str(db.absolute()), filters=filters)
        # The export is itself in the trail, after the entries it wrote.
        store.record_event("export", actor=actor, kind="audit", path=str(out.absolute()), entries=len(entries))
    print(printable(f"{len(entries)} audit entries written to {out}"))
    if not check.ok:
        print(printable(f"warning: audit trail damaged: {check.reason}"), file=sys.stderr)
    return EXIT_OK


def _add_audit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="check or export the audit trail of a result database")
    actions = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True, parser_class=type(p))
    v = actions.add_parser("verify", help="check that no audit entry was changed or deleted (exit 3 if one was)")
    v.add_argument("db", metavar="DB", help="the result database (allsight.sqlite3)")
    v.set_defaults(func=cmd_verify)
    e = actions.add_parser("export", help="write the audit entries as CSV or JSON")
    e.add_argument("db", metavar="DB", help="the result database (allsight.sqlite3)")
    e.add_argument("--out", required=True, metavar="FILE.csv|FILE.json")
    e.add_argument("--sample", metavar="ID", help="only entries about this sample")
    e.add_argument("--user", metavar="NAME", help="only entries by this user")
    e.add_argument("--action", metavar="A", help="only this action (record_review, sign_off, ...)")
    e.add_argument("--since", metavar="DATE", help="from this day (YYYY-MM-DD, local time) or time on")
    e.add_argument("--until", metavar="DATE", help="up to and including this day (or before this time)")
    from cli.signin import add_account_option

    add_account_option(e)
    e.set_defaults(func=cmd_export)


REGISTRARS: list[Callable[[argparse._SubParsersAction], None]] = [_add_audit]
