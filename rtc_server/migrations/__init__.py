"""Alembic migrations; ``rtc_server.migrate`` runs them from code."""
