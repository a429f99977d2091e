"""The two backends behind DatabaseManager: PostgreSQL (asyncpg) and SQLite (aiosqlite)."""
