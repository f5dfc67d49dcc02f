"""Sign-in lockout: after :data:`MAX_REFUSED_SIGN_INS` refused sign-ins for one user name within
:data:`LOCKOUT_MINUTES`, that name is refused without its password being checked until the
lockout ends (NIST SP 800-63B 5.2.2: limit failed attempts).

The count is read from the (hash-chained) audit trail, which already records every refusal, so
there is no counter to tamper with or to lose on a crash. It restarts after a successful sign-in
or a password change for the name. Unknown user names lock exactly like real ones, so the
lockout tells nobody which names exist. Attempts during a lockout are audited as
``sign_in_locked`` and do not extend it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from engine.store.database import Conn

#: Refused sign-ins (within :data:`LOCKOUT_MINUTES`) that lock a user name.
MAX_REFUSED_SIGN_INS = 5
#: How long the refusals count, and how long the lockout lasts after the last of them.
LOCKOUT_MINUTES = 15.0

#: The audit actions that matter, newest first; a reset ends the scan.
_RESETS = ("signed_in", "password_changed")
#: At most this many recent sign-in events are read (plenty: a lockout needs only a handful).
_SCAN_LIMIT = 500


def _about(action: str, actor: str, details: str) -> str:
    """The user name an audit entry is about, case-folded."""
    if action == "signed_in":
        return actor.casefold()
    try:
        return str(json.loads(details).get("username", "")).casefold()
    except (ValueError, AttributeError):
        return ""


def locked_until(conn: Conn, username: str, *, at: datetime | None = None) -> datetime | None:
    """When the lockout of ``username`` ends, or ``None`` when it is not locked (at ``at``, now
    by default)."""
    key = (username or "").strip().casefold()
    at = at or datetime.now(UTC)
    window = timedelta(minutes=LOCKOUT_MINUTES)
    rows = conn.execute(
        "SELECT ts, action, actor, details FROM audit_log WHERE action IN "
        "('sign_in_refused', 'signed_in', 'password_changed') ORDER BY pk DESC LIMIT ?", (_SCAN_LIMIT,))
    refusals: list[datetime] = []
    for ts, action, actor, details in rows:
        if _about(action, actor, details) != key:
            continue
        if action in _RESETS:
            break
        when = datetime.fromisoformat(ts)
        if at - when > window:
            break
        refusals.append(when)
        if len(refusals) == MAX_REFUSED_SIGN_INS:
            # refusals[0] is the newest: the lockout lasts LOCKOUT_MINUTES after it.
            end = refusals[0] + window
            return end if end > at else None
    return None


def lockout_message(until: datetime, *, at: datetime | None = None) -> str:
    minutes = max(1, round(((until - (at or datetime.now(UTC))).total_seconds()) / 60))
    return (f"too many refused sign-ins for this user name: try again in {minutes} minute"
            f"{'s' if minutes != 1 else ''}, or ask an administrator to set a new password")


__all__ = ["LOCKOUT_MINUTES", "MAX_REFUSED_SIGN_INS", "locked_until", "lockout_message"]
