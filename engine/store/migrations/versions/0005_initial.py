"""Schema 5 on PostgreSQL: samples, images, predictions, reviews, the hash-chained audit log and
its head, accounts and the lab policy, with the triggers SQLite has (engine.store.pg_schema).

Revision ID: 0005
"""

from typing import Any

from alembic import op

from engine.store.pg_schema import TABLES, TRIGGERS

revision = "0005"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The driver's own cursor, without parameters: PL/pgSQL's '%' is not a placeholder there.
    dbapi: Any = op.get_bind().connection.dbapi_connection
    with dbapi.cursor() as cursor:
        for statement in (*TABLES, *TRIGGERS):
            cursor.execute(statement)



def downgrade() -> None:  # a lab's history is never dropped by a migration
    raise NotImplementedError("the result database is not downgraded")
