"""The migration runner: ``V<n>__<name>.sql`` files from the project's ``migrations/`` then each app path.

Rules, and why:

- Files are ordered by the number ``n``, not by name (``V2`` before ``V10``). Each source has its own *scope* in
  ``ia_schema_migrations`` (``project`` for ours, ``app:<directory name>`` for an app path, or one given with
  :class:`MigrationSource`), so an app's ``V001`` never collides with the project's.
- ``V<n>__<name>.postgresql.sql`` / ``V<n>__<name>.sqlite.sql`` apply only on that database and, for the same
  ``n``, replace the plain ``V<n>__<name>.sql`` there: one version can ship a SQLite and a PostgreSQL dialect.
  Any other ``.sql`` file in a migration directory is an error, so a misspelt name is never skipped silently.
- Each file runs whole (several statements, triggers, ``$$`` bodies) in its own transaction together with its
  ``ia_schema_migrations`` row: it is applied entirely or not at all. Files must not hold their own
  ``BEGIN``/``COMMIT``, nor statements that cannot run in a transaction (``CREATE INDEX CONCURRENTLY``).
- An applied file whose content (sha256 of the text, line endings normalised) changed is an error naming it,
  raised before anything is applied: write a new migration instead.
- Runners serialise: on PostgreSQL on a session advisory lock, on SQLite on each file's ``BEGIN IMMEDIATE``
  (the file is re-checked inside it), so two runners starting together apply each file once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .backends.base import Backend, Session
from .errors import DatabaseError, MigrationError

logger = logging.getLogger(__name__)

PROJECT_SCOPE = "project"
MIGRATIONS_TABLE = "ia_schema_migrations"
_MAX_VERSION = 2**63 - 1
_FILE_NAME = re.compile(r"V(?P<version>[0-9]+)__(?P<description>[^./\\]+?)(?:\.(?P<dialect>postgresql|sqlite))?\.sql")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS ia_schema_migrations (
    scope TEXT NOT NULL,
    version BIGINT NOT NULL,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    execution_ms DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (scope, version)
)
"""
_SELECT_SCOPE = "SELECT version, name, checksum FROM ia_schema_migrations WHERE scope = ?"
_SELECT_ONE = "SELECT checksum FROM ia_schema_migrations WHERE scope = ? AND version = ?"
_INSERT = "INSERT INTO ia_schema_migrations (scope, version, name, checksum, execution_ms) VALUES (?, ?, ?, ?, ?)"


@dataclass(frozen=True)
class MigrationSource:
    """A directory of migrations and the scope its files are recorded under (default ``app:<dir name>``)."""

    path: Path
    scope: str | None = None


@dataclass(frozen=True)
class MigrationFile:
    """One migration chosen for this database's dialect."""

    scope: str
    version: int
    name: str
    path: Path
    sql: str = field(repr=False)
    checksum: str

    @property
    def label(self) -> str:
        return f"{self.path} (scope {self.scope!r}, version {self.version})"


@dataclass(frozen=True)
class AppliedMigration:
    """A migration this run applied."""

    scope: str
    version: int
    name: str
    path: Path
    execution_ms: float


@dataclass
class MigrationReport:
    """What a run did: the files it applied, in order, and how many were already applied before."""

    applied: list[AppliedMigration] = field(default_factory=list)
    already_applied: int = 0
    sources: list[tuple[str, Path]] = field(default_factory=list)


def checksum_of(text: str) -> str:
    """sha256 of the text with line endings normalised, so a CRLF checkout is not a changed file."""
    return hashlib.sha256(text.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def _read_directory(path: Path) -> list[tuple[Path, bytes]]:
    return [(entry, entry.read_bytes()) for entry in sorted(path.iterdir()) if entry.is_file()]


def parse_directory(scope: str, entries: Sequence[tuple[Path, bytes]], dialect: str) -> list[MigrationFile]:
    """The migrations of one directory for ``dialect``, ordered by version; MigrationError for a ``.sql`` file
    whose name is not a migration's, two files with one version, or a file that is not UTF-8."""
    generic: dict[int, list[tuple[Path, bytes]]] = {}
    specific: dict[tuple[int, str], list[tuple[Path, bytes]]] = {}
    for path, content in entries:
        if path.name.startswith(".") or not path.name.endswith(".sql"):
            continue
        match = _FILE_NAME.fullmatch(path.name)
        if not match:
            raise MigrationError(
                f"{path}: not a migration file name: expected V<n>__<name>.sql (or .postgresql.sql / .sqlite.sql)"
            )
        version = int(match["version"])
        if version > _MAX_VERSION:
            raise MigrationError(f"{path}: version {version} is too large (at most {_MAX_VERSION})")
        if match["dialect"]:
            specific.setdefault((version, match["dialect"]), []).append((path, content))
        else:
            generic.setdefault(version, []).append((path, content))
    for group in [*generic.values(), *specific.values()]:
        if len(group) > 1:
            names = ", ".join(str(path) for path, _ in group)
            raise MigrationError(f"two migrations with one version in scope {scope!r}: {names}")
    versions = sorted({*generic, *(version for version, _ in specific)})
    files = []
    for version in versions:
        chosen = specific.get((version, dialect)) or generic.get(version)
        if not chosen:
            continue
        path, content = chosen[0]
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise MigrationError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        files.append(MigrationFile(scope, version, path.name, path, text, checksum_of(text)))
    return files


def _line_of(sql: str, position: int | None) -> str:
    if not position:
        return ""
    return f" at line {sql.count(chr(10), 0, max(position - 1, 0)) + 1}"


class MigrationRunner:
    """Applies the project's migrations (``project_dir``, or none when None) then each app path's."""

    def __init__(self, backend: Backend, project_dir: Path | None) -> None:
        self.backend = backend
        self.project_dir = project_dir

    def sources(self, app_paths: Sequence[str | Path | MigrationSource]) -> list[tuple[str, Path]]:
        """(scope, directory) for each source, in order; an app path that is the project's directory, or one
        already listed, is dropped."""
        result: list[tuple[str, Path]] = []
        seen: set[Path] = set()
        if self.project_dir is not None:
            result.append((PROJECT_SCOPE, self.project_dir))
            seen.add(self.project_dir.resolve())
        for item in app_paths:
            source = item if isinstance(item, MigrationSource) else MigrationSource(Path(item))
            resolved = Path(source.path).resolve()
            if resolved in seen:
                logger.debug("migration path %s is already a source; skipped", source.path)
                continue
            seen.add(resolved)
            scope = source.scope or f"app:{resolved.name}"
            if any(scope == known for known, _ in result):
                raise MigrationError(
                    f"migration path {source.path} has the same scope {scope!r} as another one: "
                    "give it its own with MigrationSource(path, scope=...)"
                )
            result.append((scope, Path(source.path)))
        return result

    async def discover(self, sources: Sequence[tuple[str, Path]]) -> list[MigrationFile]:
        """Every migration of every source for this database's dialect, in the order they apply."""

        def read_all() -> list[tuple[str, list[tuple[Path, bytes]]]]:
            found = []
            for scope, path in sources:
                if not path.is_dir():
                    level = logging.DEBUG if scope == PROJECT_SCOPE else logging.WARNING
                    logger.log(level, "migration directory %s does not exist; skipped", path)
                    continue
                found.append((scope, _read_directory(path)))
            return found

        files: list[MigrationFile] = []
        for scope, entries in await asyncio.to_thread(read_all):
            files.extend(parse_directory(scope, entries, self.backend.dialect))
        return files

    async def run(self, app_paths: Sequence[str | Path | MigrationSource] = ()) -> MigrationReport:
        """Apply what is pending; MigrationError (naming the file) when a file changed or fails."""
        sources = self.sources(app_paths)
        files = await self.discover(sources)
        report = MigrationReport(sources=sources)
        async with self.backend.migration_session() as session:
            async with session.transaction() as tx:  # on SQLite, takes the write lock before looking
                await tx.execute(_CREATE_TABLE)
            recorded: dict[tuple[str, int], dict[str, object]] = {}
            for scope, _ in sources:
                for row in await session.fetch_all(_SELECT_SCOPE, (scope,)):
                    recorded[(scope, int(row["version"]))] = row
            for migration in files:
                previous = recorded.get((migration.scope, migration.version))
                if previous is not None and previous["checksum"] != migration.checksum:
                    raise self._changed(migration, str(previous["checksum"]))
            present = {(m.scope, m.version) for m in files}
            for scope, version in sorted(set(recorded) - present):
                logger.warning("migration %s version %s was applied but its file is gone", scope, version)
            for migration in files:
                if (migration.scope, migration.version) in recorded:
                    report.already_applied += 1
                    continue
                applied = await self._apply(session, migration)
                if applied is None:
                    report.already_applied += 1
                else:
                    report.applied.append(applied)
        return report

    @staticmethod
    def _changed(migration: MigrationFile, recorded: str) -> MigrationError:
        return MigrationError(
            f"migration {migration.label} was changed after it was applied (checksum {recorded[:12]}... "
            f"recorded, {migration.checksum[:12]}... now): restore it and put the change in a new migration"
        )

    async def _apply(self, session: Session, migration: MigrationFile) -> AppliedMigration | None:
        """Apply one file with its record in one transaction; None when another runner got there first."""
        async with session.transaction() as tx:
            row = await tx.fetch_one(_SELECT_ONE, (migration.scope, migration.version))
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise self._changed(migration, str(row["checksum"]))
                return None
            started = time.perf_counter()
            try:
                await tx.execute_script(migration.sql)
            except DatabaseError as exc:
                raise MigrationError(
                    f"migration {migration.label} failed{_line_of(migration.sql, exc.position)} "
                    f"and was rolled back: {exc}",
                    sqlstate=exc.sqlstate,
                ) from exc
            elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
            await tx.execute(
                _INSERT, (migration.scope, migration.version, migration.name, migration.checksum, elapsed_ms)
            )
        logger.info("applied migration %s in %.1f ms", migration.label, elapsed_ms)
        return AppliedMigration(migration.scope, migration.version, migration.name, migration.path, elapsed_ms)
