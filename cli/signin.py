"""Who runs a command against a result database: the OS login, or a signed-in ALLSight account.

Without required accounts (:attr:`engine.store.results.ResultStore.accounts_required`) every
change is recorded under the OS login that runs the command (:func:`engine.core.identity.os_login`).
Once the lab requires accounts the command signs in first: ``--account NAME`` (default: the OS
login's name) and the password, typed at a prompt that does not echo it or, for an unattended
run, read from the ``ALLSIGHT_PASSWORD`` environment variable (never from the command line, where
``ps`` and the shell history would show it).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import TYPE_CHECKING

from engine.core.errors import AllSightError
from engine.core.identity import os_login

if TYPE_CHECKING:
    from engine.store.results import ResultStore

PASSWORD_ENV = "ALLSIGHT_PASSWORD"


def add_account_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--account", metavar="NAME",
                   help="the ALLSight account to sign in as when the database requires accounts "
                        f"(default: your OS login); the password is asked for, or read from ${PASSWORD_ENV}")


def read_password(prompt: str, env: str = PASSWORD_ENV) -> str:
    """A password from ``$env`` or a no-echo prompt; :class:`AllSightError` when neither is possible."""
    value = os.environ.get(env)
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise AllSightError(f"a password is needed and there is no terminal to ask on: set {env} for an unattended run")
    try:
        return getpass.getpass(prompt)
    except (EOFError, KeyboardInterrupt):
        raise AllSightError("no password given") from None


def acting_user(store: ResultStore, args: argparse.Namespace) -> str:
    """Sign in when the database requires it; the name every change of this run is recorded under."""
    if not store.accounts_required:
        return os_login()
    name = (getattr(args, "account", None) or os_login()).strip()
    identity = store.sign_in(name, read_password(f"Password for {name} (ALLSight account): "))
    return identity.user


__all__ = ["PASSWORD_ENV", "acting_user", "add_account_option", "read_password"]
