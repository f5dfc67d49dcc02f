"""Alembic's environment: always run from engine.store.engines with an open connection (never
from alembic's command line with a URL in a file: the lab's password stays out of files)."""

from typing import Any

from alembic import context

config: Any
try:
    config = context.config
except AttributeError:  # imported outside Alembic (tests/test_architecture.py imports every module)
    config = None
if config is not None:
    context.configure(connection=config.attributes["connection"], target_metadata=None,
                      transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
