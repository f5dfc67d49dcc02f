"""Alembic migrations of the result database on PostgreSQL (see engine.store.engines.upgrade_postgresql).

SQLite files keep their own version chain (``PRAGMA user_version``, engine.store.schema); a
PostgreSQL database starts at schema 5 (revision ``0005``) and every later schema change is one
revision here and one SQLite step there, kept equal by tests/engine/store/test_engines.py.
"""
