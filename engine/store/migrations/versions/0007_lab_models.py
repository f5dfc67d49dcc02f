"""Schema 7: the lab's shared models — ``lab_models``, their files (``lab_model_files``) and the
append-only history of the lab's active model (``lab_active_model``), with the triggers that keep
all three unchanged once written (engine.store.lab_models, engine.store.pg_schema).

Revision ID: 0007
"""

from typing import Any

from alembic import op

from engine.store.pg_schema import LAB_MODEL_TABLES, LAB_MODEL_TRIGGERS

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The driver's own cursor, without parameters (as 0005): the trigger messages are plain text.
    dbapi: Any = op.get_bind().connection.dbapi_connection
    with dbapi.cursor() as cursor:
        for statement in (*LAB_MODEL_TABLES, *LAB_MODEL_TRIGGERS):
            cursor.execute(statement)


def downgrade() -> None:  # a lab's history is never dropped by a migration
    raise NotImplementedError("the result database is not downgraded")
