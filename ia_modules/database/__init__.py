"""Database access (PostgreSQL and SQLite), awaited or, as the guide writes it, not; the migration runner. See
:mod:`.manager`."""

from .blocking import UnawaitedCallError
from .errors import DatabaseConnectionError, DatabaseError, MigrationError
from .manager import DatabaseManager
from .migrations import AppliedMigration, MigrationReport, MigrationSource
from .url import SecretURL

__all__ = [
    "AppliedMigration",
    "DatabaseConnectionError",
    "DatabaseError",
    "DatabaseManager",
    "MigrationError",
    "MigrationReport",
    "MigrationSource",
    "SecretURL",
    "UnawaitedCallError",
]
