"""Alembic migrations: env.py, versions/, and a small programmatic runner."""
