"""``accounts DB ...``: the lab's named ALLSight accounts and its policy, for the lab's IT person.

    python main.py accounts DB list
    python main.py accounts DB add USER --role reviewer [--name "Rita Meyer"]
    python main.py accounts DB set USER [--role R] [--name N] [--active yes|no]
    python main.py accounts DB passwd USER
    python main.py accounts DB policy [--require-accounts on|off] [--independent-reviewer on|off]

A new password is typed twice at a prompt (or, unattended, read from ``$ALLSIGHT_NEW_PASSWORD``).
Once the database requires accounts, every change here needs an administrator signed in
(``--account``, :mod:`cli.signin`); before that the OS login acts, as for every other command.
Everything is in the audit trail.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from cli.signin import acting_user, add_account_option, read_password
from engine.core.errors import AllSightError
from engine.core.identity import Role
from engine.core.textsafe import printable

NEW_PASSWORD_ENV = "ALLSIGHT_NEW_PASSWORD"


def _new_password(user: str) -> str:
    import os

    if NEW_PASSWORD_ENV in os.environ:
        return os.environ[NEW_PASSWORD_ENV]
    first = read_password(f"New password for {user}: ", env=NEW_PASSWORD_ENV)
    if read_password(f"Again, new password for {user}: ", env=NEW_PASSWORD_ENV) != first:
        raise AllSightError("the two passwords differ; nothing was changed")
    return first


def _on_off(text: str | None) -> bool | None:
    if text is None:
        return None
    return {"on": True, "yes": True, "off": False, "no": False}[text]


def cmd_accounts(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.store.engines import is_url
    from engine.store.results import ResultStore

    if not is_url(args.db) and not Path(args.db).exists():
        raise AllSightError(f"{args.db}: no such result database")
    with ResultStore.open(args.db) as store:
        if args.accounts_command == "list":
            rows = store.accounts.list()
            if not rows:
                print("no accounts (changes are recorded under each person's OS login)")
            for a in rows:
                print(printable(f"{a.username:<20} {a.role.value:<14} {'active' if a.active else 'inactive':<9} "
                                f"{a.display_name}"))
            policy = store.accounts.policy
            print(f"accounts required: {'yes' if policy.accounts_required else 'no'}; independent reviewer "
                  f"required: {'yes' if policy.independent_reviewer_required else 'no'}")
            return 0
        actor = acting_user(store, args)
        if args.accounts_command == "add":
            account = store.accounts.create(args.user, _new_password(args.user), Role(args.role), args.name or "",
                                            actor=actor)
            print(printable(f"account {account.username} created ({account.role.value})"))
        elif args.accounts_command == "set":
            account = store.accounts.update(args.user, role=Role(args.role) if args.role else None,
                                            display_name=args.name, active=_on_off(args.active), actor=actor)
            print(printable(f"account {account.username}: {account.role.value}, "
                            f"{'active' if account.active else 'inactive'}"))
        elif args.accounts_command == "passwd":
            store.accounts.set_password(args.user, _new_password(args.user), actor=actor)
            print(printable(f"password of {args.user} changed"))
        elif args.accounts_command == "policy":
            changes = {k: v for k, v in (("accounts_required", _on_off(args.require_accounts)),
                                         ("independent_reviewer_required", _on_off(args.independent_reviewer)))
                       if v is not None}
            policy = store.accounts.set_policy(actor=actor, **changes) if changes else store.accounts.policy
            print(f"accounts required: {'yes' if policy.accounts_required else 'no'}; independent reviewer "
                  f"required: {'yes' if policy.independent_reviewer_required else 'no'}")
    return 0


def _add_accounts(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("accounts", help="the lab's ALLSight accounts, roles and policy in a result database")
    p.add_argument("db", metavar="DB", help="the result database (allsight.sqlite3)")
    actions = p.add_subparsers(dest="accounts_command", metavar="ACTION", required=True, parser_class=type(p))
    roles = [r.value for r in Role]
    actions.add_parser("list", help="the accounts and the policy")
    a = actions.add_parser("add", help="a new account (the password is asked for twice)")
    a.add_argument("user", metavar="USER")
    a.add_argument("--role", required=True, choices=roles)
    a.add_argument("--name", metavar="TEXT", help="the name shown on screens and reports")
    s = actions.add_parser("set", help="change an account's role, name, or (de)activate it")
    s.add_argument("user", metavar="USER")
    s.add_argument("--role", choices=roles)
    s.add_argument("--name", metavar="TEXT")
    s.add_argument("--active", choices=["yes", "no"])
    w = actions.add_parser("passwd", help="set an account's password")
    w.add_argument("user", metavar="USER")
    o = actions.add_parser("policy", help="show or change the lab policy")
    o.add_argument("--require-accounts", choices=["on", "off"],
                   help="take changes only from signed-in accounts (needs an administrator account)")
    o.add_argument("--independent-reviewer", choices=["on", "off"],
                   help="sign-off only by someone other than the person who classified")
    for q in (a, s, w, o):
        add_account_option(q)
    p.set_defaults(func=cmd_accounts)


REGISTRARS: list[Callable[[argparse._SubParsersAction], None]] = [_add_accounts]
