"""Who is acting: one identity per person, and what each role may do (the rule, written once).

By default the person is the logged-in operating-system account (:func:`os_identity`): a
single-user workstation needs no second password, and the OS login already says who is at the
keyboard. A lab may turn on named ALLSight accounts in its result database
(:meth:`engine.store.results.ResultStore.require_accounts`); from then on the database takes
changes only from a person signed in with a password, and only what that person's :class:`Role`
allows (:data:`ROLE_PERMISSIONS`). The engine refuses, not only the GUI: a front end that skips
its own check still meets :class:`PermissionDenied` from the store.

Every review, exclusion, sign-off, reopen, export and model change is recorded under
:attr:`Identity.user`, never under a name typed into a form.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from engine.core.errors import AllSightError


class Role(StrEnum):
    """What a person is in the lab (stored with the account)."""

    #: Classifies samples and reviews the flagged images.
    TECHNICIAN = "technician"
    #: Also signs samples off and reopens them.
    REVIEWER = "reviewer"
    #: Also manages accounts, the lab's policy and the models.
    ADMINISTRATOR = "administrator"


class Permission(StrEnum):
    """An action the store (or a front end) checks before it is taken."""

    CLASSIFY = "classify"  # register samples, add images, record results, edit sample IDs
    REVIEW = "review"  # confirm, override, exclude or withdraw an image's class
    SIGN_OFF = "sign_off"
    REOPEN = "reopen"
    EXPORT = "export"  # reports, the audit trail
    MANAGE_ACCOUNTS = "manage_accounts"  # accounts and the lab policy (accounts required, ...)
    CHANGE_MODELS = "change_models"  # the active model, training, promoting


_TECHNICIAN = frozenset({Permission.CLASSIFY, Permission.REVIEW, Permission.EXPORT})
_REVIEWER = _TECHNICIAN | {Permission.SIGN_OFF, Permission.REOPEN}

#: The one rule of who may do what.
ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = MappingProxyType({
    Role.TECHNICIAN: _TECHNICIAN,
    Role.REVIEWER: _REVIEWER,
    Role.ADMINISTRATOR: frozenset(Permission),
})

#: What each role is called for people (settings, dialogs, the account list).
ROLE_TITLES: Mapping[Role, str] = MappingProxyType({
    Role.TECHNICIAN: "Technician (classify, review)",
    Role.REVIEWER: "Reviewer (also sign off, reopen)",
    Role.ADMINISTRATOR: "Administrator (also accounts, policy, models)",
})


class PermissionDenied(AllSightError):
    """The person is not signed in, or their role may not take this action."""


class AuthenticationError(PermissionDenied):
    """A user name or password was not accepted (the message never says which)."""


@dataclass(frozen=True)
class Identity:
    """A person acting: an OS login (``via == "os"``) or a signed-in ALLSight account
    (``via == "password"``). ``user`` is what records carry; ``display_name`` is for screens."""

    user: str
    role: Role
    via: str = "os"
    display_name: str = ""
    #: Set by the store that authenticated the account: an identity built by hand carries none,
    #: so it cannot stand in for a signed-in person.
    token: str = field(default="", repr=False, compare=False)

    @property
    def name(self) -> str:
        """The name people read: the display name, else the user name."""
        return self.display_name or self.user

    def may(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission, what: str) -> None:
        """:class:`PermissionDenied` naming the person, the role and ``what`` was refused."""
        if not self.may(permission):
            raise PermissionDenied(
                f"{self.name} ({self.role.value}) may not {what}: that needs a role with the "
                f"'{permission.value}' permission; ask the lab's administrator")

    def describe(self) -> str:
        """One line for a status bar: who, and how they were identified."""
        how = "this computer's login" if self.via == "os" else f"ALLSight account, {self.role.value}"
        return f"{self.name} ({how})"


def os_login() -> str:
    """The operating-system account running this process, from the process's own user id
    (POSIX) or the Windows logon: not from ``USER``/``LOGNAME``, which anyone can set."""
    if hasattr(os, "geteuid"):
        import pwd

        try:
            return pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:  # no entry in the password file (some containers)
            return f"uid-{os.geteuid()}"
    try:
        return os.getlogin()
    except OSError:
        return getpass.getuser()


def os_identity() -> Identity:
    """The OS login, with every permission: without ALLSight accounts the workstation's own
    login is the access control, and the record names who was logged in."""
    return Identity(os_login(), Role.ADMINISTRATOR, "os")


__all__ = ["ROLE_PERMISSIONS", "ROLE_TITLES", "AuthenticationError", "Identity", "Permission", "PermissionDenied",
           "Role", "os_identity", "os_login"]
