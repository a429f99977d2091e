"""The developer guide's "Database Setup" config/database.py, copied from the guide unchanged."""
# fmt: off
# ruff: noqa

# config/database.py
import os
from ia_modules.database.manager import DatabaseManager

class DatabaseConfig:
    @staticmethod
    def get_database_manager():
        """Get configured database manager"""

        # Environment-based configuration
        env = os.getenv('ENVIRONMENT', 'development')

        if env == 'development':
            database_url = 'sqlite:///./dev_data.db'
        elif env == 'testing':
            database_url = 'sqlite:///:memory:'
        elif env == 'production':
            database_url = os.getenv('DATABASE_URL')
            if not database_url:
                raise ValueError("DATABASE_URL environment variable required for production")
        else:
            raise ValueError(f"Unknown environment: {env}")

        return DatabaseManager(database_url)

    @staticmethod
    async def initialize_database():
        """Initialize database with migrations"""
        db_manager = DatabaseConfig.get_database_manager()

        # Define migration paths
        migration_paths = [
            './migrations',  # Application migrations
            './custom_migrations'  # Custom migrations
        ]

        success = await db_manager.initialize(
            apply_schema=True,
            app_migration_paths=migration_paths
        )

        if not success:
            raise RuntimeError("Database initialization failed")

        return db_manager
