"""The developer guide's "Pipeline Execution" main.py, copied from the guide unchanged (tests/e2e/test_guide_main.py
runs it in a project laid out as the guide recommends)."""
# fmt: off
# ruff: noqa

# main.py
import asyncio
import os
from pathlib import Path

from ia_modules.pipeline.runner import run_pipeline_from_json
from ia_modules.pipeline.services import ServiceRegistry
from ia_modules.database.manager import DatabaseManager

async def main():
    # Setup database
    database_url = os.getenv('DATABASE_URL', 'sqlite:///./app_data.db')
    db_manager = DatabaseManager(database_url)

    # Initialize with migrations
    migration_dirs = ['./migrations']
    await db_manager.initialize(apply_schema=True, app_migration_paths=migration_dirs)

    # Setup services
    services = ServiceRegistry()
    services.register('database', db_manager)

    # Setup HTTP client if needed
    import aiohttp
    async with aiohttp.ClientSession() as session:
        services.register('http', session)

        # Execute pipeline
        result = await run_pipeline_from_json(
            pipeline_file='./pipelines/custom_processing.json',
            input_data={
                'source_data': './data/input.csv',
                'processing_mode': 'batch'
            },
            services=services
        )

        print("Pipeline execution completed!")
        print(f"Final result: {result}")

if __name__ == "__main__":
    asyncio.run(main())
