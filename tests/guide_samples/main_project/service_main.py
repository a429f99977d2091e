"""The developer guide's "Service Configuration" main.py: its ``setup_services`` copied from the guide unchanged,
between the imports it needs and a ``main`` running the guide's pipeline with those services as the "Pipeline
Execution" main.py does (the guide shows neither). The test runs it as the project's main.py."""
# fmt: off
# ruff: noqa

# Ours: the imports setup_services needs.
import asyncio
import os

from config.database import DatabaseConfig
from ia_modules.pipeline.runner import run_pipeline_from_json
from ia_modules.pipeline.services import ServiceRegistry
from services.custom_services import CacheService, HTTPService, NotificationService

# main.py - Service setup
async def setup_services() -> ServiceRegistry:
    """Setup and configure all services"""
    services = ServiceRegistry()

    # Database service
    db_manager = await DatabaseConfig.initialize_database()
    services.register('database', db_manager)

    # HTTP service
    http_service = HTTPService(base_url="https://api.example.com", timeout=60)
    await http_service.initialize()
    services.register('http', http_service)

    # Cache service
    cache_service = CacheService(ttl=1800)  # 30 minutes
    services.register('cache', cache_service)

    # Notification service
    notification_service = NotificationService(
        webhook_url=os.getenv('NOTIFICATION_WEBHOOK_URL')
    )
    services.register('notifications', notification_service)

    return services


# Ours: run the guide's pipeline with those services, as the "Pipeline Execution" main.py does; like the guide,
# it never cleans the services up.
async def main():
    services = await setup_services()
    result = await run_pipeline_from_json(
        pipeline_file='./pipelines/custom_processing.json',
        input_data={'text': 'The new release loads every report in under two seconds and keeps the formatting.'},
        services=services
    )

    print("Pipeline execution completed!")
    print(f"Final result: {result}")

if __name__ == "__main__":
    asyncio.run(main())
