"""Async database access (PostgreSQL and SQLite) and the migration runner; see :mod:`.manager`."""

from .errors import DatabaseConnectionError, DatabaseError, MigrationError
from .manager import DatabaseManager
from .migrations import AppliedMigration, MigrationReport, MigrationSource

__all__ = [
    "AppliedMigration",
    "DatabaseConnectionError",
    "DatabaseError",
    "DatabaseManager",
    "MigrationError",
    "MigrationReport",
    "MigrationSource",
]
