"""Classification leases: one workstation classifies a sample at a time.

When two workstations share the lab's database, the same sample (the same folder on a network
share) may be opened on both. Classifying it takes a *lease* on the sample first: a row in
``sample_leases`` naming who holds it, on which workstation, and until when. Another workstation
asking for it is refused with :class:`SampleBusyError`, which says who holds it and since when.
The holder renews the lease while it works (:func:`renew`); a holder that crashed, lost its
network or was killed simply stops renewing, and the lease runs out after its time, so nobody
has to clear it by hand. Leases are working state, not history: they are not audited.
"""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from engine.store.database import Database
from engine.store.errors import StoreError

#: How long a lease lasts without renewal; the classifier renews it well before (every third).
LEASE_SECONDS = 120.0


class SampleBusyError(StoreError):
    """Another workstation holds the sample's lease: ``holder``, ``workstation``, ``since`` and
    ``until`` say who, where and for how long at most."""

    def __init__(self, message: str, *, holder: str, workstation: str, since: str, until: str):
        self.holder, self.workstation, self.since, self.until = holder, workstation, since, until
        super().__init__(message)


@dataclass(frozen=True)
class Lease:
    sample_id: str
    token: str
    holder: str
    workstation: str
    expires_at: str


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def workstation_name() -> str:
    return socket.gethostname() or "this workstation"


def acquire(db: Database, sample_id: str, holder: str, *, seconds: float = LEASE_SECONDS,
            workstation: str | None = None) -> Lease:
    """Take the sample's lease for ``seconds`` (:class:`SampleBusyError` when another holds it)."""
    workstation = workstation or workstation_name()
    now = datetime.now(UTC)
    with db.write() as conn:
        row = db.sample_row(conn, sample_id)  # locks the sample's row on PostgreSQL
        held = conn.execute("SELECT holder, workstation, acquired_at, expires_at FROM sample_leases "
                            "WHERE sample_pk = ?", (row["pk"],)).fetchone()
        # The same person on the same workstation takes their own lease over at once: the app that
        # held it crashed (or was killed) and was started again; anyone else waits for it to run out.
        own = held is not None and (held["holder"], held["workstation"]) == (holder or "", workstation)
        if held is not None and held["expires_at"] > _stamp(now) and not own:
            raise SampleBusyError(
                f"sample {sample_id!r} is being classified by {held['holder']} on {held['workstation']} "
                f"(since {held['acquired_at']}); try again when they are done",
                holder=held["holder"], workstation=held["workstation"], since=held["acquired_at"],
                until=held["expires_at"])
        lease = Lease(sample_id, secrets.token_hex(16), holder or "", workstation,
                      _stamp(now + timedelta(seconds=seconds)))
        conn.execute(
            "INSERT INTO sample_leases (sample_pk, holder, workstation, token, acquired_at, expires_at) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT (sample_pk) DO UPDATE SET holder = excluded.holder, "
            "workstation = excluded.workstation, token = excluded.token, acquired_at = excluded.acquired_at, "
            "expires_at = excluded.expires_at",
            (row["pk"], lease.holder, workstation, lease.token, _stamp(now), lease.expires_at))
    return lease


def renew(db: Database, lease: Lease, *, seconds: float = LEASE_SECONDS) -> Lease:
    """Extend ``lease``; :class:`SampleBusyError` when it ran out and someone else took it."""
    until = _stamp(datetime.now(UTC) + timedelta(seconds=seconds))
    with db.write() as conn:
        row = db.sample_row(conn, lease.sample_id)
        changed = conn.execute("UPDATE sample_leases SET expires_at = ? WHERE sample_pk = ? AND token = ?",
                               (until, row["pk"], lease.token)).rowcount
    if changed != 1:
        return acquire(db, lease.sample_id, lease.holder, seconds=seconds, workstation=lease.workstation)
    return Lease(lease.sample_id, lease.token, lease.holder, lease.workstation, until)


def release(db: Database, lease: Lease) -> None:
    """Give the lease up (nothing happens if it was already taken over)."""
    with db.write() as conn:
        row = db.sample_row(conn, lease.sample_id)
        conn.execute("DELETE FROM sample_leases WHERE sample_pk = ? AND token = ?", (row["pk"], lease.token))


def holder(db: Database, sample_id: str) -> Lease | None:
    """Who holds the sample's lease now (``None``: nobody, or it ran out)."""
    with db.read() as conn:
        row = conn.execute("SELECT s.sample_id, l.token, l.holder, l.workstation, l.expires_at FROM sample_leases l "
                           "JOIN samples s ON s.pk = l.sample_pk WHERE s.sample_id = ?", (sample_id,)).fetchone()
    if row is None or row["expires_at"] <= _stamp(datetime.now(UTC)):
        return None
    return Lease(*row)


class Leases:
    """The store's leases (``ResultStore.leases``): the functions above on its database."""

    def __init__(self, db: Database):
        self._db = db

    def acquire(self, sample_id: str, holder: str, *, seconds: float = LEASE_SECONDS) -> Lease:
        return acquire(self._db, sample_id, holder, seconds=seconds)

    def renew(self, lease: Lease, *, seconds: float = LEASE_SECONDS) -> Lease:
        return renew(self._db, lease, seconds=seconds)

    def release(self, lease: Lease) -> None:
        release(self._db, lease)

    def holder(self, sample_id: str) -> Lease | None:
        return holder(self._db, sample_id)


__all__ = ["LEASE_SECONDS", "Lease", "Leases", "SampleBusyError", "acquire", "holder", "release", "renew", "workstation_name"]
