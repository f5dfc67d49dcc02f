"""Schema 6: ``sample_leases``, which workstation is classifying a sample now (engine.store.leases).

Revision ID: 0006
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE TABLE sample_leases (
    sample_pk   BIGINT PRIMARY KEY REFERENCES samples(pk),
    holder      TEXT NOT NULL,
    workstation TEXT NOT NULL,
    token       TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    expires_at  TEXT NOT NULL)""")


def downgrade() -> None:  # a lab's history is never dropped by a migration
    raise NotImplementedError("the result database is not downgraded")
